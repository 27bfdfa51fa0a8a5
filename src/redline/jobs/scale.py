"""`redline scale` as a library call: storms at several sizes in one run folder, then the fits.

Each storm is a complete storm run folder inside the scale folder (its own run.json,
phases, monitor, report), so any size can be looked at on its own. Sizes run in rounds
(1,2,4,8, then 1,2,4,8 again with --repeat 2), so a drift of the host over time spreads
over all sizes instead of biasing the largest. run.json is rewritten after every storm:
an interrupted or failed scale run keeps the points it measured.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from redline.analysis.scalability import ScaleFit, fit, sentences
from redline.errors import UserError
from redline.jobs.storm import StormOutcome, new_run_id, run_storm_job
from redline.report.run_folder import RunFolder
from redline.storm.analysis import span_to_ssh_s
from redline.storm.driver import StormDriver
from redline.storm.model import InstanceSpec, StormPlan

# (run id, plan) -> (driver, its instance specs, the target's description)
DriverFactory = Callable[[str, StormPlan], tuple[StormDriver, list[InstanceSpec], dict]]


@dataclass(frozen=True)
class ScalePoint:
    n: int
    round: int
    t_s: float  # first request → last SSH login
    run_dir: str  # the storm's folder, relative to the scale folder

    @property
    def throughput(self) -> float:
        return self.n / self.t_s

    def to_dict(self) -> dict:
        return {"n": self.n, "round": self.round, "t_s": self.t_s, "throughput_per_s": self.throughput, "run_dir": self.run_dir}


@dataclass
class ScaleOutcome:
    folder: RunFolder
    points: list[ScalePoint] = field(default_factory=list)
    usl: ScaleFit | None = None
    amdahl: ScaleFit | None = None
    sentences: list[str] = field(default_factory=list)
    document: dict = field(default_factory=dict)


def run_scale_job(
    make_driver: DriverFactory,
    sizes: list[int],
    plan_for: Callable[[int], StormPlan],
    target: dict,
    results_dir: Path,
    repeat: int = 1,
    on_storm_start: Callable[[int, int, str], None] | None = None,
    on_storm_done: Callable[[StormOutcome, ScalePoint | None], None] | None = None,
    boot: int = 400,
) -> ScaleOutcome:
    folder = RunFolder.create(results_dir, f"scale-{'-'.join(map(str, sizes))}")
    doc = folder.header("scale", target, {"counts": sizes, "repeat": repeat, "storm": plan_for(sizes[0]).to_dict()})
    doc["points"] = []
    folder.write_json(doc)
    out = ScaleOutcome(folder, document=doc)
    try:
        for rnd in range(repeat):
            for n in sizes:
                plan = plan_for(n)
                run_id = new_run_id()
                drv, specs, _ = make_driver(run_id, plan)
                if on_storm_start is not None:
                    on_storm_start(n, rnd, run_id)
                storm = run_storm_job(drv, specs, plan, run_id, target, folder.path, on_folder=lambda f, d=drv: _keep_consoles(d, f))
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
                doc["points"] = [p.to_dict() for p in out.points]
                folder.write_json(doc)
    except BaseException as exc:
        doc["status"] = "interrupted" if isinstance(exc, KeyboardInterrupt) else "failed"
        doc["error"] = str(exc) or type(exc).__name__
        folder.write_json(doc)
        raise
    ns = [p.n for p in out.points]
    xs = [p.throughput for p in out.points]
    out.usl, out.amdahl = fit(ns, xs, "usl", boot=boot), fit(ns, xs, "amdahl", boot=boot)
    out.sentences = sentences(ns, [p.t_s for p in out.points])
    doc.update(status="complete", usl=out.usl.to_dict(), amdahl=out.amdahl.to_dict(), sentences=out.sentences)
    folder.write_json(doc)
    return out


def _keep_consoles(driver: StormDriver, folder: RunFolder) -> None:
    # Serial consoles into each storm's folder, as `redline storm` does: a guest that never
    # answered can be diagnosed afterwards (a few kB each).
    if hasattr(driver, "keep_logs") and driver.keep_logs is None:
        driver.keep_logs = folder.path.resolve() / "console"
