"""The result of `redline capacity`: every probe of the search, its verdict, and N."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from redline.model.codec import JsonRecord
from redline.model.diagnosis import Limit
from redline.model.document import RunDocument
from redline.model.finding import Finding
from redline.model.health import GeneratorHealth
from redline.model.profile import ProfileSummary
from redline.model.summary import RunSummary
from redline.model.thresholds import ThresholdReport
from redline.model.verdict import Verdict

SearchState = Literal["found", "never_stable", "inconclusive", "at_upper_bound", "probe_limit"]
# A search cut short has no answer of its own: its outcome carries the run's status instead.
OutcomeState = Literal[SearchState, "interrupted", "abandoned"]


@dataclass(frozen=True)
class SearchOutcome(JsonRecord):
    state: OutcomeState
    n: float | None  # the largest rate judged to sustain, None when none did
    reason: str


@dataclass(frozen=True)
class ProbeResult(JsonRecord):
    """One fixed-rate trial of the search, as recorded after it ended.

    summary covers the measurement window; warmup_summary is set instead when the probe
    stopped before its window began (its window is empty). dir is the probe's folder,
    relative to the run folder, where its samples and timelines are.
    """

    index: int
    rate: float
    phase: str  # bracket | bisect | confirm
    full: bool
    attempt: int
    workers: int
    warmup_s: float
    window_s: float
    started_ns: int
    ended_ns: int
    interrupted: bool
    stopped_early: str | None
    verdict: Verdict
    summary: RunSummary
    health: GeneratorHealth
    dir: str
    warmup_summary: RunSummary | None = None
    target_cpu_pct: float | None = None
    generator_cpu_pct: float | None = None
    settle_before: dict[str, Any] | None = None  # load.settle.Settled, when the search waited
    findings: tuple[Finding, ...] = ()  # judged from this probe's own monitor samples
    profile: ProfileSummary | None = None  # the target's hot code in this probe's window

    @property
    def state(self) -> str:
        return self.verdict.state

    @property
    def shown(self) -> RunSummary:
        """The figures to show: the window's, or the warm-up's for a probe stopped in it."""
        return self.warmup_summary or self.summary

    @property
    def target_cpu_ms_per_request(self) -> float | None:
        """Target CPU time per successful answer (ms), when the target was monitored."""
        achieved = self.summary.achieved_rps
        if self.target_cpu_pct is None or not achieved:
            return None
        return self.target_cpu_pct / 100.0 * 1000.0 / achieved


@dataclass(frozen=True, kw_only=True)
class CapacityResult(RunDocument):
    command: str = "capacity"
    protocol: dict[str, Any] = field(default_factory=dict)
    criterion: str = ""
    probes: tuple[ProbeResult, ...] = ()
    findings: tuple[Finding, ...] = ()
    time_taken_s: float | None = None
    outcome: SearchOutcome | None = None  # None while the search runs
    abandoned_because: str | None = None
    monitor: dict[str, Any] | None = None  # MonitorSeries.to_summary()
    limit: Limit | None = None  # what limits N, from the decisive probes (analysis.limit)
    audit_root: str | None = None  # where the configuration the limit is linked to was read
    thresholds: ThresholdReport | None = None  # --threshold gates, judged on N and the probe at N

    def probe_at_n(self) -> ProbeResult | None:
        """The stable probe at N, the full-length confirmation first."""
        n = self.outcome.n if self.outcome else None
        if n is None:
            return None
        at_n = [p for p in self.probes if p.rate == n and p.state == "stable"]
        at_n.sort(key=lambda p: (not p.full, -p.index))
        return at_n[0] if at_n else None
