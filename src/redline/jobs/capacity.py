"""`redline capacity` as a library call: search for N, the largest rate a target sustains.

The loop is thin: the policy (analysis.search) names the next rate, the engine runs the
probe while the monitor samples the host, the criterion (analysis.degradation) judges
it, and the run folder is rewritten after every probe so that nothing measured is lost.
"""

from __future__ import annotations

import dataclasses
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from redline.analysis.degradation import early_stop, judge
from redline.analysis.protocols import SearchProtocol
from redline.analysis.run_summary import summarize, warmup_summary
from redline.analysis.search import ProbeRecord, Step, next_step
from redline.jobs.diagnosis import WindowProfiler, probe_findings, with_limit
from redline.load.engine import DEFAULT_SLACK_US, LiveView, LoadPlan, LoadResult, Progress, run_load
from redline.load.request import RequestTemplate, Target
from redline.load.schedule import Schedule
from redline.load.settle import Settled, settle
from redline.model.capacity import CapacityResult, ProbeResult, SearchOutcome
from redline.model.series import MonitorSeries
from redline.model.summary import RunSummary
from redline.model.verdict import Verdict
from redline.monitor import Monitor, PidList, ProcessSelector
from redline.store import RunFolder
from redline.store.layout import MONITOR, PROBES_DIR, PROFILE, SAMPLES, probe_dir

SETTLE_MAX_S = 60.0


@dataclass(frozen=True)
class CapacityRequest:
    """What to search: the target, one request, the protocol, the generator's resources."""

    target: Target
    request: RequestTemplate
    protocol: SearchProtocol
    workers: int | None = None
    cpus: tuple[int, ...] | None = None
    connection_cap: int = 1000
    connect_timeout_s: float = 5.0
    read_timeout_s: float = 10.0
    slack_us: int = DEFAULT_SLACK_US
    arrival: str = "constant"
    target_processes: ProcessSelector | None = None
    monitor_interval_s: float = 1.0
    # Called before each probe with its length (s) for a fresh request (e.g. tokens
    # that stay valid through the probe); None: `request` for every probe.
    request_for: Callable[[float], RequestTemplate] | None = None
    # Sample the target's Python processes with py-spy during each probe's window.
    profile: bool = False
    # The configuration the limit is linked to (the audit's root: a lab's files, or "/").
    audit_root: Path | None = None
    unit: str = "request"  # what one request is, for the limit's sentence ("token issue")


@dataclass(frozen=True)
class ProbeReport:
    """One finished probe as the caller sees it (for progress lines)."""

    index: int
    step: Step
    verdict: Verdict
    summary: RunSummary
    stopped_early: str | None
    warmup_summary: RunSummary | None = None  # set when the probe stopped before its window


@dataclass(frozen=True)
class CapacityOutcome:
    folder: RunFolder
    outcome: SearchOutcome | None  # None when interrupted or abandoned before the end
    result: CapacityResult
    status: str  # complete, interrupted, abandoned


class CapacityHooks:
    """Callbacks for a front end; all optional."""

    def probe_started(self, index: int, step: Step, warmup_s: float, window_s: float) -> None: ...

    def progress(self, p: Progress) -> None: ...

    def probe_finished(self, report: ProbeReport) -> None: ...

    def settled(self, result: Settled) -> None: ...


def run_capacity(
    req: CapacityRequest,
    target_desc: dict[str, Any],
    results_dir: Path,
    name: str,
    hooks: CapacityHooks | None = None,
    stop: threading.Event | None = None,
    on_folder: Callable[[RunFolder], None] | None = None,
) -> CapacityOutcome:
    """Search for N. Setting `stop` ends the search as an interrupted one after (or, at the
    engine's next check, inside) the current probe; what was measured is kept."""
    hooks = hooks or CapacityHooks()
    folder = RunFolder.create(results_dir, name)
    if on_folder is not None:
        on_folder(folder)
    proto = req.protocol
    doc = CapacityResult(
        **RunFolder.header(target_desc, _plan(req)),
        protocol=proto.describe(),
        criterion=proto.criterion.name,
        files={"monitor": MONITOR, "probes": f"{PROBES_DIR}/<index>-<rate>/{SAMPLES}"},
    )
    folder.write(doc)
    began = time.monotonic()
    history: list[ProbeRecord] = []
    probes: list[ProbeResult] = []
    # Only named groups are watched: a scan of every process each tick (to find a host's
    # database) cost the search's own process 10-20 ms per tick, and made the generator late.
    monitor = Monitor(interval_s=req.monitor_interval_s)
    if req.target_processes is not None:
        monitor.add_group("target", req.target_processes)
    status, outcome, abandoned = "complete", None, None
    monitor.start()
    try:
        while True:
            if stop is not None and stop.is_set():
                status = "interrupted"
                break
            step = next_step(proto.search, history)
            if isinstance(step, SearchOutcome):
                outcome = step
                break
            index = len(history)
            warmup, window = proto.trial(step.full)
            settled = _settle_after_overload(req, history, probes)
            if settled is not None:
                hooks.settled(settled)
            hooks.probe_started(index, step, warmup, window)
            profiler = _profiler(req, folder, probe_dir(index, step.rate), warmup)
            try:
                result, started, ended = _probe(req, step, warmup, window, monitor, hooks, stop)
            finally:
                profile = profiler.stop(folder) if profiler is not None else None
            verdict = _verdict(req, step, window, result)
            cut = monitor.series().between(started, ended)  # one copy of the series per probe
            record = _record(index, step, warmup, window, result, verdict, started, ended, cut, folder, settled)
            record = dataclasses.replace(record, findings=probe_findings(cut, record), profile=profile)
            probes.append(record)
            doc = dataclasses.replace(doc, probes=tuple(probes), time_taken_s=round(time.monotonic() - began, 1))
            if result.interrupted:
                status = "interrupted"
                break
            if result.abandoned:
                status, abandoned = "abandoned", result.abandoned
                break
            achieved = record.summary.achieved_rps if record.summary.window_s > 0 else None
            history.append(ProbeRecord(step.rate, step.phase, step.full, verdict.state, step.attempt, achieved))
            folder.write(doc)
            hooks.probe_finished(
                ProbeReport(index, step, verdict, record.summary, result.stopped_early, record.warmup_summary)
            )
    except KeyboardInterrupt:
        # Ctrl-C or SIGTERM between probes (while settling, or before the engine took the
        # signals): the search is interrupted like one stopped inside a probe, not complete.
        status = "interrupted"
    finally:
        series = monitor.stop()
        folder.write_monitor(series)
        doc = dataclasses.replace(
            doc,
            monitor=series.to_summary(),
            time_taken_s=round(time.monotonic() - began, 1),
            status=status,
            abandoned_because=abandoned,
            outcome=outcome
            if outcome is not None
            else SearchOutcome(status, _best_known(history), f"the search was {status}"),  # type: ignore[arg-type]
        )
        doc = with_limit(doc, req.audit_root, req.unit)
        folder.write(doc)
    return CapacityOutcome(folder, outcome, doc, status)


def _profiler(req: CapacityRequest, folder: RunFolder, rel: str, warmup: float) -> WindowProfiler | None:
    if not req.profile or req.target_processes is None:
        return None
    pids = tuple(sorted(req.target_processes.resolve()))
    return WindowProfiler(pids, folder.path / rel / PROFILE, warmup, req.cpus).start()


def _settle_after_overload(
    req: CapacityRequest, history: list[ProbeRecord], probes: list[ProbeResult]
) -> Settled | None:
    """After a probe that was not stable, wait until the target has drained its backlog."""
    if not history or history[-1].state == "stable":
        return None
    stable_p50 = [p.summary.latency_ms["p50"] for p in probes if p.state == "stable" and p.summary.latency_ms]
    payload = req.request.render(req.target)[0]
    return settle(req.target, payload, min(stable_p50) if stable_p50 else None, SETTLE_MAX_S)


def _best_known(history: list[ProbeRecord]) -> float | None:
    return max((p.rate for p in history if p.state == "stable"), default=None)


def _plan(req: CapacityRequest) -> dict[str, Any]:
    return {
        "arrival": req.arrival,
        "workers": req.workers,
        "cpus": list(req.cpus) if req.cpus else None,
        "connection_cap": req.connection_cap,
        "connect_timeout_s": req.connect_timeout_s,
        "read_timeout_s": req.read_timeout_s,
        "dispatch_slack_us": req.slack_us,
        "request": req.request.describe(),
        "search": {
            k: getattr(req.protocol.search, k)
            for k in ("start_rate", "min_rate", "max_rate", "resolution_rel", "resolution_abs", "growth")
        },
    }


def _probe(
    req: CapacityRequest,
    step: Step,
    warmup: float,
    window: float,
    monitor: Monitor,
    hooks: CapacityHooks,
    stop: threading.Event | None,
) -> tuple[LoadResult, int, int]:
    base_workers = req.workers or (len(req.cpus) if req.cpus else len(os.sched_getaffinity(0)))
    plan = LoadPlan(
        target=req.target,
        request=req.request_for(warmup + window) if req.request_for is not None else req.request,
        schedule=Schedule(rate=step.rate, duration_s=warmup + window, arrival=req.arrival),  # type: ignore[arg-type]
        warmup_s=warmup,
        workers=base_workers + step.attempt,  # an inconclusive probe is retried with more processes
        cpus=req.cpus,
        connection_cap=req.connection_cap,
        connect_timeout_s=req.connect_timeout_s,
        read_timeout_s=req.read_timeout_s,
        slack_us=req.slack_us,
    )
    planned = int(step.rate * window)
    criterion = req.protocol.criterion

    def stop_check(live: LiveView, now_ns: int) -> str | None:
        verdict = early_stop(live.snapshot(), step.rate, now_ns, criterion, planned_requests=planned)
        return "; ".join(verdict.reasons) if verdict.stop else None

    def on_start(pids: tuple[int, ...]) -> None:
        monitor.add_group("generator", PidList((os.getpid(), *pids)))

    started = time.monotonic_ns()
    result = run_load(plan, on_progress=hooks.progress, stop=stop, stop_check=stop_check, on_start=on_start)
    return result, started, time.monotonic_ns()


def _verdict(req: CapacityRequest, step: Step, window: float, result: LoadResult) -> Verdict:
    criterion = req.protocol.criterion
    verdict = judge(result.kept, step.rate, result.health, criterion)
    if result.stopped_early and not result.health.generator_bound:
        # Stopped because it was already clearly degraded (possibly still in warm-up):
        # the partial window is too short for the trend tests, the reason to stop stands.
        reasons = (f"stopped early: {result.stopped_early}",) + (verdict.reasons if verdict.degraded else ())
        verdict = Verdict("degraded", criterion.name, reasons, verdict.figures)
    return verdict


def _record(
    index: int,
    step: Step,
    warmup: float,
    window: float,
    result: LoadResult,
    verdict: Verdict,
    started: int,
    ended: int,
    cut: MonitorSeries,
    folder: RunFolder,
    settled: Settled | None,
) -> ProbeResult:
    rel = probe_dir(index, step.rate)
    folder.write_samples(result.kept, rel)
    folder.write_timelines(result.timelines, rel)
    folder.write_histograms(result.histograms, rel)
    groups = {k: float(np.nanmean(v)) if v.size and np.isfinite(v).any() else None for k, v in cut.groups.items()}
    return ProbeResult(
        index=index,
        rate=step.rate,
        phase=step.phase,
        full=step.full,
        attempt=step.attempt,
        workers=len(result.health.workers),
        warmup_s=warmup,
        window_s=window,
        started_ns=started,
        ended_ns=ended,
        interrupted=result.interrupted,
        stopped_early=result.stopped_early,
        verdict=verdict,
        summary=summarize(result.kept, result.window_s(window), step.rate),
        warmup_summary=warmup_summary(result.kept, result.stopped_at_ns, step.rate),
        health=result.health,
        target_cpu_pct=groups.get("target"),
        generator_cpu_pct=groups.get("generator"),
        dir=rel,
        settle_before=settled.to_dict() if settled is not None else None,
    )
