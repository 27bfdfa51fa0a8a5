"""Requests to any service in a cloud's catalog: what one request is, for `run` and `capacity`.

- openstack.request: one request (method, path, microversion, body) to the catalog
  endpoint of `--service`.
- openstack.<preset>: the common read paths (servers detail, flavors, images, networks,
  ports, placement allocation candidates, identity projects), see PRESETS.
- openstack.mix: presets in fixed weights (default READ_MIX, or `--presets a=4,b=1`).
- a scenario file (scenarios/scenario_file.py) compiles to the same `OpenStackRequest`s.

Paths are relative to the catalog endpoint (a compute endpoint usually ends in /v2.1,
image and network ones carry no version); a path that repeats the endpoint's last segment
(/v3/projects on …/v3) is joined once. Every request carries `X-Auth-Token: ${token}`
from a pool of tokens issued before the run and issued again when one would expire during
the next run or probe plus a margin, as keystone.validate does. One connection target
serves a run, so every endpoint of a mix must share scheme, host and port.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from string import Template
from typing import Any
from urllib.parse import urlsplit

from keystoneauth1 import exceptions as ksa_exc

from redline.errors import UserError
from redline.load.request import RequestTemplate, Target
from redline.scenarios.cloud import Cloud
from redline.scenarios.keystone_client import IssuedToken, fail

EXPIRY_MARGIN_S = 60.0
REQUEST = "openstack.request"
MIX = "openstack.mix"
# The header name each service's microversion travels in, besides OpenStack-API-Version.
_LEGACY_MICROVERSION = {"compute": "X-OpenStack-Nova-API-Version"}
# Variables the scenario itself fills; a scenario file may not capture into these.
BUILTINS = ("token", "auth_body")


@dataclass(frozen=True)
class OpenStackRequest:
    """One kind of request to a catalog service; `path`, header values and `body` may hold
    ${variables} (built-ins, or values captured by an earlier step of a scenario file)."""

    service: str  # catalog service type: compute, image, network, placement, identity, …
    path: str
    method: str = "GET"
    microversion: str | None = None
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""
    name: str = ""
    auth: bool = True  # send X-Auth-Token: ${token} (unless a header sets X-Auth-Token)
    capture: tuple[tuple[str, str], ...] = ()  # (response header, variable), for steps

    def label(self) -> str:
        return self.name or f"{self.method} {self.service}{self.path}"


@dataclass(frozen=True)
class Preset:
    request: OpenStackRequest
    what: str


def _preset(service: str, path: str, what: str, microversion: str | None = None) -> Preset:
    return Preset(OpenStackRequest(service, path, microversion=microversion), what)


PRESETS: dict[str, Preset] = {
    "servers-detail": _preset("compute", "/servers/detail", "Nova: list servers with details"),
    "flavors": _preset("compute", "/flavors/detail", "Nova: list flavors with details"),
    "images": _preset("image", "/v2/images", "Glance: list images"),
    "networks": _preset("network", "/v2.0/networks", "Neutron: list networks"),
    "ports": _preset("network", "/v2.0/ports", "Neutron: list ports"),
    # allocation_candidates exists from placement 1.10; 1.10 keeps the answer's shape stable.
    "allocation-candidates": _preset(
        "placement",
        "/allocation_candidates?resources=VCPU:1,MEMORY_MB:512,DISK_GB:1",
        "Placement: allocation candidates for 1 VCPU, 512 MB, 1 GB",
        microversion="1.10",
    ),
    "projects": _preset("identity", "/v3/projects", "Keystone: list projects"),
}
# What a dashboard or a CLI user's session mostly reads (a Nova-centred guess, stated as such).
READ_MIX: tuple[tuple[str, int], ...] = (
    ("servers-detail", 4),
    ("flavors", 2),
    ("images", 2),
    ("networks", 1),
    ("ports", 1),
)
SCENARIOS = (REQUEST, MIX, *(f"openstack.{p}" for p in PRESETS))


def parse_presets(text: str) -> tuple[tuple[str, int], ...]:
    """'servers-detail=4,images=1' → ((servers-detail, 4), (images, 1)); a bare name weighs 1."""
    out: list[tuple[str, int]] = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        name, sep, weight = part.partition("=")
        name = name.strip()
        if name not in PRESETS:
            raise UserError(f"--presets: no preset {name!r}; presets: {', '.join(PRESETS)}")
        try:
            w = int(weight) if sep else 1
        except ValueError:
            raise UserError(f"--presets: weight of {name!r} must be a whole number, not {weight!r}") from None
        if not 1 <= w <= 1000:
            raise UserError(f"--presets: weight of {name!r} must be 1..1000, not {w}")
        out.append((name, w))
    if not out:
        raise UserError(f"--presets names no preset: {text!r}")
    return tuple(out)


def microversion_headers(service: str, version: str | None) -> tuple[tuple[str, str], ...]:
    """`OpenStack-API-Version: <service> <v>`, and Nova's legacy header for compute."""
    if not version:
        return ()
    if not all(c.isdigit() or c == "." for c in version) and version != "latest":
        raise UserError(f"microversion must look like 2.79 (or latest), not {version!r}")
    out = [("OpenStack-API-Version", f"{service} {version}")]
    if service in _LEGACY_MICROVERSION:
        out.append((_LEGACY_MICROVERSION[service], version))
    return tuple(out)


def join_path(endpoint: str, path: str) -> str:
    """The request path of `path` under the endpoint's path, the shared version segment once."""
    base = urlsplit(endpoint).path.rstrip("/")
    if not path.startswith("/"):
        path = "/" + path
    last = base.rsplit("/", 1)[-1]
    if last and (path == f"/{last}" or path.startswith(f"/{last}/") or path.startswith(f"/{last}?")):
        path = path[len(last) + 1 :] or "/"
    return base + path if path != "/" or not base else base + "/"


def _origin(url: str) -> str:
    p = urlsplit(url)
    return f"{p.scheme}://{p.netloc}"


@dataclass(frozen=True)
class Plan:
    """What a scenario sends: a weighted mix of single requests, or one iteration of steps."""

    name: str
    requests: tuple[tuple[OpenStackRequest, int], ...] = ()
    steps: tuple[OpenStackRequest, ...] = ()
    source: dict[str, Any] = field(default_factory=dict)  # for describe(): preset names, the file

    def __post_init__(self) -> None:
        if bool(self.requests) == bool(self.steps):
            raise ValueError("a plan is a mix of requests or one iteration of steps")

    @property
    def all_requests(self) -> tuple[OpenStackRequest, ...]:
        return self.steps or tuple(r for r, _ in self.requests)


class OpenStackScenario:
    """A `redline.scenarios.base.Scenario` over catalog endpoints and a fresh token pool."""

    def __init__(self, plan: Plan, cloud: Cloud, tokens: int = 10) -> None:
        if not 1 <= tokens <= 10_000:
            raise UserError(f"--tokens must be 1..10000, not {tokens}")
        self.plan = plan
        self.cloud = cloud
        self.tokens = tokens
        self._endpoints: dict[str, str] = {}
        self._pool: list[IssuedToken] = []
        self._url: str | None = None
        self.token_ttl_s: float | None = None

    @property
    def name(self) -> str:
        return self.plan.name

    @property
    def url(self) -> str:
        if self._url is None:
            self._resolve()
        assert self._url is not None
        return self._url

    @property
    def target(self) -> Target:
        return self.cloud.tls.target(self.url)

    def _resolve(self) -> None:
        """Every service's catalog endpoint; one origin for the run's connections."""
        for r in self.plan.all_requests:
            if r.service not in self._endpoints:
                self._endpoints[r.service] = self.cloud.endpoint(r.service)
        origins = {s: _origin(u) for s, u in self._endpoints.items()}
        if len(set(origins.values())) > 1:
            where = ", ".join(f"{s} at {o}" for s, o in sorted(origins.items()))
            raise UserError(f"{self.name}: one run sends to one host and port, but the catalog puts {where}")
        self._url = next(iter(origins.values()))

    def preflight(self) -> None:
        """Issue the token pool and send each distinct request once through the session:
        a 401, a 404 or a missing service fails here, before anything is measured."""
        self._resolve()
        self._refresh(0.0)
        token = self._pool[0].token
        if self.plan.steps:
            self._preflight_steps(token)
            return
        for r, _ in self.plan.requests:
            self._send(r, {"token": token}, f"{self.name}: {r.label()}")

    def _preflight_steps(self, token: str) -> None:
        values: dict[str, str] = {"token": token, "auth_body": self._auth_body()}
        for i, r in enumerate(self.plan.steps):
            resp = self._send(r, values, f"{self.name}: step {i + 1} ({r.label()})")
            for header, var in r.capture:
                got = resp.headers.get(header)
                if got is None:
                    raise UserError(
                        f"{self.name}: step {i + 1} ({r.label()}) answered without a {header} header to capture"
                    )
                values[var] = got

    def _send(self, r: OpenStackRequest, values: dict[str, str], what: str) -> Any:
        t = self._template(r)
        url = self.url + _fill(t.path, values)
        headers = {k: _fill(v, values) for k, v in t.headers}
        body = _fill(t.body.decode("latin-1"), values).encode("latin-1") if t.body else None
        try:
            resp = self.cloud.session.request(
                url, r.method, headers=headers, data=body, authenticated=False, raise_exc=False, redirect=False
            )
        except ksa_exc.ClientException as exc:  # TLS, refused, timeout: one line, as for the token
            fail(exc, url)
        if not 200 <= resp.status_code < 400:
            reason = resp.text.strip().splitlines()[0][:200] if resp.text.strip() else resp.reason
            raise UserError(f"{what}: {r.method} {url.split('?')[0]} answered {resp.status_code}: {reason}")
        return resp

    def _auth_body(self) -> str:
        return self.cloud.auth_request_body().decode("ascii")

    def _refresh(self, needed_s: float) -> None:
        deadline = time.time() + needed_s + EXPIRY_MARGIN_S
        if len(self._pool) == self.tokens and min(t.expires_at for t in self._pool) >= deadline:
            return
        self._pool = self.cloud.issue_tokens(self.tokens)
        ttl = min(t.expires_at for t in self._pool) - time.time()
        self.token_ttl_s = ttl
        if ttl < needed_s + EXPIRY_MARGIN_S:
            raise UserError(
                f"tokens from {self.cloud.auth_url} live {ttl:.0f} s, less than a run of {needed_s:.0f} s plus"
                f" {EXPIRY_MARGIN_S:.0f} s: raise [token] expiration or shorten the run"
            )

    def request(self, needed_s: float) -> RequestTemplate:
        """The template for a run (or probe) of `needed_s` seconds, every token in it valid that long."""
        self._resolve()
        self._refresh(needed_s)
        pool: tuple[dict[str, str], ...] = tuple({"token": t.token} for t in self._pool)
        if self.plan.steps:
            uses_auth_body = any("${auth_body}" in _texts(r) for r in self.plan.steps)
            if uses_auth_body:
                pool = tuple(p | {"auth_body": self._auth_body()} for p in pool)
            return RequestTemplate(
                name=self.plan.name, pool=pool, steps=tuple(self._template(r) for r in self.plan.steps)
            )
        parts = [(self._template(r, pool=pool), w) for r, w in self.plan.requests]
        return parts[0][0] if len(parts) == 1 else RequestTemplate.mix(parts)

    def _template(self, r: OpenStackRequest, pool: tuple[dict[str, str], ...] = ()) -> RequestTemplate:
        headers = [("Accept", "application/json")] if not any(k.lower() == "accept" for k, _ in r.headers) else []
        if r.body and not any(k.lower() == "content-type" for k, _ in r.headers):
            headers.append(("Content-Type", "application/json"))
        headers += microversion_headers(r.service, r.microversion)
        if r.auth and not any(k.lower() == "x-auth-token" for k, _ in r.headers):
            headers.append(("X-Auth-Token", "${token}"))
        headers += r.headers
        return RequestTemplate(
            method=r.method,
            path=join_path(self._endpoints[r.service], r.path),
            headers=tuple(headers),
            body=r.body,
            pool=pool,
            name=r.name,
            capture=r.capture,
        )

    def describe(self) -> dict[str, Any]:
        """For run.json: services, endpoints, paths and weights; no token, no body."""

        def one(r: OpenStackRequest) -> dict[str, Any]:
            d: dict[str, Any] = {"service": r.service, "method": r.method, "path": r.path}
            if r.service in self._endpoints:
                d["endpoint"] = self._endpoints[r.service]
            if r.microversion:
                d["microversion"] = r.microversion
            if r.name:
                d["name"] = r.name
            if r.body:
                d["body_bytes"] = len(r.body)
            if r.capture:
                d["capture"] = [list(c) for c in r.capture]
            return d

        d: dict[str, Any] = {
            "name": self.plan.name,
            "credentials": self.cloud.describe(),
            "token_pool": self.tokens,
            "token_ttl_s": None if self.token_ttl_s is None else round(self.token_ttl_s),
            **self.plan.source,
        }
        if self.plan.steps:
            d["steps"] = [one(r) for r in self.plan.steps]
        else:
            d["requests"] = [one(r) | {"weight": w} for r, w in self.plan.requests]
        return d

    def secrets(self) -> list[str]:
        out = self.cloud.secrets() + [t.token for t in self._pool]
        return list(dict.fromkeys(out))


def _texts(r: OpenStackRequest) -> str:
    return " ".join([r.path, r.body.decode("latin-1"), *(v for _, v in r.headers)])


def _fill(text: str, values: dict[str, str]) -> str:
    return Template(text).safe_substitute(values) if "$" in text else text


def request_plan(
    name: str,
    *,
    service: str | None = None,
    path: str | None = None,
    method: str = "GET",
    microversion: str | None = None,
    headers: tuple[tuple[str, str], ...] = (),
    body: bytes = b"",
    presets: str | None = None,
) -> Plan:
    """The plan of --scenario NAME with its options (openstack.request, a preset, openstack.mix)."""
    if name == REQUEST:
        if not service or not path:
            raise UserError("openstack.request needs --service (a catalog type, e.g. compute) and --path")
        r = OpenStackRequest(service, path, method.upper(), microversion, headers, body)
        return Plan(name, requests=((r, 1),))
    if service or path:
        raise UserError(f"--service/--path are for openstack.request; {name} knows its own")
    if name == MIX:
        if microversion:
            raise UserError(
                "--microversion is for one service; openstack.mix sends to several (each preset has its own)"
            )
        chosen = parse_presets(presets) if presets else READ_MIX
        reqs = tuple((_with_microversion(PRESETS[p].request, microversion), w) for p, w in chosen)
        return Plan(name, requests=reqs, source={"presets": {p: w for p, w in chosen}})
    preset = name.removeprefix("openstack.")
    if preset not in PRESETS:
        raise UserError(f"--scenario must be one of {', '.join(SCENARIOS)}, not {name!r}")
    if presets:
        raise UserError("--presets is for openstack.mix")
    return Plan(name, requests=((_with_microversion(PRESETS[preset].request, microversion), 1),))


def _with_microversion(r: OpenStackRequest, microversion: str | None) -> OpenStackRequest:
    return r if microversion is None else replace(r, microversion=microversion)
