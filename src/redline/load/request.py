"""Pre-built HTTP/1.1 request bytes and the target they go to.

The hot path never formats a request: every variant is rendered once, before the run,
from a template whose `${name}` placeholders take values from a pool (a token per
request, a user per request...). Request k uses variant k mod len(pool).
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field
from string import Template
from typing import Any
from urllib.parse import urlsplit

from redline import __version__
from redline.errors import UserError

DEFAULT_USER_AGENT = f"redline/{__version__}"


@dataclass(frozen=True)
class Target:
    """Where requests go. TLS options are kept as data so that a worker can rebuild them."""

    scheme: str
    host: str
    port: int
    tls_verify: bool = True
    ca_file: str | None = None
    cert_file: str | None = None  # client certificate (mutual TLS), PEM
    key_file: str | None = None  # its key, when not in cert_file

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        tls_verify: bool = True,
        ca_file: str | None = None,
        cert_file: str | None = None,
        key_file: str | None = None,
    ) -> Target:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise UserError(f"not an http(s) URL: {url!r}")
        try:
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError as exc:
            raise UserError(f"bad port in URL {url!r}: {exc}") from None
        return cls(parts.scheme, parts.hostname, port, tls_verify, ca_file, cert_file, key_file)

    @property
    def base_url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}"

    def ssl_context(self) -> ssl.SSLContext | None:
        if self.scheme != "https":
            return None
        try:
            ctx = ssl.create_default_context(cafile=self.ca_file)
        except (OSError, ssl.SSLError) as exc:
            raise UserError(f"cannot load CA file {self.ca_file!r}: {exc}") from None
        if not self.tls_verify:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        if self.cert_file:
            try:
                ctx.load_cert_chain(self.cert_file, self.key_file)
            except (OSError, ssl.SSLError) as exc:
                raise UserError(f"cannot load client certificate {self.cert_file!r}: {exc}") from None
        return ctx


@dataclass(frozen=True)
class RequestTemplate:
    """One kind of request. Header values, path and body may hold `${name}` placeholders."""

    method: str = "GET"
    path: str = "/"
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""
    pool: tuple[dict[str, str], ...] = field(default=())
    # Header values that must not appear in results or logs (tokens, passwords).
    secret_headers: frozenset[str] = frozenset({"x-auth-token", "x-subject-token", "authorization"})
    # A mix: other templates whose variants are interleaved, `weights[i]` of part i in
    # every round (e.g. 1 issue, 4 validations). When set, this template's own fields
    # are not rendered.
    parts: tuple[RequestTemplate, ...] = ()
    weights: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if self.parts and (len(self.weights) != len(self.parts) or min(self.weights) < 1):
            raise ValueError("a mixed template needs one positive weight per part")

    @classmethod
    def mix(cls, parts: list[tuple[RequestTemplate, int]]) -> RequestTemplate:
        """Requests of several kinds in a fixed proportion (the engine cycles through variants)."""
        return cls(method="MIX", parts=tuple(p for p, _ in parts), weights=tuple(w for _, w in parts))

    def render(self, target: Target) -> list[bytes]:
        """Every distinct request of the run as wire bytes (one per pool entry, at least one).

        For a mix: rounds of `weights[i]` variants of part i, in order, until every
        variant of every part has been used at least once."""
        if self.parts:
            rendered = [p.render(target) for p in self.parts]
            rounds = max(-(-len(r) // w) for r, w in zip(rendered, self.weights))
            out: list[bytes] = []
            taken = [0] * len(rendered)
            for _ in range(rounds):
                for i, (r, w) in enumerate(zip(rendered, self.weights)):
                    for _ in range(w):
                        out.append(r[taken[i] % len(r)])
                        taken[i] += 1
            return out
        return self._render_one(target)

    def _render_one(self, target: Target) -> list[bytes]:
        host = target.host if target.port in (80, 443) else f"{target.host}:{target.port}"
        if ":" in target.host:
            host = f"[{target.host}]:{target.port}"
        variants = self.pool or ({},)
        out = []
        for values in variants:
            path = _fill(self.path, values)
            body = _fill(self.body.decode("latin-1"), values).encode("latin-1") if self.body else b""
            lines = [f"{self.method} {path} HTTP/1.1", f"Host: {host}"]
            names = {k.lower() for k, _ in self.headers}
            if "user-agent" not in names:
                lines.append(f"User-Agent: {DEFAULT_USER_AGENT}")
            for name, value in self.headers:
                lines.append(f"{name}: {_fill(value, values)}")
            if (body or self.method in ("POST", "PUT", "PATCH")) and "content-length" not in names:
                lines.append(f"Content-Length: {len(body)}")
            out.append(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
        return out

    def describe(self) -> dict[str, Any]:
        """A JSON-able description with secret header values redacted."""
        if self.parts:
            return {"mix": [p.describe() | {"weight": w} for p, w in zip(self.parts, self.weights)]}
        return {
            "method": self.method,
            "path": self.path,
            "headers": [[k, "<redacted>" if k.lower() in self.secret_headers else v] for k, v in self.headers],
            "body_bytes": len(self.body),
            "pool_size": len(self.pool) or 1,
        }


def _fill(text: str, values: dict[str, str]) -> str:
    if not values or "$" not in text:
        return text
    try:
        return Template(text).substitute(values)
    except (KeyError, ValueError) as exc:
        raise UserError(f"request template placeholder has no value: {exc}") from None


def parse_header(raw: str) -> tuple[str, str]:
    """'Name: value' → ('Name', 'value'), with a clear error for anything else."""
    name, sep, value = raw.partition(":")
    if not sep or not name.strip() or any(c in name for c in " \t\r\n"):
        raise UserError(f"bad header {raw!r}: expected 'Name: value'")
    if "\r" in value or "\n" in value:
        raise UserError(f"bad header {raw!r}: line breaks are not allowed")
    return name.strip(), value.strip()
