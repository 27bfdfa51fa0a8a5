"""`redline run` as a library call: one fixed-rate (or ramped) run stored in a run folder."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from redline.analysis.run_summary import summarize
from redline.load.engine import LoadPlan, LoadResult, Progress, run_load
from redline.report.run_folder import RunFolder

TIMELINE = "timeline.npz"


@dataclass(frozen=True)
class RunOutcome:
    folder: RunFolder
    result: LoadResult
    document: dict

    @property
    def summary(self) -> dict:
        return self.document["summary"]


def run_fixed_rate(
    plan: LoadPlan,
    target: dict,
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
    doc = folder.header("run", target, plan.describe())
    folder.write_json(doc)
    try:
        result = run_load(plan, on_progress=on_progress, stop=stop)
    except BaseException as exc:
        doc["status"] = "failed"
        doc["error"] = str(exc) or type(exc).__name__
        folder.write_json(doc)
        raise
    folder.save_samples(result.samples)
    save_timelines(folder, result)
    window = result.window_s(plan.schedule.duration_s - plan.warmup_s)
    doc["summary"] = summarize(result.samples, window, plan.schedule.rate)
    doc["health"] = result.health.to_dict()
    doc["wall_s"] = round(result.wall_s, 3)
    doc["status"] = "interrupted" if result.interrupted else "abandoned" if result.abandoned else "complete"
    if result.abandoned:
        doc["abandoned_because"] = result.abandoned
    doc["files"] = {"samples": "samples.npz", "timeline": TIMELINE}
    folder.write_json(doc)
    return RunOutcome(folder, result, doc)


def save_timelines(folder: RunFolder, result: LoadResult) -> None:
    """Each worker's timeline (in flight, backlog, open connections, CPU) in one .npz."""
    arrays = {}
    for i, tl in enumerate(result.timelines):
        for k, v in tl.items():
            arrays[f"w{i}_{k}"] = v
    with open(folder.path / TIMELINE, "wb") as fh:
        np.savez(fh, **arrays)
