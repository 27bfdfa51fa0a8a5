"""`redline storm` as a library call: one storm in a run folder, with the host monitored."""

from __future__ import annotations

import dataclasses
import math
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from redline.model.storm import InstanceRecord, StormRunResult, StormSummary
from redline.monitor import Monitor, NamePattern
from redline.store import RunFolder
from redline.store.layout import MONITOR, PHASES
from redline.storm.analysis import summarise
from redline.storm.driver import StormDriver
from redline.storm.model import MARKS, InstanceSpec, StormPlan, StormResult
from redline.storm.runner import StormProgress, run_storm


@dataclass(frozen=True)
class StormOutcome:
    folder: RunFolder
    result: StormResult  # the per-instance marks
    summary: StormSummary
    document: StormRunResult


def new_run_id() -> str:
    return secrets.token_hex(4)


def run_storm_job(
    driver: StormDriver,
    specs: list[InstanceSpec],
    plan: StormPlan,
    run_id: str,
    target: dict[str, Any],
    results_dir: Path,
    on_progress: Callable[[StormProgress], None] | None = None,
    on_folder: Callable[[RunFolder], None] | None = None,
) -> StormOutcome:
    folder = RunFolder.create(results_dir, f"storm-{driver.name}-{plan.count}")
    if getattr(driver, "keep_logs", False) is None:
        # Serial consoles into the run folder (a few kB each): a guest that never answered
        # can be diagnosed afterwards.
        driver.keep_logs = folder.console_dir  # type: ignore[attr-defined]
    if on_folder is not None:
        on_folder(folder)
    doc = StormRunResult(**RunFolder.header(target, {**plan.to_dict(), "run_id": run_id, "driver": driver.name}))
    folder.write(doc)
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
        folder.write(dataclasses.replace(doc, status="failed", error=str(exc) or type(exc).__name__))
        raise
    series = monitor.stop()
    folder.write_monitor(series)
    folder.write_storm_marks(result)
    summary = summarise(result)
    doc = dataclasses.replace(
        doc,
        status="interrupted" if result.interrupted else "complete" if summary.failed == 0 else "incomplete",
        run_id=run_id,
        summary=summary,
        instances=_instances(result),
        notes=tuple(result.notes),
        skipped_phases=tuple(result.skipped),
        monitor=series.to_summary(),
        files={"phases": PHASES, "monitor": MONITOR},
    )
    folder.write(doc)
    return StormOutcome(folder, result, summary, doc)


def _instances(result: StormResult) -> tuple[InstanceRecord, ...]:
    outputs = result.ssh_output or ("",) * len(result.names)
    return tuple(
        InstanceRecord(
            name=name,
            error=error or None,
            ssh_output=output or None,
            **{m: None if math.isnan(v) else round(float(v), 3) for m, v in zip(MARKS, row)},
        )
        for name, error, output, row in zip(result.names, result.errors, outputs, result.marks_s)
    )
