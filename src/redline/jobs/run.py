"""`redline run` as a library call: one fixed-rate (or ramped) run stored in a run folder."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from redline.analysis.run_summary import summarize
from redline.load.engine import LoadPlan, LoadResult, Progress, run_load
from redline.model.run import RunResult
from redline.model.summary import RunSummary
from redline.store import RunFolder
from redline.store.layout import SAMPLES, TIMELINE


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
) -> RunOutcome:
    """`redline run`: one fixed-rate (or ramped) run, stored in a new run folder."""
    folder = RunFolder.create(results_dir, name)
    if on_folder is not None:
        on_folder(folder)
    doc = RunResult(**RunFolder.header(target, plan.describe()))
    folder.write(doc)
    try:
        result = run_load(plan, on_progress=on_progress, stop=stop)
    except BaseException as exc:
        folder.write(dataclasses.replace(doc, status="failed", error=str(exc) or type(exc).__name__))
        raise
    folder.write_samples(result.samples)
    folder.write_timelines(result.timelines)
    window = result.window_s(plan.schedule.duration_s - plan.warmup_s)
    doc = dataclasses.replace(
        doc,
        summary=summarize(result.samples, window, plan.schedule.rate),
        health=result.health,
        wall_s=round(result.wall_s, 3),
        status="interrupted" if result.interrupted else "abandoned" if result.abandoned else "complete",
        abandoned_because=result.abandoned or None,
        files={"samples": SAMPLES, "timeline": TIMELINE},
    )
    folder.write(doc)
    return RunOutcome(folder, result, doc)
