"""Run one open-loop load plan over N worker processes and return its samples and health.

The parent checks that the target answers at all, deals the schedule out to the
workers, gives them one common start time, shows progress, and turns Ctrl-C or
SIGTERM into an orderly stop in which every worker hands back what it measured.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from time import monotonic_ns
from types import FrameType
from typing import Any, cast

import numpy as np

from redline.errors import TargetUnreachable, UserError
from redline.load.chunks import ChunkCollector, InMemory, SampleSink
from redline.load.health import judge
from redline.load.request import RequestTemplate, Target
from redline.load.schedule import Schedule
from redline.load.worker import WorkerSpec, worker_main
from redline.model.health import GeneratorHealth, WorkerStats
from redline.model.histograms import RunHistograms
from redline.model.samples import RequestOutcome, SampleClock, Samples

START_DELAY_NS = 300_000_000  # between "all workers ready" and the common start
# A worker wakes once for every request due within this much of the first one due, so its
# CPU follows the rate instead of the number of wake-ups; each request's lag (≤ the slack)
# is measured and counts in its latency.
DEFAULT_SLACK_US = 100
MAX_SLACK_US = 1000
WORKER_START_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class LoadPlan:
    """Everything one run needs. `schedule` spans warm-up plus measurement."""

    target: Target
    request: RequestTemplate
    schedule: Schedule
    warmup_s: float = 0.0
    workers: int | None = None  # default: one per CPU given to the generator
    cpus: tuple[int, ...] | None = None
    connection_cap: int = 1000
    connect_timeout_s: float = 5.0
    read_timeout_s: float = 10.0
    slack_us: int = DEFAULT_SLACK_US

    def __post_init__(self) -> None:
        if self.warmup_s < 0 or self.warmup_s >= self.schedule.duration_s:
            raise UserError("warm-up must be shorter than the whole run")
        if self.connection_cap < 1:
            raise UserError("the connection cap must be at least 1")
        if self.read_timeout_s <= 0 or self.connect_timeout_s <= 0:
            raise UserError("timeouts must be positive")
        if not 0 <= self.slack_us <= MAX_SLACK_US:
            raise UserError(f"the dispatch slack must be between 0 and {MAX_SLACK_US} µs")

    @property
    def worker_count(self) -> int:
        if self.workers:
            return self.workers
        return len(self.cpus) if self.cpus else len(os.sched_getaffinity(0))

    def describe(self) -> dict[str, Any]:
        return {
            "rate": self.schedule.rate,
            "end_rate": self.schedule.end_rate,
            "arrival": self.schedule.arrival,
            "seed": self.schedule.seed,
            "duration_s": self.schedule.duration_s - self.warmup_s,
            "warmup_s": self.warmup_s,
            "workers": self.worker_count,
            "cpus": list(self.cpus) if self.cpus else None,
            "connection_cap": self.connection_cap,
            "connect_timeout_s": self.connect_timeout_s,
            "read_timeout_s": self.read_timeout_s,
            "dispatch_slack_us": self.slack_us,
            "request": self.request.describe(),
        }


@dataclass(frozen=True)
class Progress:
    """A live view, twice a second: counts so far and the last interval's latencies."""

    elapsed_s: float
    span_s: float
    due: int  # rows whose intended time has passed
    finished: int
    errors: int
    interval_rate: float  # responses per second over the last interval
    p50_ms: float | None
    p99_ms: float | None
    warming_up: bool


@dataclass(frozen=True)
class LoadResult:
    """`samples` holds every row when the run kept them in memory (the default sink);
    with another sink the rows went there and only the streaming figures are here."""

    samples: Samples | None
    clock: SampleClock
    rows: int  # rows handed over by the workers (every scheduled row of a complete run)
    health: GeneratorHealth
    timelines: list[dict[str, np.ndarray]]
    interrupted: bool
    abandoned: str | None  # why the run was given up (target gone), else None
    wall_s: float
    worker_pids: tuple[int, ...] = field(default=())
    stopped_early: str | None = None  # the stop_check's reason, when it ended the run
    stopped_at_ns: int = 0  # when the run was stopped (early or interrupted), else 0
    histograms: RunHistograms = field(default_factory=lambda: RunHistograms((), ()))

    def window_s(self, planned_s: float) -> float:
        """The measurement window actually run: shorter than planned when stopped."""
        if not self.stopped_at_ns:
            return planned_s
        return max(0.0, min(planned_s, (self.stopped_at_ns - self.clock.measure_from_ns) / 1e9))

    @property
    def kept(self) -> Samples:
        """The rows, for callers that ran with the in-memory sink."""
        if self.samples is None:
            raise RuntimeError("this run's rows went to its sink, not to memory")
        return self.samples


class _StopFlag:
    """Set by SIGINT / SIGTERM (or a caller's event) while a run is under way."""

    def __init__(self, external: threading.Event | None) -> None:
        self.external = external
        self.reason = ""
        self.early = False  # stopped by the caller's stop_check, not by the user
        self.at_ns = 0

    def set(self, reason: str, early: bool = False) -> None:
        if not self.reason:
            self.reason = reason
            self.early = early
            self.at_ns = monotonic_ns()

    def __bool__(self) -> bool:
        if not self.reason and self.external is not None and self.external.is_set():
            self.reason = "stop requested"
        return bool(self.reason)


def preflight(target: Target, timeout_s: float) -> None:
    """One TCP connect, so that a wrong URL fails in a second with a clear reason."""
    try:
        with socket.create_connection((target.host, target.port), timeout=timeout_s):
            pass
    except socket.gaierror as exc:
        raise TargetUnreachable(f"cannot resolve {target.host!r}: {exc.strerror}") from None
    except ConnectionRefusedError:
        raise TargetUnreachable(f"connection refused by {target.base_url}") from None
    except TimeoutError:
        raise TargetUnreachable(f"no answer from {target.base_url} within {timeout_s:g} s") from None
    except OSError as exc:
        raise TargetUnreachable(f"cannot connect to {target.base_url}: {exc.strerror or exc}") from None


def run_load(
    plan: LoadPlan,
    on_progress: Callable[[Progress], None] | None = None,
    stop: threading.Event | None = None,
    stop_check: StopCheck | None = None,
    on_start: Callable[[tuple[int, ...]], None] | None = None,
    sink: SampleSink | None = None,
) -> LoadResult:
    """Run `plan`. `stop_check(live_view, now_ns)` is asked twice a second; a reason it
    returns ends the run early (not counted as an interruption). `on_start(pids)` gets
    the worker pids once they are ready (e.g. for a monitor). The rows go to `sink` as the
    workers hand them over (default: kept in memory and returned as `samples`)."""
    preflight(plan.target, plan.connect_timeout_s)
    plan.target.ssl_context()  # a bad CA file fails here, not in every worker
    payloads, iterations = plan.request.compile(plan.target)
    rows = plan.schedule.count()
    if rows == 0:
        raise UserError("the schedule holds no request: raise the rate or the duration")
    n_workers = max(1, min(plan.worker_count, rows))
    memory = InMemory() if sink is None else None
    sink = sink if sink is not None else memory
    assert sink is not None
    span_ns = int(plan.schedule.duration_s * 1e9)
    cap = max(1, -(-plan.connection_cap // n_workers))

    flag = _StopFlag(stop)
    restore = _install_signal_handlers(flag)
    parent_affinity = os.sched_getaffinity(0)
    if plan.cpus:
        _set_affinity(plan.cpus)
    ctx = mp.get_context("spawn")
    procs: list[BaseProcess] = []
    pipes: list[Connection] = []
    try:
        for i in range(n_workers):
            parent_end, child_end = ctx.Pipe()
            spec = WorkerSpec(
                index=i,
                workers=n_workers,
                schedule=plan.schedule,
                span_ns=span_ns,
                payloads=payloads,
                target=plan.target,
                connection_cap=cap,
                connect_timeout_s=plan.connect_timeout_s,
                read_timeout_s=plan.read_timeout_s,
                cpus=plan.cpus,
                iterations=iterations,
                slack_ns=plan.slack_us * 1000,
            )
            proc: BaseProcess = ctx.Process(
                target=worker_main, args=(spec, child_end), name=f"redline-worker-{i}", daemon=True
            )
            proc.start()
            child_end.close()
            procs.append(proc)
            pipes.append(parent_end)
        pids = _await_ready(pipes, flag)
        if flag:
            for p in pipes:
                p.send(("stop", flag.reason))
            raise KeyboardInterrupt
        if on_start is not None:
            on_start(tuple(pids))
        anchor_mono, anchor_wall = monotonic_ns(), time.time_ns()
        start_ns = anchor_mono + START_DELAY_NS
        clock = SampleClock(start_ns, start_ns + int(plan.warmup_s * 1e9), anchor_mono, anchor_wall)
        sink.begin(clock, iterations.names if iterations else (), iterations.prev if iterations else ())
        collector = ChunkCollector(n_workers, clock, sink)
        for p in pipes:
            p.send(("go", start_ns))
        # Only an early stop reads every row's state mid-run: a run without one keeps none.
        live = None
        if stop_check is not None:
            live = LiveView(plan.schedule.offsets_ns(), n_workers, start_ns, clock.measure_from_ns)
        results = _supervise(pipes, procs, flag, live, collector, span_ns, plan, on_progress, stop_check)
    finally:
        sink.close()
        restore()
        if plan.cpus:
            _set_affinity(tuple(parent_affinity))
        for proc in procs:
            proc.join(timeout=2)
            if proc.is_alive():
                proc.kill()

    samples = memory.samples() if memory is not None else None
    return _merge(plan, results, collector, clock, samples, flag, tuple(pids))


def _set_affinity(cpus: Iterable[int]) -> None:
    try:
        os.sched_setaffinity(0, cpus)
    except OSError as exc:
        raise UserError(f"cannot pin to CPUs {list(cpus)}: {exc.strerror}") from None


def _install_signal_handlers(flag: _StopFlag) -> Callable[[], None]:
    # Imported here: this function is the only part of the engine that needs it.
    from redline import interrupts

    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    previous = {}

    def handler(signum: int, _frame: FrameType | None) -> None:
        interrupts.record(signum)
        flag.set(signal.Signals(signum).name)

    for sig in (signal.SIGINT, signal.SIGTERM):
        previous[sig] = signal.signal(sig, handler)

    def restore() -> None:
        for sig, old in previous.items():
            signal.signal(sig, old)

    return restore


def _await_ready(pipes: list[Connection], flag: _StopFlag) -> list[int]:
    pids = [0] * len(pipes)
    waiting = set(range(len(pipes)))
    deadline = time.monotonic() + WORKER_START_TIMEOUT_S
    while waiting and not flag:
        if time.monotonic() > deadline:
            raise UserError("load generator workers did not start within 30 s")
        for p in _readable([pipes[i] for i in waiting], timeout=0.2):
            try:
                msg = p.recv()
            except EOFError:
                raise UserError("a load generator worker died while starting") from None
            if msg[0] == "failed":
                raise UserError(f"load generator worker {msg[1]} failed to start: {msg[2]}")
            pids[msg[1]] = msg[2]
            waiting.discard(msg[1])
    return pids


def _readable(pipes: list[Connection], timeout: float) -> list[Connection]:
    # `wait` answers with some of the objects it was given: here, only pipes.
    return cast("list[Connection]", wait(pipes, timeout=timeout))


class LiveView:
    """What the parent knows mid-run: every row's intended time, and done/outcome of the
    rows answered so far (workers report them twice a second). Feeds the progress line
    and lets a caller stop a probe that is already clearly degraded."""

    def __init__(self, offsets_ns: np.ndarray, n_workers: int, start_ns: int, measure_from_ns: int) -> None:
        self.n_workers = n_workers
        self.intended = offsets_ns + start_ns
        self.done = np.full(offsets_ns.size, -1, dtype=np.int64)
        self.outcome = np.full(offsets_ns.size, -1, dtype=np.int8)
        self.start_ns = start_ns
        self.measure_from_ns = measure_from_ns

    def update(self, worker: int, rows: np.ndarray, done: np.ndarray, outcome: np.ndarray) -> None:
        """Record a worker's report."""
        idx = rows * self.n_workers + worker  # the schedule was dealt round robin
        self.done[idx] = done
        self.outcome[idx] = outcome

    def snapshot(self) -> Samples:
        """Rows so far as Samples; open rows carry outcome −1 and done −1."""
        n = self.intended.size
        return Samples(
            intended_ns=self.intended,
            sent_ns=np.full(n, -1, dtype=np.int64),
            done_ns=self.done.copy(),
            status=np.zeros(n, dtype=np.int16),
            outcome=self.outcome.copy(),
            bytes_in=np.zeros(n, dtype=np.int32),
            worker=np.zeros(n, dtype=np.int16),
            start_ns=self.start_ns,
            measure_from_ns=self.measure_from_ns,
            anchor_mono_ns=0,
            anchor_wall_ns=0,
        )


StopCheck = Callable[[LiveView, int], "str | None"]


def _supervise(
    pipes: list[Connection],
    procs: list[BaseProcess],
    flag: _StopFlag,
    live: LiveView | None,
    collector: ChunkCollector,
    span_ns: int,
    plan: LoadPlan,
    on_progress: Callable[[Progress], None] | None,
    stop_check: StopCheck | None,
) -> tuple[list[dict[str, Any]], list[str]]:
    n = len(pipes)
    start_ns = collector.start_ns
    results: list[dict[str, Any] | None] = [None] * n
    failures: list[str] = []
    state = {i: (0, 0, 0) for i in range(n)}  # next_row, answered (status < 400), errors
    recent: list[np.ndarray] = []
    last_report = monotonic_ns()
    last_ok = 0
    stop_sent = False
    open_pipes = {i: pipes[i] for i in range(n)}
    while open_pipes:
        if flag and not stop_sent:
            for p in open_pipes.values():
                with contextlib.suppress(OSError):
                    p.send(("stop", flag.reason))
            stop_sent = True
        ready = _readable(list(open_pipes.values()), timeout=0.1)
        for p in ready:
            i = next(k for k, v in open_pipes.items() if v is p)
            try:
                msg = p.recv()
            except (EOFError, OSError):
                procs[i].join(timeout=1)
                failures.append(f"worker {i} exited without results (exit code {procs[i].exitcode})")
                del open_pipes[i]
                continue
            kind = msg[0]
            if kind == "progress":
                _, _, _now, next_row, answered, errors, rows, done, outcome, latency = msg
                state[i] = (next_row, answered, errors)
                if live is not None:
                    live.update(i, rows, done, outcome)
                answered_now = latency[outcome <= RequestOutcome.HTTP]
                if answered_now.size:
                    recent.append(answered_now)
            elif kind == "chunk":
                collector.add(i, msg[2])
            elif kind == "result":
                results[i] = msg[2]
                del open_pipes[i]
            elif kind == "failed":
                failures.append(f"worker {i} failed: {msg[2]}")
                del open_pipes[i]
        now = monotonic_ns()
        if now - last_report >= 500_000_000:
            if stop_check is not None and live is not None and not flag and now > start_ns:
                reason = stop_check(live, now)
                if reason:
                    flag.set(reason, early=True)
            if on_progress is not None:
                ok = sum(s[1] for s in state.values())
                errors = sum(s[2] for s in state.values())
                finished = ok + errors
                lat = np.concatenate(recent) if recent else np.zeros(0, dtype=np.int64)
                p50, p99 = (np.percentile(lat, [50, 99]) / 1e6).tolist() if lat.size else (None, None)
                elapsed = (now - start_ns) / 1e9
                on_progress(
                    Progress(
                        elapsed_s=max(0.0, elapsed),
                        span_s=span_ns / 1e9,
                        due=sum(s[0] for s in state.values()),
                        finished=finished,
                        errors=errors,
                        interval_rate=(ok - last_ok) / ((now - last_report) / 1e9),
                        p50_ms=p50,
                        p99_ms=p99,
                        warming_up=elapsed < plan.warmup_s,
                    )
                )
                last_ok = ok
            recent.clear()
            last_report = now
    if failures and all(r is None for r in results):
        raise UserError("; ".join(failures))
    return [r for r in results if r is not None], failures


def _merge(
    plan: LoadPlan,
    results_and_failures: tuple[list[dict[str, Any]], list[str]],
    collector: ChunkCollector,
    clock: SampleClock,
    samples: Samples | None,
    flag: _StopFlag,
    pids: tuple[int, ...],
) -> LoadResult:
    results, failures = results_and_failures
    stats: list[WorkerStats] = []
    timelines: list[dict[str, np.ndarray]] = []
    for idx, r in enumerate(results):
        timelines.append(r["timeline"])
        stats.append(
            WorkerStats(
                index=idx,
                pid=r["pid"],
                cpus=tuple(r["cpus"]),
                cpu_s=r["cpu_ns"] / 1e9,
                wall_s=r["wall_ns"] / 1e9,
                cap_hits=r["cap_hits"],
                connects=r["connects"],
                connect_failures=r["connect_failures"],
                retries=r["retries"],
                end_reason=r["end_reason"],
            )
        )
    health = judge(collector.keeping, stats, timelines, plan.connection_cap)
    if failures:
        health = _with_notes(health, failures)
    abandoned = next((s.end_reason for s in stats if s.end_reason.startswith("target stopped")), None)
    stopped_early = flag.reason if flag.early else None
    interrupted = not flag.early and (bool(flag) or any(s.end_reason.startswith("interrupted") for s in stats))
    wall = max((s.wall_s for s in stats), default=0.0)
    return LoadResult(
        samples,
        clock,
        collector.rows,
        health,
        timelines,
        interrupted,
        abandoned,
        wall,
        pids,
        stopped_early,
        flag.at_ns,
        collector.histograms(),
    )


def _with_notes(health: GeneratorHealth, notes: list[str]) -> GeneratorHealth:
    return replace(health, notes=health.notes + tuple(notes))


def outcome_counts(samples: Samples) -> dict[str, int]:
    counts = np.bincount(samples.outcome.astype(np.int64), minlength=len(RequestOutcome))
    return {o.name.lower(): int(counts[o]) for o in RequestOutcome if counts[o]}
