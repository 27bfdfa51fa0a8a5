"""Read a run folder (of `redline run` or `redline capacity`) into typed dataclasses.

A report is written at the end of every command, including one that was interrupted
or crashed half-way, so reading never fails on a missing or unreadable part: it keeps
what it can and lists the rest in `RunData.missing`. Only a folder without a readable
run.json is refused (UserError): there is nothing to say about it.

A `run` folder is read as a single probe (phase "run", no verdict) so that the charts
and tables treat both layouts alike.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from redline.errors import UserError
from redline.load.samples import Samples
from redline.monitor.series import MonitorSeries

RUN_JSON = "run.json"
SAMPLES = "samples.npz"
TIMELINE = "timeline.npz"
MONITOR = "monitor.npz"


@dataclass(frozen=True)
class VerdictView:
    """A probe's stored verdict (degradation.Verdict.to_dict()), read back."""

    state: str
    criterion: str
    reasons: tuple[str, ...]
    figures: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> "VerdictView | None":
        if not isinstance(d, dict):
            return None
        return cls(
            state=str(d.get("state", "unknown")),
            criterion=str(d.get("criterion", "")),
            reasons=tuple(str(r) for r in d.get("reasons") or ()),
            figures=d.get("figures") if isinstance(d.get("figures"), dict) else {},
        )


@dataclass(frozen=True)
class HealthView:
    """Generator health of one run or probe (load.health.GeneratorHealth.to_dict())."""

    generator_bound: bool
    reasons: tuple[str, ...]
    notes: tuple[str, ...]
    raw: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> "HealthView | None":
        if not isinstance(d, dict):
            return None
        return cls(
            generator_bound=bool(d.get("generator_bound", False)),
            reasons=tuple(str(r) for r in d.get("reasons") or ()),
            notes=tuple(str(r) for r in d.get("notes") or ()),
            raw=d,
        )


@dataclass(frozen=True)
class FindingView:
    id: str
    title: str
    severity: str
    evidence: tuple[str, ...]
    why: str
    fix: str
    source: str

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "FindingView":
        return cls(
            id=str(d.get("id", "")),
            title=str(d.get("title", "")),
            severity=str(d.get("severity", "info")),
            evidence=tuple(str(e) for e in d.get("evidence") or ()),
            why=str(d.get("why", "")),
            fix=str(d.get("fix", "")),
            source=str(d.get("source", "")),
        )


@dataclass(frozen=True)
class Outcome:
    """The search's answer: state, N (None when no rate sustained) and why."""

    state: str
    n: float | None
    reason: str


@dataclass(frozen=True)
class ProbeData:
    """One fixed-rate trial: its record from run.json and, when readable, its samples."""

    index: int
    rate: float | None
    phase: str  # bracket | bisect | confirm, or "run" for a `redline run` folder
    full: bool
    attempt: int
    workers: int | None
    warmup_s: float | None
    window_s: float | None
    started_ns: int | None
    ended_ns: int | None
    stopped_early: str | None
    verdict: VerdictView | None
    summary: dict[str, Any]
    health: HealthView | None
    target_cpu_pct: float | None
    generator_cpu_pct: float | None
    dir: str
    samples: Samples | None = None

    @property
    def label(self) -> str:
        rate = f"{self.rate:g}/s" if self.rate is not None else "?/s"
        return rate if self.phase == "run" else f"#{self.index} {rate}"

    @property
    def state(self) -> str:
        return self.verdict.state if self.verdict else "n/a"

    def latency_ms(self, key: str) -> float | None:
        return _num((self.summary.get("latency_ms") or {}).get(key))


@dataclass(frozen=True)
class RunData:
    """Everything a report shows about one run folder.

    missing: sentences naming what the folder lacks or what could not be read; the
    report prints them so a partial folder is never mistaken for a complete one.
    """

    path: Path
    doc: dict[str, Any]
    command: str
    status: str
    probes: tuple[ProbeData, ...]
    monitor: MonitorSeries | None
    outcome: Outcome | None
    findings: tuple[FindingView, ...]
    missing: tuple[str, ...]

    @property
    def is_capacity(self) -> bool:
        return self.command == "capacity"

    @property
    def host(self) -> dict[str, Any]:
        return self.doc.get("host") or {}

    @property
    def target(self) -> dict[str, Any]:
        return self.doc.get("target") or {}

    @property
    def criterion(self) -> str | None:
        return self.doc.get("criterion")

    @property
    def protocol(self) -> dict[str, Any]:
        return self.doc.get("protocol") or {}

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


def read_run(path: Path) -> RunData:
    """Read a run folder; UserError only when it has no readable run.json."""
    path = Path(path)
    if not path.is_dir():
        raise UserError(f"{path} is not a run folder (not a directory)")
    doc_path = path / RUN_JSON
    if not doc_path.is_file():
        raise UserError(f"{path} is not a run folder (no {RUN_JSON})")
    try:
        doc = json.loads(doc_path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UserError(f"cannot read {doc_path}: {exc}") from None
    if not isinstance(doc, dict):
        raise UserError(f"{doc_path} does not hold a run description (not a JSON object)")

    missing: list[str] = []
    command = str(doc.get("command", "unknown"))
    status = str(doc.get("status", "unknown"))
    if status != "complete":
        missing.append(f"the run's status is {status!r}: it did not finish normally, so figures may be partial")
    if doc.get("error"):
        missing.append(f"the run failed: {doc['error']}")

    if command == "capacity":
        probes = _capacity_probes(path, doc, missing)
        if not probes:
            missing.append("no probe was recorded")
    else:
        probes = (_run_probe(path, doc, missing),)

    monitor = _load_monitor(path / MONITOR, missing, required=command == "capacity")
    outcome = _outcome(doc.get("outcome"))
    if command == "capacity" and outcome is None:
        missing.append("no outcome recorded (the search did not reach its end)")
    findings = tuple(FindingView.from_dict(f) for f in doc.get("findings") or () if isinstance(f, dict))
    return RunData(path, doc, command, status, probes, monitor, outcome, findings, tuple(missing))


def _run_probe(path: Path, doc: dict[str, Any], missing: list[str]) -> ProbeData:
    plan = doc.get("plan") or {}
    summary = doc.get("summary") or {}
    if not summary:
        missing.append("no summary in run.json (the run did not finish)")
    samples = _load_samples(path / SAMPLES, "samples.npz", missing)
    window = _num(plan.get("duration_s"))
    warmup = _num(plan.get("warmup_s"))
    return ProbeData(
        index=0,
        rate=_num(plan.get("rate")),
        phase="run",
        full=True,
        attempt=0,
        workers=_int(plan.get("workers")),
        warmup_s=warmup,
        window_s=(window - (warmup or 0.0)) if window is not None else None,
        started_ns=samples.start_ns if samples is not None else None,
        ended_ns=None,
        stopped_early=None,
        verdict=None,  # `redline run` judges nothing; the report never computes verdicts
        summary=summary,
        health=HealthView.from_dict(doc.get("health")),
        target_cpu_pct=None,
        generator_cpu_pct=None,
        dir=".",
        samples=samples,
    )


def _capacity_probes(path: Path, doc: dict[str, Any], missing: list[str]) -> tuple[ProbeData, ...]:
    out: list[ProbeData] = []
    for i, rec in enumerate(doc.get("probes") or ()):
        if not isinstance(rec, dict):
            missing.append(f"probe record {i} is not an object")
            continue
        rel = str(rec.get("dir") or "")
        samples = None
        if rel:
            samples = _load_samples(path / rel / SAMPLES, f"{rel}/{SAMPLES}", missing)
        else:
            missing.append(f"probe {rec.get('index', i)} names no folder: its latency over time cannot be drawn")
        out.append(
            ProbeData(
                index=_int(rec.get("index")) if rec.get("index") is not None else i,  # type: ignore[arg-type]
                rate=_num(rec.get("rate")),
                phase=str(rec.get("phase", "?")),
                full=bool(rec.get("full", False)),
                attempt=_int(rec.get("attempt")) or 0,
                workers=_int(rec.get("workers")),
                warmup_s=_num(rec.get("warmup_s")),
                window_s=_num(rec.get("window_s")),
                started_ns=_int(rec.get("started_ns")),
                ended_ns=_int(rec.get("ended_ns")),
                stopped_early=rec.get("stopped_early") or None,
                verdict=VerdictView.from_dict(rec.get("verdict")),
                # A probe stopped in its warm-up has an empty window; its warm-up figures stand in.
                summary=next((v for v in (rec.get("warmup_summary"), rec.get("summary")) if isinstance(v, dict)), {}),
                health=HealthView.from_dict(rec.get("health")),
                target_cpu_pct=_num(rec.get("target_cpu_pct")),
                generator_cpu_pct=_num(rec.get("generator_cpu_pct")),
                dir=rel,
                samples=samples,
            )
        )
    return tuple(out)


def _load_samples(path: Path, name: str, missing: list[str]) -> Samples | None:
    if not path.is_file():
        missing.append(f"{name} is missing: its per-request charts are left out")
        return None
    try:
        return Samples.load(path)
    # A run killed while writing leaves a truncated .npz; numpy raises several kinds.
    except Exception as exc:  # noqa: BLE001
        missing.append(f"{name} could not be read ({type(exc).__name__}: {exc})")
        return None


def _load_monitor(path: Path, missing: list[str], required: bool) -> MonitorSeries | None:
    if not path.is_file():
        if required:
            missing.append("monitor.npz is missing: no host CPU or disk chart")
        return None
    try:
        return MonitorSeries.load(path)
    except Exception as exc:  # noqa: BLE001 — see _load_samples
        missing.append(f"monitor.npz could not be read ({type(exc).__name__}: {exc})")
        return None


def _outcome(d: Any) -> Outcome | None:
    if not isinstance(d, dict):
        return None
    return Outcome(state=str(d.get("state", "unknown")), n=_num(d.get("n")), reason=str(d.get("reason", "")))


def _num(v: Any) -> float | None:
    if isinstance(v, bool) or v is None:
        return None
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def _int(v: Any) -> int | None:
    if isinstance(v, (int, np.integer)) and not isinstance(v, bool):
        return int(v)
    f = _num(v)
    return int(f) if f is not None else None
