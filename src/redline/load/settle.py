"""Wait until a target has worked off the backlog an overloaded probe left behind.

A server keeps processing what it accepted after the client gave up, so the probe that
follows an overload would measure that leftover queue rather than its own rate. Before
such a probe we send one request at a time and wait until its latency is back near the
target's unloaded level — or a bounded time has passed, which is then reported.
"""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass
from typing import Any

import httptools

from redline.load.request import Target


@dataclass(frozen=True)
class Settled:
    settled: bool
    waited_s: float
    requests: int
    last_ms: float | None
    threshold_ms: float | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "settled": self.settled,
            "waited_s": round(self.waited_s, 3),
            "requests": self.requests,
            "last_ms": None if self.last_ms is None else round(self.last_ms, 3),
            "threshold_ms": None if self.threshold_ms is None else round(self.threshold_ms, 3),
        }


class _Response:
    def __init__(self) -> None:
        self.complete = False

    def on_message_complete(self) -> None:
        self.complete = True


def one_request_ms(target: Target, payload: bytes, timeout_s: float) -> float | None:
    """Latency of one request on a fresh connection, or None when it failed."""
    began = time.perf_counter()
    try:
        with socket.create_connection((target.host, target.port), timeout=timeout_s) as raw:
            ctx = target.ssl_context()
            sock = ctx.wrap_socket(raw, server_hostname=target.host) if ctx else raw
            sock.sendall(payload)
            resp = _Response()
            parser = httptools.HttpResponseParser(resp)
            while not resp.complete:
                chunk = sock.recv(65536)
                if not chunk:
                    return None
                parser.feed_data(chunk)
    except (OSError, httptools.HttpParserError):
        return None
    return (time.perf_counter() - began) * 1e3


def settle(
    target: Target,
    payload: bytes,
    baseline_ms: float | None,
    max_wait_s: float = 60.0,
    interval_s: float = 0.25,
) -> Settled:
    """Poll with single requests until latency ≤ 2 × baseline + 2 ms.

    Without a baseline (nothing was stable yet), wait until three answers in a row agree
    within a factor 1.5 and are not falling: the backlog is gone when latency stops
    improving.
    """
    threshold = None if baseline_ms is None else 2 * baseline_ms + 2.0
    began = time.monotonic()
    seen: list[float] = []
    last = None
    while True:
        last = one_request_ms(target, payload, timeout_s=max(1.0, max_wait_s / 4))
        waited = time.monotonic() - began
        if last is not None:
            seen.append(last)
            if threshold is not None and last <= threshold:
                return Settled(True, waited, len(seen), last, threshold)
            if threshold is None and len(seen) >= 3:
                a, b, c = seen[-3:]
                if max(a, b, c) <= 1.5 * min(a, b, c) and c >= 0.9 * a:
                    return Settled(True, waited, len(seen), last, threshold)
        if waited >= max_wait_s:
            return Settled(False, waited, len(seen), last, threshold)
        time.sleep(interval_s)
