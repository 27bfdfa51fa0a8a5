"""Keystone token scenarios: what one request is, for `run` and `capacity`.

- keystone.issue: POST /v3/auth/tokens, password method, project scope, one user per
  request from a pool of users (all with the same password).
- keystone.validate: GET /v3/auth/tokens with X-Auth-Token and X-Subject-Token, the
  subjects from a pool of tokens issued before the run and issued again before they
  would expire during the next run or probe. A pool of 1 measures the cached path; a
  pool larger than the cache measures the uncached one.
- keystone.mix: both, interleaved in a fixed ratio (issue:validate).

The credentials are any keystoneauth1 auth type openstack.config loads (password,
v3applicationcredential, token); keystone.issue sends that auth's own token request.
Before anything is measured the scenario authenticates through a keystoneauth1 session
with the cloud's TLS settings and sends each distinct request once (preflight): a 401,
a 404 or an untrusted certificate there is a user error, not degradation. Secrets live
only in the pre-rendered request bytes; descriptions carry none.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from redline.errors import UserError
from redline.load.request import RequestTemplate, Target
from redline.scenarios.cloud import Cloud, TlsSettings
from redline.scenarios.credentials import Credentials
from redline.scenarios.keystone_client import IssuedToken, KeystoneClient

SCENARIOS = ("keystone.issue", "keystone.validate", "keystone.mix")
EXPIRY_MARGIN_S = 60.0
_RANGE = re.compile(r"^(.*)\{(\d+)\.\.(\d+)\}(.*)$")


def expand_users(text: str) -> tuple[str, ...]:
    """'bench-{0..9}' or 'alice,bob' (or both, comma-separated) → user names."""
    out: list[str] = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        m = _RANGE.match(part)
        if m:
            lo, hi = int(m.group(2)), int(m.group(3))
            if hi < lo or hi - lo > 100_000:
                raise UserError(f"bad user range {part!r}")
            out += [f"{m.group(1)}{i}{m.group(4)}" for i in range(lo, hi + 1)]
        else:
            out.append(part)
    if not out:
        raise UserError(f"no user names in {text!r}")
    return tuple(out)


def parse_mix(text: str) -> tuple[int, int]:
    """'1:4' → (1, 4): issues to validations."""
    try:
        a, b = (int(x) for x in text.split(":"))
    except ValueError:
        raise UserError(f"--mix must be ISSUE:VALIDATE, e.g. 1:4, not {text!r}") from None
    if a < 1 or b < 1 or a + b > 1000:
        raise UserError(f"--mix parts must be positive (and small), not {text!r}")
    return a, b


def v3_url(auth_url: str) -> str:
    """The v3 endpoint for an auth URL with or without its /v3 suffix."""
    parts = urlsplit(auth_url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UserError(f"not an http(s) auth URL: {auth_url!r}")
    path = parts.path.rstrip("/")
    if not path.endswith("/v3"):
        path += "/v3"
    return urlunsplit((parts.scheme, parts.netloc, path, "", ""))


@dataclass(frozen=True)
class KeystoneOptions:
    scenario: str
    credentials: Credentials | None = None  # redline's own service; else the Cloud given to the scenario
    users: tuple[str, ...] = ()  # keystone.issue: users to cycle through; default: the credentials' user
    users_project: str | None = None  # their project; default: the credentials' project
    token_pool: int = 100
    mix: tuple[int, int] = (1, 4)
    password_hash_rounds: int | None = None  # the users' bcrypt cost, when known

    def __post_init__(self) -> None:
        if self.scenario not in SCENARIOS:
            raise UserError(f"--scenario must be one of {', '.join(SCENARIOS)}, not {self.scenario!r}")
        if not 1 <= self.token_pool <= 100_000:
            raise UserError(f"--token-pool must be 1..100000, not {self.token_pool}")


class KeystoneScenario:
    """A `redline.scenarios.base.Scenario`: builds the request template of a run and keeps
    the token pool fresh between probes."""

    def __init__(self, opts: KeystoneOptions, cloud: Cloud | None = None, tls: TlsSettings | None = None) -> None:
        if cloud is None:
            if opts.credentials is None:
                raise ValueError("a KeystoneScenario needs a Cloud or Credentials")
            cloud = opts.credentials.open(tls)
        self.opts = opts
        self.cloud = cloud
        self._url = v3_url(cloud.auth_url)
        self.client = KeystoneClient(self._url, session=cloud.session)
        a = cloud.describe()
        self._who = _who(a)
        if opts.users and cloud.auth_type not in ("password", "v3password"):
            raise UserError(f"--users needs password credentials (the users share the password), not {cloud.auth_type}")
        self._users: tuple[str, ...] = opts.users or (str(a.get("username") or self._who),)
        project = opts.users_project if opts.users_project else None
        self._user_bodies = (
            [cloud.auth_request_body(user=u, project=project) for u in opts.users]
            if opts.users
            else [cloud.auth_request_body(project=project)]
        )
        self._users_project = opts.users_project or a.get("project_name") or a.get("project_id")
        self._caller: IssuedToken | None = None
        self._pool: list[IssuedToken] = []
        self.token_ttl_s: float | None = None

    @property
    def name(self) -> str:
        return self.opts.scenario

    @property
    def url(self) -> str:
        return self._url

    @property
    def target(self) -> Target:
        return self.cloud.tls.target(self._url)

    @property
    def uses_issue(self) -> bool:
        return self.opts.scenario in ("keystone.issue", "keystone.mix")

    @property
    def uses_validate(self) -> bool:
        return self.opts.scenario in ("keystone.validate", "keystone.mix")

    def preflight(self) -> None:
        """Authenticate through the session, then send each distinct token request of the
        run once: fail fast and clearly (bad credentials, wrong URL, untrusted certificate)."""
        self._caller = self.cloud.token()
        self.token_ttl_s = self._caller.expires_at - time.time()
        if self.uses_issue:
            for user, body in zip(self._users, self._user_bodies):
                who = f"user {user!r} (project {self._users_project!r})" if self.opts.users else self._who
                self.client.issue(body, who)
        if self.uses_validate:
            status = self.client.validate(self._caller.token, self._caller.token)
            if status != 200:
                raise UserError(f"{self.url}: validating a fresh token answered {status}, not 200")

    def request(self, needed_s: float) -> RequestTemplate:
        """The template for a run (or probe) of `needed_s` seconds; every token in it
        stays valid for that long plus a margin (the pool is issued again if not)."""
        if self._caller is None:
            self.preflight()
        parts: list[tuple[RequestTemplate, int]] = []
        if self.uses_issue:
            parts.append((self._issue_template(), self.opts.mix[0]))
        if self.uses_validate:
            parts.append((self._validate_template(needed_s), self.opts.mix[1]))
        if len(parts) == 1:
            return parts[0][0]
        return RequestTemplate.mix(parts)

    def _issue_template(self) -> RequestTemplate:
        return RequestTemplate(
            method="POST",
            path=urlsplit(self.url).path + "/auth/tokens",
            headers=(("Content-Type", "application/json"), ("Accept", "application/json")),
            body=b"${body}",
            pool=tuple({"body": b.decode("ascii")} for b in self._user_bodies),
        )

    def _validate_template(self, needed_s: float) -> RequestTemplate:
        deadline = time.time() + needed_s + EXPIRY_MARGIN_S
        if self.token_ttl_s is not None and self.token_ttl_s < needed_s + EXPIRY_MARGIN_S:
            raise UserError(
                f"tokens from {self.url} live {self.token_ttl_s:.0f} s, less than a run of {needed_s:.0f} s plus"
                f" {EXPIRY_MARGIN_S:.0f} s: raise [token] expiration or shorten the run"
            )
        caller = self._caller
        if caller is None or caller.expires_at < deadline:
            caller = self._caller = self.cloud.token()
            if caller.expires_at < deadline:  # the session's cached token is too old for this run
                caller = self._caller = self.cloud.issue_tokens(1)[0]
        if len(self._pool) != self.opts.token_pool or min(t.expires_at for t in self._pool) < deadline:
            self._pool = self.cloud.issue_tokens(self.opts.token_pool)
        return RequestTemplate(
            method="GET",
            path=urlsplit(self.url).path + "/auth/tokens",
            headers=(("Accept", "application/json"), ("X-Auth-Token", "${caller}"), ("X-Subject-Token", "${subject}")),
            pool=tuple({"caller": caller.token, "subject": t.token} for t in self._pool),
        )

    def describe(self) -> dict[str, Any]:
        """For run.json: what was measured, without a password, a secret or a token."""
        o = self.opts
        d: dict[str, Any] = {
            "name": o.scenario,
            "auth_url": self.url,
            "credentials": self.cloud.describe(),
            "password_hash_rounds": o.password_hash_rounds,
            "token_ttl_s": None if self.token_ttl_s is None else round(self.token_ttl_s),
        }
        if self.uses_issue:
            d["users"] = list(self._users) if len(self._users) <= 20 else [*self._users[:3], "…", self._users[-1]]
            d["user_count"] = len(self._users)
            d["users_project"] = self._users_project
        if self.uses_validate:
            d["token_pool"] = o.token_pool
        if o.scenario == "keystone.mix":
            d["mix"] = {"issue": o.mix[0], "validate": o.mix[1]}
        return d

    def secrets(self) -> list[str]:
        """Every secret the scenario holds (for tests that grep results for leaks)."""
        out = self.cloud.secrets()
        if self._caller is not None:
            out.append(self._caller.token)
        out += [t.token for t in self._pool]
        return list(dict.fromkeys(out))


def _who(a: dict[str, Any]) -> str:
    if a.get("application_credential_id") or a.get("application_credential_name"):
        return f"application credential {a.get('application_credential_name') or a['application_credential_id']!r}"
    if a.get("username") or a.get("user_id"):
        return f"user {a.get('username') or a['user_id']!r}"
    return f"the {a.get('auth_type')} credentials"
