"""Serve the identity API: N worker processes, each an asyncio + httptools server on
its own SO_REUSEPORT socket (the kernel spreads connections over them).

The parent binds the port first (so that port 0 works), forks the workers, prints one
banner line with the URL once every worker listens, and on SIGTERM or SIGINT stops
them all and exits; if one worker dies, it stops the others and exits non-zero.

With a certificate and key it serves HTTPS (the TLS lab: `redline lab identity up --tls`).
With a timing log, each worker appends one line per request, `recv_ns sent_ns status
method path` in wall-clock nanoseconds (recv: the request's first byte parsed; sent: the
response handed to the socket): the server's own view of latency, for comparing what
load generators report (benchmarks/vs_rally.py). Line-buffered, so a killed worker loses
nothing it answered.
"""

from __future__ import annotations

import asyncio
import os
import select
import signal
import socket
import ssl
import sys
import time
from dataclasses import dataclass
from http import HTTPStatus
from pathlib import Path
from types import FrameType
from typing import TextIO, cast

import httptools

from redline import procs
from redline.identity.api import JSON, IdentityAPI, Response, ServiceSettings
from redline.identity.store import Store
from redline.identity.tokens import TokenCodec, load_or_create_keys

DB_NAME = "identity.db"
KEYS_DIR = "fernet-keys"


@dataclass(frozen=True)
class ServerConfig:
    state_dir: Path
    host: str = "127.0.0.1"
    port: int = 0
    workers: int = 2
    token_ttl_s: float = 3600.0
    tls_cert: Path | None = None  # PEM certificate (chain) and its key: serve HTTPS
    tls_key: Path | None = None
    timing_log: Path | None = None

    @property
    def scheme(self) -> str:
        return "https" if self.tls_cert else "http"


_REASONS = {s.value: s.phrase for s in HTTPStatus}


def encode_response(r: Response, keep_alive: bool) -> bytes:
    lines = [f"HTTP/1.1 {r.status} {_REASONS.get(r.status, 'Unknown')}"]
    if r.status != 204:
        lines.append(f"Content-Type: {JSON}")
        lines.append(f"Content-Length: {len(r.body)}")
    lines.append("Vary: X-Auth-Token")
    for name, value in r.headers:
        lines.append(f"{name}: {value}")
    if not keep_alive:
        lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + r.body


class _HTTP(asyncio.Protocol):
    """One connection: parse requests with httptools, answer each in order."""

    def __init__(self, api: IdentityAPI, timing: TextIO | None = None) -> None:
        self.api = api
        self.timing = timing
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.recv_ns = 0
        self._reset()

    def _reset(self) -> None:
        self.url = b""
        self.headers: dict[str, str] = {}
        self.body: list[bytes] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # a stream server's transports are Transports

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._close(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        except httptools.HttpParserError:
            self._close(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")

    def _close(self, last: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(last)
            self.transport.close()

    # httptools callbacks
    def on_message_begin(self) -> None:
        self.recv_ns = time.time_ns()

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers[name.decode("latin-1").lower()] = value.decode("latin-1")

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        parsed = httptools.parse_url(self.url)
        path = parsed.path.decode("latin-1")
        query = parsed.query.decode("latin-1") if parsed.query else ""
        method = self.parser.get_method().decode("ascii")
        try:
            response = self.api.handle(method, path, query, self.headers, b"".join(self.body))
        except Exception as exc:  # noqa: BLE001 — a bug must cost one request, not the worker
            print(f"identity: error in {method} {path}: {type(exc).__name__}: {exc}", file=sys.stderr)
            response = Response(
                500, b'{"error": {"code": 500, "message": "internal error", "title": "Internal Server Error"}}'
            )
        keep = self.parser.should_keep_alive()
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(encode_response(response, keep))
            if not keep:
                self.transport.close()
        if self.timing is not None:
            self.timing.write(f"{self.recv_ns} {time.time_ns()} {response.status} {method} {path}\n")
        self._reset()


def _listening_socket(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    return sock


def _worker(config: ServerConfig, port: int, ready_fd: int) -> None:
    """A worker process: own socket, own store connection, one event loop, forever."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    loop: asyncio.AbstractEventLoop
    try:
        import uvloop

        loop = uvloop.new_event_loop()
    except ImportError:  # pragma: no cover
        loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    store = Store(config.state_dir / DB_NAME)
    codec = TokenCodec(load_or_create_keys(config.state_dir / KEYS_DIR))
    settings = ServiceSettings(public_url=f"{config.scheme}://{config.host}:{port}", token_ttl_s=config.token_ttl_s)
    api = IdentityAPI(store, codec, settings)
    tls = None
    if config.tls_cert is not None:
        tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls.load_cert_chain(config.tls_cert, config.tls_key)
    timing = open(config.timing_log, "a", buffering=1) if config.timing_log else None  # noqa: SIM115 — the worker's life
    sock = _listening_socket(config.host, port)
    sock.listen(1024)
    server = loop.run_until_complete(loop.create_server(lambda: _HTTP(api, timing), sock=sock, ssl=tls))
    os.write(ready_fd, b"r")
    os.close(ready_fd)
    try:
        loop.run_forever()
    finally:
        server.close()


def serve(config: ServerConfig) -> int:
    """Run the service until SIGTERM/SIGINT; returns the exit status."""
    if not (config.state_dir / DB_NAME).exists():
        raise FileNotFoundError(f"no identity database in {config.state_dir}")
    probe = _listening_socket(config.host, config.port)  # bound, not listening: reserves the port
    port = probe.getsockname()[1]
    read_fd, write_fd = os.pipe()
    children: list[int] = []
    stopping = False

    def stop(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    sys.stdout.flush()
    sys.stderr.flush()
    for _ in range(config.workers):
        pid = os.fork()
        if pid == 0:
            os.close(read_fd)
            code = 0
            try:
                _worker(config, port, write_fd)
            except BaseException as exc:  # noqa: BLE001 — report and leave
                print(f"identity worker failed: {exc}", file=sys.stderr)
                code = 1
            finally:
                os._exit(code)
        children.append(pid)
    os.close(write_fd)
    got = bytearray()

    def all_ready_or_eof() -> bool:
        if select.select([read_fd], [], [], 0.05)[0]:
            chunk = os.read(read_fd, 16)
            if not chunk:
                return True  # every worker has closed its end: no more is coming
            got.extend(chunk)
        return len(got) >= config.workers

    procs.wait_until(all_ready_or_eof, 30, 0)  # the select is the pause between looks
    os.close(read_fd)
    probe.close()
    if len(got) < config.workers:
        procs.stop(*children, timeout_s=5)
        print("identity: workers did not start", file=sys.stderr)
        return 1
    print(
        f"reference identity service on {config.scheme}://{config.host}:{port}/ ({config.workers} workers)", flush=True
    )
    code = 0
    while not stopping:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            break
        if pid:
            if not stopping:
                print(f"identity: worker {pid} exited ({status}); stopping", file=sys.stderr)
                code = 1
            children.remove(pid)
            break
        time.sleep(0.2)
    procs.stop(*children, timeout_s=5)
    return code
