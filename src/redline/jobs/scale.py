"""`redline scale` as a library call: storms at several sizes in one run folder, then the fits.

Each storm is a complete storm run folder inside the scale folder (its own run.json,
phases, monitor, report), so any size can be looked at on its own. Sizes run in rounds
(1,2,4,8, then 1,2,4,8 again with --repeat 2), so a drift of the host over time spreads
over all sizes instead of biasing the largest. run.json is rewritten after every storm:
an interrupted or failed scale run keeps the points it measured.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from redline.analysis.scalability import ScaleFit, fit, sentences
from redline.analysis.storm_diagnosis import fastest_growing_phase
from redline.errors import UserError
from redline.jobs.storm import StormOutcome, diagnose_storm_folder, new_run_id, run_storm_job
from redline.model.finding import Finding
from redline.model.storm import ScalePoint, ScaleResult, StormRunResult, StormSummary
from redline.model.storm_diagnosis import PhaseCpu
from redline.monitor import ProcessSelector
from redline.store import RunFolder
from redline.storm.analysis import span_to_ssh_s
from redline.storm.driver import StormDriver
from redline.storm.model import PHASE_NAMES, InstanceSpec, StormPlan

# (run id, plan) -> (driver, its instance specs, the target's description)
DriverFactory = Callable[[str, StormPlan], tuple[StormDriver, list[InstanceSpec], dict[str, Any]]]


@dataclass
class ScaleOutcome:
    folder: RunFolder
    points: list[ScalePoint] = field(default_factory=list)
    usl: ScaleFit | None = None
    amdahl: ScaleFit | None = None
    sentences: list[str] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    document: ScaleResult = field(default_factory=ScaleResult)


def run_scale_job(
    make_driver: DriverFactory,
    sizes: list[int],
    plan_for: Callable[[int], StormPlan],
    target: dict[str, Any],
    results_dir: Path,
    repeat: int = 1,
    on_storm_start: Callable[[int, int, str], None] | None = None,
    on_storm_done: Callable[[StormOutcome, ScalePoint | None], None] | None = None,
    boot: int = 400,
    monitor_groups: Mapping[str, ProcessSelector] | None = None,
) -> ScaleOutcome:
    """`monitor_groups`: as for run_storm_job (None: the hypervisor host's)."""
    folder = RunFolder.create(results_dir, f"scale-{'-'.join(map(str, sizes))}")
    doc = ScaleResult(
        **RunFolder.header(target, {"counts": sizes, "repeat": repeat, "storm": plan_for(sizes[0]).to_dict()})
    )
    folder.write(doc)
    out = ScaleOutcome(folder, document=doc)
    largest: tuple[int, tuple[PhaseCpu, ...]] = (0, ())  # the largest storm so far and its phase CPU
    try:
        for rnd in range(repeat):
            for n in sizes:
                plan = plan_for(n)
                run_id = new_run_id()
                drv, specs, _ = make_driver(run_id, plan)
                if on_storm_start is not None:
                    on_storm_start(n, rnd, run_id)
                storm = run_storm_job(drv, specs, plan, run_id, target, folder.path, monitor_groups=monitor_groups)
                if storm.result.interrupted:
                    raise KeyboardInterrupt
                r = storm.result
                goal = r.mark_label(r.goal)
                if not out.points:  # what T(N) runs to, in the storms' own words (a console marker, …)
                    doc = dataclasses.replace(doc, goal_label=_goal_label(goal), labels=dict(r.labels))
                t = span_to_ssh_s(r.marks_s, r.goal)
                point = (
                    None if t is None else ScalePoint(n, rnd, t, storm.folder.path.name, phase_medians(storm.summary))
                )
                if on_storm_done is not None:
                    on_storm_done(storm, point)
                if point is None:
                    s = storm.summary
                    raise UserError(f"the storm of {n} did not complete ({s.reached[r.goal]}/{n} reached {goal}), "
                                    f"so it has no time to fit: see {storm.folder.path}")  # fmt: skip
                out.points.append(point)
                if n >= largest[0]:  # the latest complete storm of the largest size
                    largest = (n, storm.document.phase_cpu)
                doc = out.document = dataclasses.replace(doc, points=tuple(out.points))
                folder.write(doc)
    except BaseException as exc:
        status = "interrupted" if isinstance(exc, KeyboardInterrupt) else "failed"
        out.findings = scale_findings(doc, largest[1])  # what the points measured so far say
        doc = out.document = dataclasses.replace(
            doc, status=status, error=str(exc) or type(exc).__name__, findings=tuple(out.findings)
        )
        folder.write(doc)
        raise
    ns = [p.n for p in out.points]
    xs = [p.throughput for p in out.points]
    out.usl, out.amdahl = fit(ns, xs, "usl", boot=boot), fit(ns, xs, "amdahl", boot=boot)
    out.sentences = sentences(ns, [p.t_s for p in out.points])
    out.findings = scale_findings(doc, largest[1])
    out.document = dataclasses.replace(
        doc,
        status="complete",
        usl=out.usl,
        amdahl=out.amdahl,
        sentences=tuple(out.sentences),
        findings=tuple(out.findings),
    )
    folder.write(out.document)
    return out


def _goal_label(mark_label: str) -> str:
    return "SSH login" if mark_label == "ssh login" else mark_label


def phase_medians(summary: StormSummary | None) -> dict[str, float]:
    """Median duration of each phase of a storm (NaN: no instance completed it)."""
    if summary is None:
        return {}
    return {
        p.phase: (math.nan if p.median_s is None else round(p.median_s, 4))
        for p in summary.phases
        if p.phase in PHASE_NAMES
    }


def scale_findings(doc: ScaleResult, largest_storm: Sequence[PhaseCpu] = ()) -> list[Finding]:
    """The fastest-growing phase (with the largest storm's CPU in that phase), when two sizes
    or more have phase durations."""
    f = fastest_growing_phase(doc, largest_storm)
    return [] if f is None else [f]


def diagnose_scale_folder(folder: RunFolder) -> ScaleResult:
    """The scale run's findings derived again, offline, from its storm folders: each point's
    phase medians from its storm's run.json when the point lacks them (folders written before
    they were kept), and the largest storm's phase CPU from its phases.npz and monitor.npz.
    Nothing is written: the caller writes the document it returns (`folder.write(doc)`);
    the storm folders are left as they are (diagnose each with `diagnose_storm_folder`)."""
    doc = folder.read()
    if not isinstance(doc, ScaleResult):
        raise UserError(f"{folder.path} is a {doc.command!r} run folder, not a scale run's")
    points = []
    storms: dict[str, RunFolder] = {}
    for p in doc.points:
        storm_dir = folder.path / p.run_dir
        if storm_dir.is_dir():
            storms[p.run_dir] = RunFolder.open(storm_dir)
        if not p.phase_median_s and p.run_dir in storms:
            storm = storms[p.run_dir].read()
            summary = storm.summary if isinstance(storm, StormRunResult) else None
            p = dataclasses.replace(p, phase_median_s=phase_medians(summary))
        points.append(p)
    largest: tuple[PhaseCpu, ...] = ()
    biggest = [p for p in points if p.run_dir in storms and p.n == max(q.n for q in points)]
    if biggest:
        largest = diagnose_storm_folder(storms[biggest[-1].run_dir]).phase_cpu
    doc = dataclasses.replace(doc, points=tuple(points))
    return dataclasses.replace(doc, findings=tuple(scale_findings(doc, largest)))
