"""What a report of a `run` or `capacity` folder shows: the typed result, each probe with its
samples, the monitor's series, and what the folder lacks.

A report is written at the end of every command, including one that was interrupted or
crashed half-way, so reading never fails on a missing or unreadable part: it keeps what it
can and lists the rest in `RunData.missing`. Only a folder without a readable run.json is
refused (UserError): there is nothing to say about it.

A `run` folder is read as a single probe (phase "run", no verdict) so that the charts and
tables treat both layouts alike.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from redline.errors import UserError
from redline.model.capacity import CapacityResult, ProbeResult, SearchOutcome
from redline.model.diagnosis import Limit
from redline.model.finding import Finding
from redline.model.run import RunResult
from redline.model.samples import Samples
from redline.model.series import MonitorSeries
from redline.model.summary import RunSummary
from redline.model.verdict import Verdict
from redline.store import Loaded, RunFolder
from redline.store.layout import MONITOR

T = TypeVar("T")


@dataclass(frozen=True)
class ProbeData(ProbeResult):
    """A probe record with its samples (None when unreadable). `summary` is the figures to
    show: the window's, or the warm-up's for a probe stopped before its window. A `run`
    folder's single probe has no verdict and may have no summary yet."""

    verdict: Verdict | None  # type: ignore[assignment]
    summary: RunSummary | None  # type: ignore[assignment]
    samples: Samples | None = None
    sample_stride: int = 1  # the samples are every k-th row of the run (a long run)

    @property
    def label(self) -> str:
        return f"{self.rate:g}/s" if self.phase == "run" else f"#{self.index} {self.rate:g}/s"

    @property
    def state(self) -> str:
        return self.verdict.state if self.verdict else "n/a"

    def latency_ms(self, key: str) -> float | None:
        return self.summary.latency_ms.get(key) if self.summary else None


@dataclass(frozen=True)
class RunData:
    """Everything a report shows about one run folder.

    missing: sentences naming what the folder lacks or what could not be read; the
    report prints them so a partial folder is never mistaken for a complete one.
    """

    path: Path
    result: RunResult | CapacityResult
    probes: tuple[ProbeData, ...]
    monitor: MonitorSeries | None
    missing: tuple[str, ...]

    @property
    def doc(self) -> RunResult | CapacityResult:
        return self.result

    @property
    def command(self) -> str:
        return self.result.command

    @property
    def status(self) -> str:
        return self.result.status

    @property
    def is_capacity(self) -> bool:
        return isinstance(self.result, CapacityResult)

    @property
    def host(self) -> dict[str, Any]:
        return self.result.host

    @property
    def target(self) -> dict[str, Any]:
        return self.result.target

    @property
    def criterion(self) -> str | None:
        return self.result.criterion if isinstance(self.result, CapacityResult) else None

    @property
    def protocol(self) -> dict[str, Any]:
        return self.result.protocol if isinstance(self.result, CapacityResult) else {}

    @property
    def outcome(self) -> SearchOutcome | None:
        return self.result.outcome if isinstance(self.result, CapacityResult) else None

    @property
    def findings(self) -> tuple[Finding, ...]:
        return self.result.findings

    @property
    def limit(self) -> Limit | None:
        return self.result.limit

    @property
    def origin_ns(self) -> int | None:
        """Zero of the whole run's time axis: the first probe's start (or the monitor's)."""
        starts = [p.started_ns for p in self.probes if p.started_ns]
        starts += [p.samples.start_ns for p in self.probes if p.samples is not None and p.samples.start_ns]
        if starts:
            return min(starts)
        if self.monitor is not None and len(self.monitor):
            return int(self.monitor.t_ns[0])
        return None


def read_run(path: Path, loaded: Loaded | None = None) -> RunData:
    """Read a run or capacity folder; UserError only when it has no readable run.json.
    `loaded`: its run.json, when the caller has read it already."""
    folder = RunFolder.open(Path(path))
    loaded = loaded or folder.load()
    result = loaded.result
    if not isinstance(result, (RunResult, CapacityResult)):
        raise UserError(
            f"{folder.path} is a {result.command!r} run folder: its report is written by `redline {result.command}`"
        )
    missing = list(loaded.problems)
    if result.status != "complete":
        missing.append(f"the run's status is {result.status!r}: it did not finish normally, so figures may be partial")
    if result.error:
        missing.append(f"the run failed: {result.error}")

    if isinstance(result, CapacityResult):
        probes = tuple(_capacity_probe(folder, p, missing) for p in result.probes)
        if not probes:
            missing.append("no probe was recorded")
        if result.outcome is None:
            missing.append("no outcome recorded (the search did not reach its end)")
    else:
        probes = (_run_probe(folder, result, missing),)

    monitor = None
    if folder.has_monitor():
        monitor = _readable(folder.read_monitor, f"{MONITOR} could not be read", missing)
    elif isinstance(result, CapacityResult):
        missing.append(f"{MONITOR} is missing: no host CPU or disk chart")
    return RunData(folder.path, result, probes, monitor, tuple(missing))


def _run_probe(folder: RunFolder, result: RunResult, missing: list[str]) -> ProbeData:
    plan = result.plan
    if result.summary is None:
        missing.append("no summary in run.json (the run did not finish)")
    samples, stride = _run_samples(folder, missing)
    duration = _num(plan.get("duration_s"))
    warmup = _num(plan.get("warmup_s")) or 0.0
    return ProbeData(
        index=0,
        rate=_num(plan.get("rate")) or math.nan,
        phase="run",
        full=True,
        attempt=0,
        workers=int(plan.get("workers") or 0),
        warmup_s=warmup,
        window_s=(duration - warmup) if duration is not None else math.nan,
        started_ns=samples.start_ns if samples is not None else 0,
        ended_ns=0,
        interrupted=result.status == "interrupted",
        stopped_early=None,
        verdict=None,  # `redline run` judges nothing; the report never computes verdicts
        summary=result.summary,
        health=result.health,  # type: ignore[arg-type]
        dir=".",
        samples=samples,
        sample_stride=stride,
        findings=result.findings,
        profile=result.profile,
    )


def _capacity_probe(folder: RunFolder, rec: ProbeResult, missing: list[str]) -> ProbeData:
    fields = {f.name: getattr(rec, f.name) for f in dataclasses.fields(ProbeResult)}
    fields["summary"] = rec.shown  # a probe stopped in its warm-up shows its warm-up figures
    return ProbeData(**fields, samples=_samples(folder, rec.dir, missing))


# A run's charts draw at most about this many of its rows (every k-th of a longer run), so
# that writing its report takes the same memory whatever the run's length.
MAX_CHART_ROWS = 400_000


def _run_samples(folder: RunFolder, missing: list[str]) -> tuple[Samples | None, int]:
    if not folder.has_samples():
        missing.append(f"{folder.samples_name()} is missing: its per-request charts are left out")
        return None, 1
    read = _readable(
        lambda: folder.read_samples_thinned(MAX_CHART_ROWS), f"{folder.samples_name()} could not be read", missing
    )
    return read if read is not None else (None, 1)


def _samples(folder: RunFolder, rel: str, missing: list[str]) -> Samples | None:
    name = folder.samples_name(rel)
    if not folder.has_samples(rel):
        missing.append(f"{name} is missing: its per-request charts are left out")
        return None
    return _readable(lambda: folder.read_samples(rel), f"{name} could not be read", missing)


def _readable(read: Callable[[], T], what: str, missing: list[str]) -> T | None:
    try:
        return read()
    # A run killed while writing leaves a truncated .npz; numpy raises several kinds.
    except Exception as exc:  # noqa: BLE001
        missing.append(f"{what} ({type(exc).__name__}: {exc})")
        return None


def _num(v: Any) -> float | None:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    return float(v) if math.isfinite(v) else None
