"""One load-generator process: follows its share of the schedule on a uvloop event loop.

The parent sends `("go", start_ns)` once every worker is ready, so that all share one
start; it may send `("stop", reason)` at any time. The worker reports progress twice a
second and ends with one `("result", ...)` message holding its columns.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import resource
import signal
import ssl
import time
from array import array
from bisect import bisect_right
from dataclasses import dataclass
from multiprocessing.connection import Connection as Pipe
from time import monotonic_ns
from typing import Any

import numpy as np

from redline.analysis import hdr
from redline.load.client import IterationPool, Pool
from redline.load.recorder import Recorder
from redline.load.request import Iterations, Target
from redline.load.timer import PreciseTimer
from redline.model.samples import NOT_SET, RequestOutcome

TICK_S = 0.1  # housekeeping: timeouts, timeline
PROGRESS_EVERY = 5  # ticks between progress reports
DEATH_AFTER_NS = 2_000_000_000  # no response and only failed connects for this long: target gone
DEATH_MIN_FAILURES = 10
SATURATED_WAKE_NS = 200_000


@dataclass(frozen=True)
class WorkerSpec:
    index: int
    offsets_ns: np.ndarray  # this worker's intended send times, ns from the common start
    span_ns: int  # length of the whole schedule: nothing is sent after start + span
    payloads: list[bytes]
    target: Target
    connection_cap: int
    connect_timeout_s: float
    read_timeout_s: float
    cpus: tuple[int, ...] | None
    iterations: Iterations | None = None  # set when requests are multi-step iterations
    slack_ns: int = 0  # one wake-up sends every row due within this of the first (LoadPlan.slack_us)
    warmup_ns: int = 0  # rows due before start + warmup are outside the histograms' window


def worker_main(spec: WorkerSpec, pipe: Pipe) -> None:
    """Process entry point (spawned). Never raises: failures are reported on the pipe."""
    # The parent owns Ctrl-C and SIGTERM and tells workers to stop over the pipe, so that
    # a worker never dies with its samples unsent.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    try:
        if spec.cpus:
            os.sched_setaffinity(0, spec.cpus)
        _raise_fd_limit()
        import uvloop

        loop = uvloop.new_event_loop()
        asyncio.set_event_loop(loop)
        ssl_ctx = spec.target.ssl_context()
        pipe.send(("ready", spec.index, os.getpid()))
        msg = pipe.recv()
        if msg[0] != "go":
            pipe.send(("result", spec.index, None))
            return
        run = WorkerRun(loop, spec, pipe, ssl_ctx, start_ns=msg[1])
        loop.run_until_complete(run.main())
        pipe.send(("result", spec.index, run.result()))
    except Exception as exc:  # noqa: BLE001 — report, never a traceback on the user's terminal
        with contextlib.suppress(Exception):
            pipe.send(("failed", spec.index, f"{type(exc).__name__}: {exc}"))


def _raise_fd_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


class WorkerRun:
    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        spec: WorkerSpec,
        pipe: Pipe,
        ssl_ctx: ssl.SSLContext | None,
        start_ns: int,
    ) -> None:
        self.loop = loop
        self.spec = spec
        self.pipe = pipe
        self.start_ns = start_ns
        self.end_ns = start_ns + spec.span_ns
        its = spec.iterations
        self.rec = Recorder(spec.offsets_ns + start_ns, len(its.names) if its else 0)
        self.n = len(self.rec.intended)
        self.next_row = 0
        args = (loop, self.rec, spec.payloads, spec.target.host, spec.target.port, ssl_ctx)
        self.pool = (
            IterationPool(*args, spec.connection_cap, spec.connect_timeout_s, its)
            if its
            else Pool(*args, spec.connection_cap, spec.connect_timeout_s)
        )
        self.read_timeout_ns = int(spec.read_timeout_s * 1e9)
        self.slack_ns = spec.slack_ns
        self.finished = loop.create_future()
        self.abandoned = False
        self.end_reason = "completed"
        self.timeline = {k: array("q") for k in ("t_ns", "in_flight", "backlog", "open", "cpu_ns", "finished")}
        self.ticks = 0
        self.last_ok_ns = start_ns
        self.last_ok_count = 0
        self.failures_at_last_ok = 0
        self.timer = PreciseTimer(loop, self._schedule)

    async def main(self) -> None:
        self.cpu_start_ns = time.process_time_ns()
        if self.n:
            self.timer.arm_at(self.rec.intended[0])
        self._housekeeping()
        await self.finished
        self.timer.close()
        self.pool.close_all()
        for task in asyncio.all_tasks(self.loop):
            if task is not asyncio.current_task(self.loop):
                task.cancel()
        await asyncio.sleep(0)  # let transports and cancelled connects settle
        self.cpu_end_ns = time.process_time_ns()
        self._sample_timeline(monotonic_ns())

    # -- the schedule --

    def _schedule(self) -> None:
        """Dispatch every row whose time has come, then sleep until the next one."""
        if self.finished.done():
            return
        rec = self.rec
        intended, dispatched = rec.intended, rec.dispatched
        pool = self.pool
        i, n = self.next_row, self.n
        now = monotonic_ns()
        while i < n and intended[i] <= now:
            if pool.saturated:
                i = self._queue_due(i, now)
                break
            dispatched[i] = now
            pool.dispatch(i, now)
            i += 1
            if not i & 63:
                now = monotonic_ns()
        self.next_row = i
        if i < n:
            due = intended[i]
            if self.slack_ns:
                # Wake at the last row due within the slack: one wake-up for all of them.
                due = intended[bisect_right(intended, due + self.slack_ns, i, n) - 1]
            if pool.saturated:
                # Every connection is busy: rows only join the queue, so wake up at most
                # every SATURATED_WAKE_NS instead of once per row (offered far above what
                # the target answers, per-row wake-ups would eat the generator's CPU).
                due = max(due, now + SATURATED_WAKE_NS)
            self.timer.arm_at(due)

    def _queue_due(self, i: int, now: int) -> int:
        """All rows due by `now` join the backlog at once; returns the next row."""
        j = bisect_right(self.rec.intended, now, i, self.n)
        np.frombuffer(self.rec.dispatched, dtype=np.int64)[i:j] = now
        self.pool.backlog.extend(range(i, j))
        self.pool.cap_hits += j - i
        return j

    # -- housekeeping --

    def _housekeeping(self) -> None:
        if self.finished.done():
            return
        now = monotonic_ns()
        # Polled, not registered with the loop: add_reader would make the pipe
        # non-blocking, and a large send on it could then fail half-written.
        if self.pipe.poll():
            self._on_pipe()
        self.pool.expire(now, self.read_timeout_ns)
        self._sample_timeline(now)
        self.ticks += 1
        if self.ticks % PROGRESS_EVERY == 0:
            self._report(now)
        self._watch_target(now)
        # Past the schedule: what still waits for a connection will never be sent.
        if now >= self.end_ns and self.next_row >= self.n and self.pool.backlog:
            rows = list(self.pool.backlog)
            self.pool.backlog.clear()
            self.rec.mark_unsent(rows, int(RequestOutcome.UNSENT_BACKLOG))
        if self.rec.finished >= self.n:
            self._finish("completed")
            return
        if now >= self.end_ns + self.read_timeout_ns + 1_000_000_000:
            # Belt and braces: nothing should be open after the read timeout.
            self.pool.close_all()
            self._close_open_rows(int(RequestOutcome.TIMEOUT))
            self._finish("completed")
            return
        self.loop.call_later(TICK_S, self._housekeeping)

    def _sample_timeline(self, now: int) -> None:
        tl, pool = self.timeline, self.pool
        tl["t_ns"].append(now)
        tl["in_flight"].append(len(pool.busy))
        tl["backlog"].append(len(pool.backlog))
        tl["open"].append(pool.open_count)
        tl["cpu_ns"].append(time.process_time_ns())
        tl["finished"].append(self.rec.finished)

    def _report(self, now: int) -> None:
        rows, done, outcome = self.rec.take_recent()
        try:
            self.pipe.send(
                (
                    "progress",
                    self.spec.index,
                    now,
                    self.next_row,
                    self.rec.answered,
                    self.rec.errors,
                    rows,
                    done,
                    outcome,
                )
            )
        except OSError:
            self._stop("the controlling process went away")

    def _watch_target(self, now: int) -> None:
        """Abandon the run when the target is gone: only failed connects, no answer, for a while."""
        ok_count = self.rec.responses
        if ok_count != self.last_ok_count or self.pool.busy:
            self.last_ok_count = ok_count
            self.last_ok_ns = now
            self.failures_at_last_ok = self.pool.connect_failures
            return
        failures = self.pool.connect_failures - self.failures_at_last_ok
        if failures >= DEATH_MIN_FAILURES and now - self.last_ok_ns > DEATH_AFTER_NS:
            self.end_reason = f"target stopped accepting connections ({self.pool.last_connect_error})"
            self._abandon(int(RequestOutcome.UNSENT_ABORTED))

    # -- ending --

    def _on_pipe(self) -> None:
        try:
            msg = self.pipe.recv()
        except (EOFError, OSError):
            msg = ("stop", "the controlling process went away")
        if msg[0] == "stop":
            self._stop(msg[1])

    def _stop(self, reason: str) -> None:
        if self.abandoned:
            return
        self.end_reason = f"interrupted: {reason}"
        self._abandon(int(RequestOutcome.UNSENT_INTERRUPTED))

    def _abandon(self, outcome: int) -> None:
        """Stop sending: unsent rows get `outcome`; in-flight ones get a short grace."""
        if self.abandoned:
            return
        self.abandoned = True
        self.timer.cancel()
        self.rec.mark_unsent(range(self.next_row, self.n), outcome)
        self.rec.mark_unsent(list(self.pool.backlog), outcome)
        self.pool.backlog.clear()
        self.next_row = self.n
        grace = min(self.spec.read_timeout_s, 1.0)
        self.loop.call_later(grace, self._after_grace, outcome)

    def _after_grace(self, outcome: int) -> None:
        self.pool.close_all()
        self._close_open_rows(outcome)
        self._finish(self.end_reason)

    def _close_open_rows(self, outcome: int) -> None:
        self.rec.mark_unsent(range(self.n), outcome)

    def _finish(self, reason: str) -> None:
        if not self.finished.done():
            if not self.abandoned:  # an interruption or a lost target keeps its own reason
                self.end_reason = reason
            self.finished.set_result(None)

    def result(self) -> dict[str, Any]:
        cols = self.rec.columns()
        # Rows closed without a response keep NOT_SET in done_ns.
        cols["outcome"] = np.where(cols["outcome"] < 0, int(RequestOutcome.UNSENT_INTERRUPTED), cols["outcome"]).astype(
            np.int8
        )
        return {
            "columns": cols,
            "histograms": self._histograms(cols),
            "timeline": {k: np.frombuffer(v, dtype=np.int64).copy() for k, v in self.timeline.items()},
            "cpu_ns": self.cpu_end_ns - self.cpu_start_ns,
            "wall_ns": monotonic_ns() - self.start_ns,
            "cap_hits": self.pool.cap_hits,
            "connects": self.pool.connects,
            "connect_failures": self.pool.connect_failures,
            "last_connect_error": self.pool.last_connect_error,
            "retries": len(self.pool.retried),
            "end_reason": self.end_reason,
            "pid": os.getpid(),
            "cpus": sorted(os.sched_getaffinity(0)),
        }

    def _histograms(self, cols: dict[str, np.ndarray]) -> tuple[str, str]:
        """This worker's latency and schedule-lag histograms over the measurement window."""
        intended, done, dispatched = cols["intended_ns"], cols["done_ns"], cols["dispatched_ns"]
        measured = intended >= self.start_ns + self.spec.warmup_ns
        answered = measured & (cols["outcome"] <= RequestOutcome.HTTP) & (done != NOT_SET)
        sent = measured & (dispatched != NOT_SET)
        latency = hdr.of_ns(done[answered] - intended[answered])
        lag = hdr.of_ns(dispatched[sent] - intended[sent])
        return hdr.encode(latency), hdr.encode(lag)
