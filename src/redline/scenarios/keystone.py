"""Keystone token scenarios: what one request is, for `run` and `capacity`.

- keystone.issue: POST /v3/auth/tokens, password method, project scope, one user per
  request from a pool of users (all with the same password).
- keystone.validate: GET /v3/auth/tokens with X-Auth-Token and X-Subject-Token, the
  subjects from a pool of tokens issued before the run and issued again before they
  would expire during the next run or probe. A pool of 1 measures the cached path; a
  pool larger than the cache measures the uncached one.
- keystone.mix: both, interleaved in a fixed ratio (issue:validate).

Before anything is measured the scenario authenticates once per user (preflight): a
401 or 404 there is a user error (bad credentials, wrong URL), not degradation.
Passwords and tokens live only in the pre-rendered request bytes; descriptions carry
neither.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from redline.errors import UserError
from redline.load.request import RequestTemplate
from redline.scenarios.credentials import Credentials
from redline.scenarios.keystone_client import IssuedToken, KeystoneClient, password_auth_body

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
    credentials: Credentials
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
    """Builds the request template of a run; keeps the token pool fresh between probes."""

    def __init__(self, opts: KeystoneOptions) -> None:
        self.opts = opts
        self.url = v3_url(opts.credentials.auth_url)
        self.client = KeystoneClient(self.url)
        c = opts.credentials
        self._admin_body = password_auth_body(
            c.username, c.password, c.user_domain_name, c.project_name, c.project_domain_name
        )
        users = opts.users or (c.username,)
        project = opts.users_project or c.project_name
        self._user_bodies = [
            password_auth_body(u, c.password, c.user_domain_name, project, c.project_domain_name) for u in users
        ]
        self._users = users
        self._caller: IssuedToken | None = None
        self._pool: list[IssuedToken] = []
        self.token_ttl_s: float | None = None

    @property
    def uses_issue(self) -> bool:
        return self.opts.scenario in ("keystone.issue", "keystone.mix")

    @property
    def uses_validate(self) -> bool:
        return self.opts.scenario in ("keystone.validate", "keystone.mix")

    def preflight(self) -> None:
        """Authenticate once as the caller and once per pool user: fail fast and clearly."""
        c = self.opts.credentials
        self._caller = self.client.issue(self._admin_body, f"user {c.username!r}")
        self.token_ttl_s = self._caller.expires_at - time.time()
        if self.uses_issue:
            project = self.opts.users_project or c.project_name
            for user, body in zip(self._users, self._user_bodies):
                if user != c.username or project != c.project_name:
                    self.client.issue(body, f"user {user!r} (project {project!r})")
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
            caller = self._caller = self.client.issue(self._admin_body, f"user {self.opts.credentials.username!r}")
        if len(self._pool) != self.opts.token_pool or min(t.expires_at for t in self._pool) < deadline:
            self._pool = self.client.issue_many(
                self._admin_body, f"user {self.opts.credentials.username!r}", self.opts.token_pool
            )
        return RequestTemplate(
            method="GET",
            path=urlsplit(self.url).path + "/auth/tokens",
            headers=(("Accept", "application/json"), ("X-Auth-Token", "${caller}"), ("X-Subject-Token", "${subject}")),
            pool=tuple({"caller": caller.token, "subject": t.token} for t in self._pool),
        )

    def describe(self) -> dict[str, Any]:
        """For run.json: what was measured, without a password or a token."""
        o = self.opts
        d: dict[str, Any] = {
            "name": o.scenario,
            "auth_url": self.url,
            "credentials": o.credentials.describe(),
            "password_hash_rounds": o.password_hash_rounds,
            "token_ttl_s": None if self.token_ttl_s is None else round(self.token_ttl_s),
        }
        if self.uses_issue:
            d["users"] = list(self._users) if len(self._users) <= 20 else [*self._users[:3], "…", self._users[-1]]
            d["user_count"] = len(self._users)
            d["users_project"] = o.users_project or o.credentials.project_name
        if self.uses_validate:
            d["token_pool"] = o.token_pool
        if o.scenario == "keystone.mix":
            d["mix"] = {"issue": o.mix[0], "validate": o.mix[1]}
        return d


def secrets_of(scenario: KeystoneScenario) -> list[str]:
    """Every secret a scenario holds (for tests that grep results for leaks)."""
    out = [scenario.opts.credentials.password]
    if scenario._caller is not None:
        out.append(scenario._caller.token)
    out += [t.token for t in scenario._pool]
    return out
