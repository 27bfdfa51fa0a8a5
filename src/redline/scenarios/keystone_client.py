"""A small synchronous Keystone v3 client for what happens before a run: checking the
credentials (preflight) and issuing the pool of tokens a validation scenario sends.
It is not on the measured path."""

from __future__ import annotations

import http.client
import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from urllib.parse import urlsplit

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
    """Talks to one Keystone v3 endpoint (`.../v3`); one connection per thread."""

    def __init__(self, v3_url: str, timeout_s: float = 30.0) -> None:
        parts = urlsplit(v3_url)
        self.url = v3_url
        self.https = parts.scheme == "https"
        self.host = parts.hostname or ""
        self.port = parts.port or (443 if self.https else 80)
        self.prefix = parts.path.rstrip("/")
        self.timeout_s = timeout_s

    def _conn(self) -> http.client.HTTPConnection:
        cls = http.client.HTTPSConnection if self.https else http.client.HTTPConnection
        return cls(self.host, self.port, timeout=self.timeout_s)

    def request(
        self, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None
    ) -> tuple[int, dict[str, str], bytes]:
        """(status, response headers, body bytes); transport failures are TargetUnreachable."""
        conn = self._conn()
        try:
            hdrs = {"Content-Type": "application/json", "Accept": "application/json", **(headers or {})}
            conn.request(method, self.prefix + path, body=body, headers=hdrs)
            r = conn.getresponse()
            return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
        except (TimeoutError, OSError, http.client.HTTPException) as exc:
            raise TargetUnreachable(f"identity service at {self.url} did not answer: {exc}") from None
        finally:
            conn.close()

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
            f"{url} refused the credentials of {who} (401 Unauthorized): check the user, password, project and domains"
        )
    if status == 404:
        raise UserError(f"{url}: POST /auth/tokens is 404 Not Found: is the auth URL a Keystone v3 endpoint (…/v3)?")
    try:
        message = json.loads(raw)["error"]["message"]
    except (ValueError, KeyError, TypeError):
        message = raw[:120].decode("latin-1", "replace")
    raise UserError(f"{url}: POST /auth/tokens for {who} answered {status}: {message}")
