"""Diagnosis around a measurement: profile the target during a window, judge each window from
its monitor samples, link the limit to the audit of the target's configuration, and derive
it all again from a stored run folder (`redline diagnose`)."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from redline.analysis.diagnosis import LoadFacts, diagnose_window
from redline.analysis.limit import decisive_probes, limit_of_run, limit_of_search
from redline.analysis.profile_stacks import parse_collapsed, summarise
from redline.audit import audit
from redline.errors import UserError
from redline.model.capacity import CapacityResult, ProbeResult
from redline.model.finding import Finding, Status
from redline.model.profile import ProfileSummary
from redline.model.run import RunResult
from redline.model.series import MonitorSeries
from redline.model.storm import ScaleResult, StormRunResult
from redline.profile.pyspy import Profiler, read_collapsed
from redline.store import RunFolder
from redline.store.layout import PROFILE

PROFILE_RATE_HZ = 100
_UNITS = {"keystone.issue": "token issue", "keystone.validate": "token validation"}


def unit_of_scenario(name: str | None) -> str:
    """What one request of a scenario is, for "0.96 ms of CPU per token issue"."""
    return _UNITS.get(name or "", "request")


def probe_findings(series: MonitorSeries, probe: ProbeResult) -> tuple[Finding, ...]:
    """The findings of one probe, from the monitor ticks inside it."""
    cut = series.between(probe.started_ns, probe.ended_ns)
    load = LoadFacts.of(probe.shown, probe.health, degraded=probe.state == "degraded")
    return diagnose_window(cut, load)


def audit_findings(root: Path | None) -> tuple[Finding, ...]:
    """The failing checks of the configuration under `root` (a lab's, or the host's own)."""
    if root is None:
        return ()
    try:
        return tuple(f for f in audit(root).findings if f.status == Status.FAIL)
    except OSError:
        return ()  # an unreadable tree links nothing; `redline audit` says why


def with_limit(doc: CapacityResult, audit_root: Path | None, unit: str = "request") -> CapacityResult:
    """The search's limit and findings (those of the probes that decided N)."""
    n = doc.outcome.n if doc.outcome else None
    limit = limit_of_search(doc.probes, n, audit_findings(audit_root), unit)
    at_n, over = decisive_probes(doc.probes, n)
    seen: dict[str, Finding] = {}
    for p in (at_n, over):
        for f in p.findings if p is not None else ():
            seen.setdefault(f.id, f)
    # "Nothing saturates" in one decisive probe is no finding when the other found what does.
    if limit is not None and limit.kind not in ("latency_bound", "headroom"):
        seen.pop("target.latency_bound", None)
        seen.pop("target.headroom", None)
    findings = tuple(seen.values()) if seen else doc.findings
    return dataclasses.replace(doc, limit=limit, findings=findings, audit_root=str(audit_root) if audit_root else None)


@dataclass
class WindowProfiler:
    """py-spy on the target during one measurement window: started after the warm-up (the
    window is what the verdict judges), stopped when the probe ends, its CPU on `cpus`."""

    pids: tuple[int, ...]
    out: Path
    delay_s: float
    cpus: tuple[int, ...] | None = None
    rate_hz: int = PROFILE_RATE_HZ

    def __post_init__(self) -> None:
        self.out.parent.mkdir(parents=True, exist_ok=True)
        self._profiler = Profiler(self.pids, self.out, rate_hz=self.rate_hz, cpus=self.cpus)
        self._fired = False
        self._timer = threading.Timer(self.delay_s, self._fire)
        self._timer.daemon = True

    def _fire(self) -> None:
        self._fired = True
        self._profiler.start()

    def start(self) -> WindowProfiler:
        self._timer.start()
        return self

    def stop(self, folder: RunFolder) -> ProfileSummary:
        self._timer.cancel()
        self._timer.join()
        rel = str(self.out.relative_to(folder.path))
        if not self._fired:
            return profile_summary(None, self.pids, self.rate_hz, 0.0, rel, None,
                                   "the probe ended before its measurement window began")  # fmt: skip
        run = self._profiler.stop()
        return profile_summary(run.path if run.error is None else None, self.pids, self.rate_hz, run.seconds, rel,
                               run.cpu_s, run.error)  # fmt: skip


def profile_summary(
    path: Path | None,
    pids: Iterable[int],
    rate_hz: int,
    seconds: float,
    rel: str,
    cpu_s: float | None = None,
    error: str | None = None,
) -> ProfileSummary:
    if error is not None or path is None or not path.exists():
        return summarise({}, tuple(pids), rate_hz, seconds, rel, None, cpu_s=cpu_s, error=error or "no profile written")
    return summarise(parse_collapsed(read_collapsed(path)), tuple(pids), rate_hz, seconds, rel, None, cpu_s=cpu_s)


def run_window(series: MonitorSeries, measure_from_ns: int | None) -> MonitorSeries:
    """A run's measurement window: the warm-up's ticks would dilute a saturation."""
    if measure_from_ns is None or len(series) == 0:
        return series
    cut = series.between(measure_from_ns, int(series.t_ns[-1]))
    return cut if len(cut) else series


# -- `redline diagnose`: the same, offline --


def diagnose_folder(
    path: Path, audit_root: Path | None = None
) -> CapacityResult | RunResult | StormRunResult | ScaleResult:
    """Findings and the limit derived again from a stored capacity, run, storm or scale folder;
    the folder's run.json is rewritten with them (everything else in it is kept)."""
    folder = RunFolder.open(path)
    doc = folder.load().result
    if isinstance(doc, StormRunResult | ScaleResult):
        from redline.jobs.scale import diagnose_scale_folder
        from redline.jobs.storm import diagnose_storm_folder

        again = diagnose_storm_folder(folder) if isinstance(doc, StormRunResult) else diagnose_scale_folder(folder)
        folder.write(again)
        return again
    if not folder.has_monitor():
        raise UserError(f"{path}: no monitor samples ({folder.path.name} has no monitor.npz): nothing to diagnose")
    series = folder.read_monitor()
    if isinstance(doc, CapacityResult):
        probes = tuple(
            dataclasses.replace(p, findings=probe_findings(series, p), profile=_stored_profile(folder, p))
            for p in doc.probes
        )
        root = audit_root or (Path(doc.audit_root) if doc.audit_root else None)
        unit = unit_of_scenario((doc.target.get("scenario") or {}).get("name"))
        new: CapacityResult | RunResult = with_limit(
            dataclasses.replace(doc, probes=probes), root if root and root.exists() else None, unit
        )
    elif isinstance(doc, RunResult):
        if doc.summary is None:
            raise UserError(f"{path}: the run has no summary (it did not end): nothing to diagnose")
        samples = folder.read_samples() if folder.has_samples() else None
        cut = run_window(series, samples.measure_from_ns if samples is not None else None)
        findings = diagnose_window(cut, LoadFacts.of(doc.summary, doc.health))
        root = audit_root or (Path(doc.audit_root) if doc.audit_root else None)
        limit = limit_of_run(findings, doc.profile, audit_findings(root if root and root.exists() else None))
        new = dataclasses.replace(doc, findings=findings, limit=limit)
    else:
        raise UserError(f"{path}: a {doc.command} folder; diagnose reads capacity, run, storm and scale folders")
    folder.write(new)
    return new


def _stored_profile(folder: RunFolder, p: ProbeResult) -> ProfileSummary | None:
    """The probe's profile summarised again from its raw stacks (kept as recorded if absent)."""
    raw = folder.path / p.dir / PROFILE
    if p.profile is None or not raw.exists():
        return p.profile
    return profile_summary(raw, p.profile.pids, p.profile.rate_hz, p.profile.duration_s, p.profile.file,
                           p.profile.cpu_s)  # fmt: skip
