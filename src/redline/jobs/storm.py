"""`redline storm` as a library call: one storm in a run folder, with the host monitored."""

from __future__ import annotations

import dataclasses
import math
import os
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from redline.analysis.storm_diagnosis import StormDiagnosis, diagnose_storm
from redline.errors import UserError
from redline.model.finding import Evidence, Finding, Severity
from redline.model.series import MonitorSeries
from redline.model.storm import InstanceRecord, StormRunResult, StormSummary
from redline.monitor import Monitor, NamePattern, PidTree, ProcessSelector
from redline.store import RunFolder
from redline.store.layout import MONITOR
from redline.store.layout import PHASES as PHASES_FILE
from redline.storm.analysis import partial_line, summarise
from redline.storm.driver import StormDriver
from redline.storm.model import MARKS, PHASES, InstanceSpec, StormPlan, StormResult
from redline.storm.runner import StormProgress, run_storm

# Who serves a storm on the hypervisor lab; a storm on the OpenStack lab is given its
# services' groups instead (redline.targets.storm_drivers.storm_monitor_groups).
HYPERVISOR_GROUPS: Mapping[str, ProcessSelector] = {
    "libvirtd": NamePattern(r"^libvirtd$|/libvirtd\b"),
    "qemu": NamePattern(r"^qemu-system"),
    "dnsmasq": NamePattern(r"^dnsmasq$"),
}


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
    monitor_groups: Mapping[str, ProcessSelector] | None = None,
) -> StormOutcome:
    """One storm in a new run folder under `results_dir`. `monitor_groups`: the processes
    whose CPU is charged by name (None: libvirtd, qemu, dnsmasq); redline's own is added."""
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
        **(HYPERVISOR_GROUPS if monitor_groups is None else monitor_groups),
        # redline's own process and children (ssh, ip netns exec): the storm's driver costs
        # CPU on the host it measures, and a pinned driver takes its marks late.
        "driver": PidTree(os.getpid()),
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
    diagnosis = _diagnose(series, result, target)
    partial = None if result.interrupted else partial_line(result)
    doc = dataclasses.replace(
        doc,
        status="interrupted" if result.interrupted else "incomplete" if partial else "complete",
        error=partial,
        run_id=run_id,
        summary=summary,
        instances=_instances(result),
        notes=tuple(result.notes),
        skipped_phases=tuple(result.skipped),
        monitor=series.to_summary(),
        files={"phases": PHASES_FILE, "monitor": MONITOR},
        phase_cpu=diagnosis.phase_cpu,
        findings=diagnosis.findings,
        labels=dict(result.labels),
        polls=result.polls,
        api_calls=dict(result.api_calls),
        cleanup=tuple(result.cleanup),
    )
    folder.write(doc)
    return StormOutcome(folder, result, summary, doc)


def _diagnose(series: MonitorSeries | None, result: StormResult, target: dict[str, Any]) -> StormDiagnosis:
    """Who used the host in each phase. A failure here must not lose the storm: its marks and
    monitor are already on disk, and `diagnose_storm_folder` can derive this again."""
    try:
        return _diagnosis(series, result, target)
    except Exception as exc:  # noqa: BLE001 — see the docstring
        failed = Finding(
            id="storm.diagnosis_failed",
            title="where the time went could not be derived",
            severity=Severity.INFO,
            evidence=(Evidence.say(f"{type(exc).__name__}: {exc}"),),
            why="The storm's figures stand; only the per-phase CPU table and its findings are missing.",
            fix="Derive them again from the folder (`redline diagnose RUN_DIR`), and report the error.",
        )
        return StormDiagnosis((), (failed,))


def _diagnosis(series: MonitorSeries | None, result: StormResult, target: dict[str, Any]) -> StormDiagnosis:
    virt = target.get("virt_type")  # "qemu" = TCG: decides whether "use KVM" is advice
    return diagnose_storm(series, result.marks_s, result.start_ns, MARKS, PHASES, end_s=result.end_s,
                          skipped=result.skipped, virt_type=virt if isinstance(virt, str) else None,
                          labels=result.labels)  # fmt: skip


def diagnose_storm_folder(folder: RunFolder) -> StormRunResult:
    """The storm's phase CPU table and findings derived again, offline, from the folder's
    phases.npz and monitor.npz (and the target's virt type in its run.json); everything else
    of the run.json is kept. Nothing is written: the caller writes the document it returns
    (`folder.write(doc)`)."""
    doc = folder.read()
    if not isinstance(doc, StormRunResult):
        raise UserError(f"{folder.path} is a {doc.command!r} run folder, not a storm's")
    if not folder.file(PHASES_FILE).is_file():
        raise UserError(f"{folder.path}: no {PHASES_FILE} (the storm did not end): nothing to diagnose")
    result = folder.read_storm_marks()
    series = folder.read_monitor() if folder.has_monitor() else None
    diagnosis = _diagnosis(series, result, doc.target)  # offline: an error is raised, not recorded
    return dataclasses.replace(doc, phase_cpu=diagnosis.phase_cpu, findings=diagnosis.findings)


def _s(v: float) -> float | None:
    return None if math.isnan(v) else round(float(v), 3)


def _instances(result: StormResult) -> tuple[InstanceRecord, ...]:
    n = len(result.names)
    outputs = result.ssh_output or ("",) * n
    last = result.last_seen or ("",) * n
    return tuple(
        InstanceRecord(
            name=name,
            error=error or None,
            ssh_output=output or None,
            **{m: _s(v) for m, v in zip(MARKS, row)},
            task_states={t: _s(v) for t, v in zip(result.task_marks, tasks)},
            last_seen=seen or None,
        )
        for name, error, output, row, tasks, seen in zip(
            result.names, result.errors, outputs, result.marks_s, result.task_marks_s, last
        )
    )
