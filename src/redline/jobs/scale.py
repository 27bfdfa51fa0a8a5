"""`redline scale` as a library call: storms at several sizes in one run folder, then the fits.

Each storm is a complete storm run folder inside the scale folder (its own run.json,
phases, monitor, report), so any size can be looked at on its own. Sizes run in rounds
(1,2,4,8, then 1,2,4,8 again with --repeat 2), so a drift of the host over time spreads
over all sizes instead of biasing the largest. run.json is rewritten after every storm:
an interrupted or failed scale run keeps the points it measured.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from redline.analysis.scalability import ScaleFit, fit, sentences
from redline.errors import UserError
from redline.jobs.storm import StormOutcome, new_run_id, run_storm_job
from redline.model.storm import ScalePoint, ScaleResult
from redline.store import RunFolder
from redline.storm.analysis import span_to_ssh_s
from redline.storm.driver import StormDriver
from redline.storm.model import InstanceSpec, StormPlan

# (run id, plan) -> (driver, its instance specs, the target's description)
DriverFactory = Callable[[str, StormPlan], tuple[StormDriver, list[InstanceSpec], dict[str, Any]]]


@dataclass
class ScaleOutcome:
    folder: RunFolder
    points: list[ScalePoint] = field(default_factory=list)
    usl: ScaleFit | None = None
    amdahl: ScaleFit | None = None
    sentences: list[str] = field(default_factory=list)
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
) -> ScaleOutcome:
    folder = RunFolder.create(results_dir, f"scale-{'-'.join(map(str, sizes))}")
    doc = ScaleResult(
        **RunFolder.header(target, {"counts": sizes, "repeat": repeat, "storm": plan_for(sizes[0]).to_dict()})
    )
    folder.write(doc)
    out = ScaleOutcome(folder, document=doc)
    try:
        for rnd in range(repeat):
            for n in sizes:
                plan = plan_for(n)
                run_id = new_run_id()
                drv, specs, _ = make_driver(run_id, plan)
                if on_storm_start is not None:
                    on_storm_start(n, rnd, run_id)
                storm = run_storm_job(drv, specs, plan, run_id, target, folder.path)
                if storm.result.interrupted:
                    raise KeyboardInterrupt
                t = span_to_ssh_s(storm.result.marks_s)
                point = None if t is None else ScalePoint(n, rnd, t, storm.folder.path.name)
                if on_storm_done is not None:
                    on_storm_done(storm, point)
                if point is None:
                    s = storm.summary
                    raise UserError(f"the storm of {n} did not complete ({s.reached['ssh']}/{n} reached SSH), "
                                    f"so it has no time to fit: see {storm.folder.path}")  # fmt: skip
                out.points.append(point)
                doc = out.document = dataclasses.replace(doc, points=tuple(out.points))
                folder.write(doc)
    except BaseException as exc:
        status = "interrupted" if isinstance(exc, KeyboardInterrupt) else "failed"
        doc = out.document = dataclasses.replace(doc, status=status, error=str(exc) or type(exc).__name__)
        folder.write(doc)
        raise
    ns = [p.n for p in out.points]
    xs = [p.throughput for p in out.points]
    out.usl, out.amdahl = fit(ns, xs, "usl", boot=boot), fit(ns, xs, "amdahl", boot=boot)
    out.sentences = sentences(ns, [p.t_s for p in out.points])
    out.document = dataclasses.replace(
        doc, status="complete", usl=out.usl, amdahl=out.amdahl, sentences=tuple(out.sentences)
    )
    folder.write(out.document)
    return out
