"""One load-generator process: follows its share of the schedule on a uvloop event loop.

The parent sends `("go", start_ns)` once every worker is ready, so that all share one
start; it may send `("stop", reason)` at any time. Twice a second the worker reports
progress and hands over, as one `("chunk", ...)` message, the columns of the rows finished
since the last chunk (every row before the first still open), so that its memory stays
bounded however long the run; it ends with one `("result", ...)` message holding its
counters and timeline.
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
from dataclasses import dataclass
from multiprocessing.connection import Connection as Pipe
from time import monotonic_ns
from typing import Any

import numpy as np

from redline.load.client import IterationPool, Pool
from redline.load.recorder import Recorder
from redline.load.request import Iterations, Target
from redline.load.schedule import Schedule
from redline.load.timer import PreciseTimer
from redline.model.samples import RequestOutcome

TICK_S = 0.1  # housekeeping: timeouts, timeline
PROGRESS_EVERY = 5  # ticks between progress reports
DEATH_AFTER_NS = 2_000_000_000  # no response and only failed connects for this long: target gone
DEATH_MIN_FAILURES = 10
SATURATED_WAKE_NS = 200_000
# Rows a worker must be able to hold open at once: its rate times the longest a row can
# stay open (connect plus read timeout), plus the rows between two flushes and a margin.
OPEN_MARGIN_S = 3.0
MIN_RING = 1024


@dataclass(frozen=True)
class WorkerSpec:
    index: int
    workers: int  # this worker takes every `workers`-th arrival of `schedule`, from `index`
    schedule: Schedule
    span_ns: int  # length of the whole schedule: nothing is sent after start + span
    payloads: list[bytes]
    target: Target
    connection_cap: int
    connect_timeout_s: float
    read_timeout_s: float
    cpus: tuple[int, ...] | None
    iterations: Iterations | None = None  # set when requests are multi-step iterations
    slack_ns: int = 0  # one wake-up sends every row due within this of the first (LoadPlan.slack_us)

    @property
    def rows(self) -> int:
        return self.schedule.share_count(self.index, self.workers)

    def ring_capacity(self) -> int:
        """Slots for the rows this worker can have open at once (never more than its rows)."""
        rate = max(self.schedule.rate, self.schedule.final_rate) / self.workers
        horizon_s = self.connect_timeout_s + self.read_timeout_s + PROGRESS_EVERY * TICK_S + OPEN_MARGIN_S
        need = max(MIN_RING, int(rate * horizon_s))
        # A multiple of the payload count: slot % payloads == row % payloads, so a row gets
        # the same request whatever its slot.
        n = len(self.payloads)
        return min(self.rows, -(-need // n) * n)


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
        run.hand_over_rest()
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
        self.rec = Recorder(spec.ring_capacity(), len(its.names) if its else 0)
        self.n = spec.rows
        self.next_row = 0
        self.blocks = spec.schedule.share(spec.index, spec.workers)
        self.pending = np.zeros(0, dtype=np.int64)  # generated rows not yet in the ring
        self.stalled = False  # the next row has no slot yet: the ring is full of open rows
        self.unsent_tail: int | None = None  # abandoned: the outcome of every row not generated yet
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
        self._top_up()
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
        intended, dispatched, cap = rec.intended, rec.dispatched, rec.capacity
        pool = self.pool
        i = self.next_row
        now = monotonic_ns()
        while True:
            filled = rec.filled
            while i < filled and intended[i % cap] <= now:
                if pool.saturated:
                    i = self._queue_due(i, now)
                    break
                slot = i % cap
                dispatched[slot] = now
                pool.dispatch(slot, now)
                i += 1
                if not i & 63:
                    now = monotonic_ns()
            self.next_row = i
            if i < filled or filled >= self.n:
                break
            self._top_up()
            if rec.filled == filled:  # no room: housekeeping flushes and resumes
                self.stalled = True
                return
        self.stalled = False
        if i < rec.filled:
            due = intended[i % cap]
            if self.slack_ns:
                # Wake at the last row due within the slack: one wake-up for all of them.
                due = intended[(rec.first_after(due + self.slack_ns, i, rec.filled) - 1) % cap]
            if pool.saturated:
                # Every connection is busy: rows only join the queue, so wake up at most
                # every SATURATED_WAKE_NS instead of once per row (offered far above what
                # the target answers, per-row wake-ups would eat the generator's CPU).
                due = max(due, now + SATURATED_WAKE_NS)
            self.timer.arm_at(due)

    def _queue_due(self, i: int, now: int) -> int:
        """All rows due by `now` join the backlog at once; returns the next row."""
        rec = self.rec
        j = rec.first_after(now, i, rec.filled)
        dispatched = np.frombuffer(rec.dispatched, dtype=np.int64)
        for s, e in rec.segments(i, j):
            dispatched[s:e] = now
            self.pool.backlog.extend(range(s, e))
        self.pool.cap_hits += j - i
        return j

    def _top_up(self) -> None:
        """Generate rows into the ring until it holds half a ring ahead (or is full)."""
        rec = self.rec
        if self.unsent_tail is not None:
            return  # abandoned: the rest is generated only to be marked unsent
        while rec.filled < self.n and rec.filled - self.next_row < rec.capacity // 2:
            if not self.pending.size:
                self.pending = next(self.blocks) + self.start_ns
            k = min(rec.room, self.pending.size)
            if not k:
                return
            rec.fill(self.pending[:k])
            self.pending = self.pending[k:]

    def _flush(self) -> None:
        """Hand the finished rows at the front of the ring to the parent."""
        rec = self.rec
        hi = rec.frontier(self.next_row)
        if hi > rec.base:
            self._send(("chunk", self.spec.index, rec.take(hi)))

    def _age_backlog(self) -> None:
        """The ring is full and the oldest rows still wait for a connection: rows queued
        for longer than any request can take are given up as unsent, to free their slots."""
        backlog = self.pool.backlog
        give_up = [backlog.popleft() for _ in range(min(len(backlog), self.rec.capacity // 8 + 1))]
        self.rec.mark_unsent(give_up, int(RequestOutcome.UNSENT_BACKLOG))

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
        if self.ticks % PROGRESS_EVERY == 0 or self.stalled:
            # Report before flushing: the report maps its slots to rows not yet taken.
            self._report(now)
            if self.stalled and self.pool.backlog and self.rec.frontier(self.next_row) == self.rec.base:
                self._age_backlog()
            self._flush()
            if self.stalled and not self.abandoned:
                self._schedule()
        else:
            self._top_up()
        self._watch_target(now)
        # Past the schedule: what still waits for a connection will never be sent.
        if now >= self.end_ns and self.next_row >= self.n and self.pool.backlog:
            rows = list(self.pool.backlog)
            self.pool.backlog.clear()
            self.rec.mark_unsent(rows, int(RequestOutcome.UNSENT_BACKLOG))
        if self.rec.finished >= self.rows_to_finish:
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

    @property
    def rows_to_finish(self) -> int:
        """Rows that must end before the run does (an abandoned run ends its tail later)."""
        return self.rec.filled if self.unsent_tail is not None else self.n

    def _report(self, now: int) -> None:
        rows, done, outcome, latency = self.rec.take_recent()
        rec = self.rec
        self._send(
            ("progress", self.spec.index, now, self.next_row, rec.answered, rec.errors, rows, done, outcome, latency)
        )

    def _send(self, msg: tuple[Any, ...]) -> None:
        try:
            self.pipe.send(msg)
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
        self.rec.mark_rows_unsent(self.next_row, self.rec.filled, outcome)
        self.rec.mark_unsent(list(self.pool.backlog), outcome)
        self.pool.backlog.clear()
        self.next_row = self.rec.filled
        self.unsent_tail = outcome
        grace = min(self.spec.read_timeout_s, 1.0)
        self.loop.call_later(grace, self._after_grace, outcome)

    def _after_grace(self, outcome: int) -> None:
        self.pool.close_all()
        self._close_open_rows(outcome)
        self._finish(self.end_reason)

    def _close_open_rows(self, outcome: int) -> None:
        self.rec.mark_rows_unsent(self.rec.base, self.rec.filled, outcome)

    def _finish(self, reason: str) -> None:
        if not self.finished.done():
            if not self.abandoned:  # an interruption or a lost target keeps its own reason
                self.end_reason = reason
            self.finished.set_result(None)

    def hand_over_rest(self) -> None:
        """After the loop: every remaining row to the parent, the rows never generated of an
        abandoned run included (with its outcome), one ring at a time."""
        rec = self.rec
        # Rows closed without a response keep NOT_SET in done_ns.
        rec.mark_rows_unsent(rec.base, rec.filled, int(RequestOutcome.UNSENT_INTERRUPTED))
        self._flush_all()
        tail = int(RequestOutcome.UNSENT_INTERRUPTED) if self.unsent_tail is None else self.unsent_tail
        while rec.filled < self.n:
            self.next_row = rec.filled
            self.pending = self.pending if self.pending.size else next(self.blocks) + self.start_ns
            k = min(rec.room, self.pending.size)
            rec.fill(self.pending[:k])
            self.pending = self.pending[k:]
            rec.mark_rows_unsent(rec.filled - k, rec.filled, tail)
            self._flush_all()

    def _flush_all(self) -> None:
        if self.rec.filled > self.rec.base:
            self.pipe.send(("chunk", self.spec.index, self.rec.take(self.rec.filled)))

    def result(self) -> dict[str, Any]:
        return {
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
