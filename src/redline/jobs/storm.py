"""`redline storm` as a library call: one storm in a run folder, with the host monitored."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from redline.monitor import Monitor, NamePattern
from redline.report.run_folder import RunFolder
from redline.storm.analysis import StormSummary, summarise
from redline.storm.driver import StormDriver
from redline.storm.model import InstanceSpec, StormPlan, StormResult
from redline.storm.runner import StormProgress, run_storm

PHASES_FILE = "phases.npz"
MONITOR = "monitor.npz"


@dataclass(frozen=True)
class StormOutcome:
    folder: RunFolder
    result: StormResult
    summary: StormSummary
    document: dict


def new_run_id() -> str:
    return secrets.token_hex(4)


def run_storm_job(
    driver: StormDriver,
    specs: list[InstanceSpec],
    plan: StormPlan,
    run_id: str,
    target: dict,
    results_dir: Path,
    on_progress: Callable[[StormProgress], None] | None = None,
    on_folder: Callable[[RunFolder], None] | None = None,
) -> StormOutcome:
    folder = RunFolder.create(results_dir, f"storm-{driver.name}-{plan.count}")
    if on_folder is not None:
        on_folder(folder)
    doc = folder.header("storm", target, {**plan.to_dict(), "run_id": run_id, "driver": driver.name})
    folder.write_json(doc)
    monitor = Monitor(interval_s=1.0, groups={
        "libvirtd": NamePattern(r"^libvirtd$|/libvirtd\b"),
        "qemu": NamePattern(r"^qemu-system"),
        "dnsmasq": NamePattern(r"^dnsmasq$"),
    })  # fmt: skip
    monitor.start()
    start_ns = time.monotonic_ns()
    try:
        result = run_storm(driver, specs, plan, run_id, on_progress=on_progress, start_ns=start_ns)
    except BaseException as exc:
        monitor.stop()
        doc["status"] = "failed"
        doc["error"] = str(exc) or type(exc).__name__
        folder.write_json(doc)
        raise
    series = monitor.stop()
    series.save(folder.path / MONITOR)
    result.save(folder.path / PHASES_FILE)
    summary = summarise(result)
    doc["status"] = "interrupted" if result.interrupted else "complete" if summary.failed == 0 else "incomplete"
    doc["run_id"] = run_id
    doc["summary"] = summary.to_dict()
    doc["instances"] = [
        {"name": n, "error": e or None, "ssh_output": o or None,
         **{m: (None if v != v else round(float(v), 3)) for m, v in zip(("requested", "running", "ping", "ssh", "delete_requested", "gone"), row)}}
        for n, e, o, row in zip(result.names, result.errors, result.ssh_output or [""] * len(result.names), result.marks_s)
    ]  # fmt: skip
    doc["notes"] = list(result.notes)
    doc["skipped_phases"] = list(result.skipped)
    doc["monitor"] = series.to_summary()
    doc["files"] = {"phases": PHASES_FILE, "monitor": MONITOR}
    folder.write_json(doc)
    return StormOutcome(folder, result, summary, doc)
