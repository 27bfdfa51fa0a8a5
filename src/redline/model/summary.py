"""Summary figures of one measurement window (computed by analysis.run_summary)."""

from __future__ import annotations

from dataclasses import dataclass, field

from redline.model.codec import JsonRecord


@dataclass(frozen=True)
class Unsent(JsonRecord):
    count: int
    reason: str


@dataclass(frozen=True)
class RunSummary(JsonRecord):
    """offered_rps: rows scheduled in the window / its length; achieved_rps: successful
    responses completed inside the window / its length; latency_ms (from the intended send
    time) and service_ms (from the actual send) percentiles: p50 … p99.9, mean, max."""

    window_s: float
    scheduled: int
    offered_rps: float
    planned_rps: float | None
    achieved_rps: float
    responses_rps: float
    responses: int
    errors: int
    error_ratio: float
    outcomes: dict[str, int] = field(default_factory=dict)
    unsent: dict[str, Unsent] = field(default_factory=dict)
    status_codes: dict[str, int] = field(default_factory=dict)
    latency_ms: dict[str, float] = field(default_factory=dict)
    service_ms: dict[str, float] = field(default_factory=dict)
    bytes_in: int = 0

    def latency(self, key: str) -> float | None:
        return self.latency_ms.get(key)
