"""Pre-built HTTP/1.1 request bytes and the target they go to.

The hot path never formats a request: every variant is rendered once, before the run,
from a template whose `${name}` placeholders take values from a pool (a token per
request, a user per request...). Request k uses variant k mod len(pool).
"""

from __future__ import annotations

import re
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
    # An iteration: `steps` are sent one after the other on one connection, each as soon
    # as the previous one answered 2xx/3xx; this template's own fields are not rendered,
    # its `pool` fills the steps' placeholders (one entry per iteration variant).
    name: str = ""
    steps: tuple[RequestTemplate, ...] = ()
    # On a step: (response header, variable) pairs; the header's value fills `${variable}`
    # in the iteration's later steps.
    capture: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        if self.parts and (len(self.weights) != len(self.parts) or min(self.weights) < 1):
            raise ValueError("a mixed template needs one positive weight per part")
        if self.steps and self.parts:
            raise ValueError("a template is either a mix or an iteration, not both")
        if any(s.steps or s.parts for s in self.steps):
            raise ValueError("an iteration's steps must be single requests")

    @classmethod
    def mix(cls, parts: list[tuple[RequestTemplate, int]]) -> RequestTemplate:
        """Requests of several kinds in a fixed proportion (the engine cycles through variants)."""
        return cls(method="MIX", parts=tuple(p for p, _ in parts), weights=tuple(w for _, w in parts))

    @property
    def has_steps(self) -> bool:
        return bool(self.steps) or any(p.has_steps for p in self.parts)

    def compile(self, target: Target) -> tuple[list[bytes], Iterations | None]:
        """What the engine sends: the first request of every variant as wire bytes and,
        when any variant is an iteration, its steps pre-split for send-time filling."""
        if not self.has_steps:
            return self.render(target), None
        variants, names, prev = self._variants(target, 0)
        chains = tuple(chain for _, chain in variants)
        n_vars = max([0] + [i + 1 for chain in chains for st in chain for _, i in st.captures])
        return [first for first, _ in variants], Iterations(chains, tuple(names), tuple(prev), n_vars)

    def _variants(self, target: Target, slot: int) -> tuple[list[tuple[bytes, tuple[Step, ...]]], list[str], list[int]]:
        """(first request bytes, steps) per variant, and the name and previous slot of every step slot."""
        if self.parts:
            names: list[str] = []
            prev: list[int] = []
            rendered = []
            for p in self.parts:
                v, n, pr = p._variants(target, slot + len(names))
                rendered.append(v)
                names += n
                prev += pr
            return _interleave(rendered, self.weights), names, prev
        if not self.steps:
            return [(b, ()) for b in self.render(target)], [], []
        return self._iteration_variants(target, slot)

    def _iteration_variants(
        self, target: Target, slot: int
    ) -> tuple[list[tuple[bytes, tuple[Step, ...]]], list[str], list[int]]:
        count = max([len(self.pool)] + [len(s.pool) for s in self.steps] + [1])
        names = [(f"{self.name}: " if self.name else "") + (s.name or f"{s.method} {s.path}") for s in self.steps]
        prev = [-1] + [slot + i for i in range(len(self.steps) - 1)]
        out = []
        for v in range(count):
            captured: dict[str, int] = {}  # variable → index among the iteration's values
            chain = []
            for i, st in enumerate(self.steps):
                values = dict(self.pool[v % len(self.pool)]) if self.pool else {}
                if st.pool:
                    values.update(st.pool[v % len(st.pool)])
                for var, idx in captured.items():
                    values.setdefault(var, f"{_MARK}{idx}{_MARK}")
                head, body, needs_length = st._head_and_body(target, values)
                captures = []
                for header, var in st.capture:
                    captured.setdefault(var, len(captured))
                    captures.append((header.lower().encode("latin-1"), captured[var]))
                chain.append(_split_step(slot + i, head, body, needs_length, tuple(captures), st.describe_name()))
            first = chain[0]  # step 1 holds no captured value: its bytes are final
            out.append((b"".join(x for x in first.head if isinstance(x, bytes)), tuple(chain)))
        return out, names, prev

    def describe_name(self) -> str:
        return self.name or f"{self.method} {self.path}"

    def render(self, target: Target) -> list[bytes]:
        """Every distinct request of the run as wire bytes (one per pool entry, at least one).

        For a mix: rounds of `weights[i]` variants of part i, in order, until every
        variant of every part has been used at least once."""
        if self.parts:
            return _interleave([p.render(target) for p in self.parts], self.weights)
        if self.steps:
            return [first for first, _ in self._iteration_variants(target, 0)[0]]
        return self._render_one(target)

    def _render_one(self, target: Target) -> list[bytes]:
        out = []
        for values in self.pool or ({},):
            head, body, needs_length = self._head_and_body(target, values)
            length = f"Content-Length: {len(body.encode('latin-1'))}\r\n" if needs_length else ""
            out.append((head + length + "\r\n" + body).encode("latin-1"))
        return out

    def _head_and_body(self, target: Target, values: dict[str, str]) -> tuple[str, str, bool]:
        """Head lines (each ending CRLF, without the blank line), body, and whether a
        Content-Length line must follow the head."""
        host = target.host if target.port in (80, 443) else f"{target.host}:{target.port}"
        if ":" in target.host:
            host = f"[{target.host}]:{target.port}"
        path = _fill(self.path, values)
        body = _fill(self.body.decode("latin-1"), values) if self.body else ""
        lines = [f"{self.method} {path} HTTP/1.1", f"Host: {host}"]
        names = {k.lower() for k, _ in self.headers}
        if "user-agent" not in names:
            lines.append(f"User-Agent: {DEFAULT_USER_AGENT}")
        for name, value in self.headers:
            lines.append(f"{name}: {_fill(value, values)}")
        needs_length = bool(body or self.method in ("POST", "PUT", "PATCH")) and "content-length" not in names
        return "\r\n".join(lines) + "\r\n", body, needs_length

    def describe(self) -> dict[str, Any]:
        """A JSON-able description with secret header values redacted."""
        if self.parts:
            return {"mix": [p.describe() | {"weight": w} for p, w in zip(self.parts, self.weights)]}
        if self.steps:
            return {
                "iteration": self.name,
                "pool_size": len(self.pool) or 1,
                "steps": [
                    s.describe() | {"name": s.describe_name(), "capture": [list(c) for c in s.capture]}
                    for s in self.steps
                ],
            }
        return {
            "method": self.method,
            "path": self.path,
            "headers": [[k, "<redacted>" if k.lower() in self.secret_headers else v] for k, v in self.headers],
            "body_bytes": len(self.body),
            "pool_size": len(self.pool) or 1,
        }


# Marks where a captured value goes in a step rendered at plan time ("\x00" is not valid
# in a header and does not occur in a text body).
_MARK = "\x00"
_MARK_RE = re.compile("\x00([0-9]+)\x00")


@dataclass(frozen=True)
class Step:
    """One step of an iteration, pre-split at plan time: literal bytes and captured-value
    indices (ints) alternate, so that filling it at send time is one join."""

    slot: int  # its column among the run's step columns
    head: tuple[bytes | int, ...]  # the whole request when `body` is None, else the head without its blank line
    body: tuple[bytes | int, ...] | None  # set when the body holds captured values: its length is counted at send
    captures: tuple[tuple[bytes, int], ...]  # (lower-case response header, value index)
    name: str = ""

    def build(self, values: list[bytes]) -> bytes:
        head = b"".join([x if isinstance(x, bytes) else values[x] for x in self.head])
        if self.body is None:
            return head
        body = b"".join([x if isinstance(x, bytes) else values[x] for x in self.body])
        return b"%sContent-Length: %d\r\n\r\n%s" % (head, len(body), body)


@dataclass(frozen=True)
class Iterations:
    """The steps of every variant (aligned with the first-request payloads; () for a
    single request of a mix), each step slot's name and the slot before it in its
    iteration (-1 for a first step), and how many captured values an iteration holds."""

    chains: tuple[tuple[Step, ...], ...]
    names: tuple[str, ...]
    prev: tuple[int, ...]
    n_vars: int


def _split(text: str) -> tuple[bytes | int, ...]:
    parts = _MARK_RE.split(text)
    return tuple(int(p) if i % 2 else p.encode("latin-1") for i, p in enumerate(parts) if i % 2 or p)


def _split_step(
    slot: int, head: str, body: str, needs_length: bool, captures: tuple[tuple[bytes, int], ...], name: str
) -> Step:
    if _MARK in body:
        if not needs_length:
            raise UserError(f"step {name!r}: a body that holds a captured value must not set Content-Length")
        return Step(slot, _split(head), _split(body), captures, name)
    length = f"Content-Length: {len(body.encode('latin-1'))}\r\n" if needs_length else ""
    return Step(slot, _split(head + length + "\r\n" + body), None, captures, name)


def _interleave(rendered: list[list[Any]], weights: tuple[int, ...]) -> list[Any]:
    """Rounds of `weights[i]` variants of part i, in order, until every variant of every
    part has been used at least once."""
    rounds = max(-(-len(r) // w) for r, w in zip(rendered, weights))
    out: list[Any] = []
    taken = [0] * len(rendered)
    for _ in range(rounds):
        for i, (r, w) in enumerate(zip(rendered, weights)):
            for _ in range(w):
                out.append(r[taken[i] % len(r)])
                taken[i] += 1
    return out


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
