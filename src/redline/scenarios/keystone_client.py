"""A small synchronous Keystone v3 client over a keystoneauth1 session, for what happens
before a run: checking credentials (preflight), sending a scenario's own token request once,
validating, the labs' setup calls. It is not on the measured path. keystoneauth1's failures
become one line saying what happened (an untrusted certificate is not "did not answer")."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import NoReturn

from keystoneauth1 import exceptions as ksa_exc
from keystoneauth1 import session as ksa_session

from redline.errors import TargetUnreachable, UserError


@dataclass(frozen=True)
class IssuedToken:
    token: str = field(repr=False)
    expires_at: float  # UNIX time


def password_auth_body(user: str, password: str, user_domain: str, project: str, project_domain: str) -> bytes:
    return json.dumps(
        {
            "auth": {
                "identity": {
                    "methods": ["password"],
                    "password": {"user": {"name": user, "domain": {"name": user_domain}, "password": password}},
                },
                "scope": {"project": {"name": project, "domain": {"name": project_domain}}},
            }
        }
    ).encode()


class KeystoneClient:
    """Talks to one Keystone v3 endpoint (`.../v3`) through a keystoneauth1 session, whose TLS
    settings (verify, CA file, client certificate) it uses; without one, a default session."""

    def __init__(
        self,
        v3_url: str,
        timeout_s: float = 30.0,
        session: ksa_session.Session | None = None,
        connect_retries: int = 0,
    ) -> None:
        """`connect_retries`: tries again (keystoneauth's back-off) after a connection failure;
        0 for measuring, where a failure is the answer, more for setting a lab up."""
        self.url = v3_url.rstrip("/")
        self.timeout_s = timeout_s
        self.connect_retries = connect_retries
        self.session = session or ksa_session.Session(timeout=timeout_s)

    def request(
        self, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None
    ) -> tuple[int, dict[str, str], bytes]:
        """(status, response headers, body bytes); any status is returned, transport and TLS
        failures are one-line user errors."""
        hdrs = {"Content-Type": "application/json", "Accept": "application/json", **(headers or {})}
        try:
            r = self.session.request(
                self.url + path,
                method,
                data=body,
                headers=hdrs,
                authenticated=False,
                raise_exc=False,
                connect_retries=self.connect_retries,
                timeout=self.timeout_s,
                log=False,  # bodies hold passwords and headers tokens
            )
        except ksa_exc.ClientException as exc:
            fail(exc, self.url)
        return r.status_code, {k.lower(): v for k, v in r.headers.items()}, r.content

    def issue(self, body: bytes, who: str) -> IssuedToken:
        status, headers, raw = self.request("POST", "/auth/tokens", body)
        check_auth_status(status, raw, self.url, who)
        token = headers.get("x-subject-token")
        if not token:
            raise UserError(
                f"{self.url}: POST /auth/tokens answered {status} without an X-Subject-Token header: not a Keystone v3 endpoint"
            )
        try:
            expires = json.loads(raw)["token"]["expires_at"]
            ts = datetime.fromisoformat(expires.replace("Z", "+00:00")).timestamp()
        except (ValueError, KeyError, TypeError):
            raise UserError(f"{self.url}: the token response has no readable token.expires_at") from None
        return IssuedToken(token, ts)

    def issue_many(self, body: bytes, who: str, n: int, concurrency: int = 4) -> list[IssuedToken]:
        with ThreadPoolExecutor(max_workers=max(1, min(concurrency, n))) as ex:
            return list(ex.map(lambda _: self.issue(body, who), range(n)))

    def validate(self, auth_token: str, subject: str) -> int:
        status, _, _ = self.request(
            "GET", "/auth/tokens", headers={"X-Auth-Token": auth_token, "X-Subject-Token": subject}
        )
        return status


def check_auth_status(status: int, raw: bytes, url: str, who: str) -> None:
    """Bad credentials and wrong URLs are the user's to fix, not degradation: one clear line."""
    if status in (200, 201):
        return
    if status == 401:
        raise UserError(
            f"{url} refused the credentials of {who} (401 Unauthorized): check the user, password or application"
            " credential, project and domains"
        )
    if status == 404:
        raise UserError(f"{url}: POST /auth/tokens is 404 Not Found: is the auth URL a Keystone v3 endpoint (…/v3)?")
    try:
        message = json.loads(raw)["error"]["message"]
    except (ValueError, KeyError, TypeError):
        message = raw[:120].decode("latin-1", "replace")
    raise UserError(f"{url}: POST /auth/tokens for {who} answered {status}: {message}")


def fail(exc: Exception, url: str) -> NoReturn:
    """keystoneauth1's failures as one line saying what happened."""
    if isinstance(exc, ksa_exc.SSLError):
        raise UserError(
            f"{url} answered with a TLS certificate that did not verify ({_ssl_reason(exc)}):"
            " pass --ca-file FILE (or --os-cacert FILE) with the CA that signed it, or --insecure"
        ) from None
    if isinstance(exc, ksa_exc.ConnectTimeout):
        raise TargetUnreachable(f"{url} did not answer in time: {first_line(exc)}") from None
    if isinstance(exc, ksa_exc.ConnectFailure):
        raise TargetUnreachable(f"{url} could not be reached: {first_line(exc)}") from None
    if isinstance(exc, ksa_exc.Unauthorized):
        raise UserError(
            f"{url} refused the credentials (401 Unauthorized): check the user, password or application"
            " credential, project and domains"
        ) from None
    if isinstance(exc, ksa_exc.NotFound):
        raise UserError(f"{url} answered 404 Not Found: is the auth URL a Keystone v3 endpoint (…/v3)?") from None
    if isinstance(exc, ksa_exc.DiscoveryFailure):
        raise UserError(f"{url}: no Keystone version document there ({first_line(exc)})") from None
    if isinstance(exc, ksa_exc.HttpError):
        raise UserError(f"{url} answered {exc.http_status}: {first_line(exc)}") from None
    raise UserError(f"{url}: {type(exc).__name__}: {first_line(exc)}") from None


def first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _ssl_reason(exc: Exception) -> str:
    text = str(exc)
    marker = "certificate verify failed: "
    i = text.find(marker)
    if i >= 0:
        return text[i + len(marker) :].split(" (_ssl")[0].split("'")[0].strip(" :()") or "certificate verify failed"
    if "CERTIFICATE_VERIFY_FAILED" in text:
        return "certificate verify failed"
    return first_line(exc)
