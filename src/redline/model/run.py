"""The result of `redline run`: one fixed-rate (or ramped) run."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from redline.model.diagnosis import Limit
from redline.model.document import RunDocument
from redline.model.finding import Finding
from redline.model.health import GeneratorHealth
from redline.model.profile import ProfileSummary
from redline.model.summary import RunSummary
from redline.model.thresholds import ThresholdReport


@dataclass(frozen=True, kw_only=True)
class RunResult(RunDocument):
    command: str = "run"
    summary: RunSummary | None = None  # None until the run has ended
    health: GeneratorHealth | None = None
    wall_s: float | None = None
    abandoned_because: str | None = None
    findings: tuple[Finding, ...] = ()  # judged from the run's monitor samples (analysis.diagnosis)
    limit: Limit | None = None
    profile: ProfileSummary | None = None
    monitor: dict[str, Any] | None = None  # MonitorSeries.to_summary()
    audit_root: str | None = None
    thresholds: ThresholdReport | None = None  # --threshold gates, judged on the window (analysis.thresholds)
