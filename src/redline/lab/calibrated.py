"""A target whose capacity is known: K virtual servers, each busy S ms per request.

Requests are served first come, first served by the earliest-free of K servers, so
the target is an exact M/D/K (or M/M/K) queue with capacity K × 1000 / S requests/s.
No work is done: each response is held until its computed completion instant and then
written, with a timerfd so that the instant is kept to tens of µs (see load/timer.py).
Optionally, requests arriving faster than `shed_above` per second get an immediate 503,
like a front end that sheds load.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import random
import signal
import sys
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from time import monotonic_ns
from types import FrameType
from typing import Any, Literal, cast

import httptools

from redline.load.timer import PreciseTimer

Distribution = Literal["fixed", "exponential"]

_OK = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 3\r\n\r\nok\n"
_OK_CLOSE = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 3\r\nConnection: close\r\n\r\nok\n"
_SHED = b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 9\r\nRetry-After: 1\r\n\r\nshedding\n"
_BAD = b"HTTP/1.1 400 Bad Request\r\nContent-Length: 4\r\nConnection: close\r\n\r\nbad\n"


@dataclass(frozen=True)
class CalibratedConfig:
    servers: int = 4
    service_ms: float = 10.0
    distribution: Distribution = "fixed"
    shed_above: float | None = None  # requests/s over the last second; beyond it: 503
    seed: int = 1

    def __post_init__(self) -> None:
        if self.servers < 1:
            raise ValueError("servers must be at least 1")
        if not self.service_ms > 0:
            raise ValueError("service time must be positive")
        if self.distribution not in ("fixed", "exponential"):
            raise ValueError(f"unknown distribution {self.distribution!r}")

    @property
    def capacity(self) -> float:
        return self.servers * 1000.0 / self.service_ms

    def describe(self) -> dict[str, Any]:
        return {
            "kind": "calibrated",
            "servers": self.servers,
            "service_ms": self.service_ms,
            "distribution": self.distribution,
            "capacity_rps": self.capacity,
            "shed_above_rps": self.shed_above,
        }


class CalibratedServer:
    """The queueing model plus the pending responses, shared by all connections."""

    def __init__(self, loop: asyncio.AbstractEventLoop, config: CalibratedConfig) -> None:
        self.config = config
        self.free_at = [0] * config.servers  # heap of the instants each server becomes free
        self.service_ns = int(config.service_ms * 1e6)
        self.rng = random.Random(config.seed)
        self.pending: list[tuple[int, int, _Conn, bytes, bool]] = []
        self.seq = itertools.count()
        self.timer = PreciseTimer(loop, self._release)
        self.recent: deque[int] = deque()
        self.served = 0
        self.shed = 0

    def admit(self, conn: _Conn, keep_alive: bool) -> None:
        now = monotonic_ns()
        if self.config.shed_above is not None and self._over_rate(now):
            self.shed += 1
            conn.respond(_SHED, keep_alive)
            return
        service = self.service_ns
        if self.config.distribution == "exponential":
            service = int(self.rng.expovariate(1.0) * self.service_ns)
        start = max(now, heapq.heappop(self.free_at))
        done = start + service
        heapq.heappush(self.free_at, done)
        done = max(done, conn.last_done)  # responses on one connection leave in order
        conn.last_done = done
        heapq.heappush(self.pending, (done, next(self.seq), conn, _OK if keep_alive else _OK_CLOSE, keep_alive))
        if self.pending[0][0] == done:
            self.timer.arm_at(done)

    def _over_rate(self, now: int) -> bool:
        """Whether `shed_above` requests were already admitted in the last second. Only the
        admitted count: counting the shed ones too would shed every request once the
        arrival rate passed the limit, instead of the requests beyond it."""
        recent = self.recent
        horizon = now - 1_000_000_000
        while recent and recent[0] < horizon:
            recent.popleft()
        if len(recent) >= self.config.shed_above:  # type: ignore[operator]
            return True
        recent.append(now)
        return False

    def _release(self) -> None:
        now = monotonic_ns()
        pending = self.pending
        while pending and pending[0][0] <= now:
            _, _, conn, payload, keep_alive = heapq.heappop(pending)
            self.served += 1
            conn.respond(payload, keep_alive)
        if pending:
            self.timer.arm_at(pending[0][0])


class _Conn(asyncio.Protocol):
    __slots__ = ("closed", "last_done", "parser", "server", "transport")

    def __init__(self, server: CalibratedServer) -> None:
        self.server = server
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpRequestParser(self)
        self.last_done = 0
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # a stream server's transports are Transports

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self.respond(_BAD, False)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True

    def on_message_complete(self) -> None:
        self.server.admit(self, self.parser.should_keep_alive())

    def respond(self, payload: bytes, keep_alive: bool) -> None:
        if self.closed:
            return
        self.transport.write(payload)  # type: ignore[union-attr]
        if not keep_alive:
            self.closed = True
            self.transport.close()  # type: ignore[union-attr]


async def serve(
    config: CalibratedConfig, host: str = "127.0.0.1", port: int = 0, ready: Callable[[int], None] | None = None
) -> None:
    """Serve until cancelled. `ready(port)` is called once listening."""
    loop = asyncio.get_running_loop()
    model = CalibratedServer(loop, config)
    server = await loop.create_server(lambda: _Conn(model), host, port, backlog=4096, reuse_address=True)
    bound = server.sockets[0].getsockname()[1]
    if ready is not None:
        ready(bound)
    async with server:
        await server.serve_forever()


def run_forever(config: CalibratedConfig, host: str, port: int, announce: Callable[[int], None] | None = None) -> None:
    """Blocking entry point for `redline lab calibrated`: prints one line (or calls
    `announce(port)` once listening), serves until Ctrl-C."""

    def ready(bound: int) -> None:
        if announce is not None:
            announce(bound)
            return
        print(
            f"calibrated target on http://{host}:{bound}/ : {config.servers} servers × "
            f"{config.service_ms:g} ms ({config.distribution}), capacity {config.capacity:g} requests/s",
            flush=True,
        )

    def stop(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    # SIGTERM (how redline stops the targets it starts) ends it as cleanly as Ctrl-C.
    signal.signal(signal.SIGTERM, stop)
    try:
        asyncio.run(serve(config, host, port, ready))
    except KeyboardInterrupt:
        print("calibrated target stopped", file=sys.stderr)
