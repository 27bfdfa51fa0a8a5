"""`redline run` as a library call: one fixed-rate (or ramped) run stored in a run folder."""

from __future__ import annotations

import dataclasses
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from redline.analysis.diagnosis import LoadFacts, diagnose_window
from redline.analysis.limit import limit_of_run
from redline.analysis.run_summary import summarize_parts
from redline.jobs.diagnosis import WindowProfiler, audit_findings, run_window
from redline.load.engine import LoadPlan, LoadResult, Progress, run_load
from redline.model.run import RunResult
from redline.model.summary import RunSummary
from redline.monitor import Monitor, PidList, ProcessSelector
from redline.store import RunFolder
from redline.store.layout import MONITOR, PROFILE, SAMPLE_PARTS, TIMELINE


@dataclass(frozen=True)
class RunOutcome:
    folder: RunFolder
    load: LoadResult
    result: RunResult

    @property
    def summary(self) -> RunSummary:
        assert self.result.summary is not None  # set once the run has ended
        return self.result.summary


def run_fixed_rate(
    plan: LoadPlan,
    target: dict[str, Any],
    results_dir: Path,
    name: str,
    on_progress: Callable[[Progress], None] | None = None,
    stop: threading.Event | None = None,
    on_folder: Callable[[RunFolder], None] | None = None,
    target_processes: ProcessSelector | None = None,
    profile: bool = False,
    audit_root: Path | None = None,
) -> RunOutcome:
    """`redline run`: one fixed-rate (or ramped) run, stored in a new run folder, with the host
    and the target's processes monitored and (when asked) the target profiled after warm-up."""
    folder = RunFolder.create(results_dir, name)
    if on_folder is not None:
        on_folder(folder)
    doc = RunResult(**RunFolder.header(target, plan.describe()))
    folder.write(doc)
    monitor = Monitor(interval_s=1.0)
    if target_processes is not None:
        monitor.add_group("target", target_processes)
    profiler = None
    if profile and target_processes is not None:
        pids = tuple(sorted(target_processes.resolve()))
        profiler = WindowProfiler(pids, folder.path / PROFILE, plan.warmup_s, plan.cpus).start()

    def on_start(pids: tuple[int, ...]) -> None:
        monitor.add_group("generator", PidList((os.getpid(), *pids)))

    monitor.start()
    try:
        try:
            # The rows go to the folder as the run goes: memory does not grow with its length,
            # and a run killed outright keeps every part written before.
            result = run_load(plan, on_progress=on_progress, stop=stop, on_start=on_start, sink=folder.sample_writer())
        finally:
            series = monitor.stop()
            folder.write_monitor(series)
            profiled = profiler.stop(folder) if profiler is not None else None
    except BaseException as exc:
        folder.write(dataclasses.replace(doc, status="failed", error=str(exc) or type(exc).__name__))
        raise
    folder.write_timelines(result.timelines)
    folder.write_histograms(result.histograms)
    window = result.window_s(plan.schedule.duration_s - plan.warmup_s)
    summary = summarize_parts(folder.sample_parts(), result.clock, window, plan.schedule.rate)
    # Judged on the measurement window only: the warm-up's ticks would dilute a saturation.
    findings = diagnose_window(run_window(series, result.clock.measure_from_ns), LoadFacts.of(summary, result.health))
    doc = dataclasses.replace(
        doc,
        summary=summary,
        health=result.health,
        wall_s=round(result.wall_s, 3),
        status="interrupted" if result.interrupted else "abandoned" if result.abandoned else "complete",
        abandoned_because=result.abandoned or None,
        files={"samples": SAMPLE_PARTS, "timeline": TIMELINE, "monitor": MONITOR},
        findings=findings,
        limit=limit_of_run(findings, profiled, audit_findings(audit_root)),
        profile=profiled,
        monitor=series.to_summary(),
        audit_root=str(audit_root) if audit_root else None,
    )
    folder.write(doc)
    return RunOutcome(folder, result, doc)
