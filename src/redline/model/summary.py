"""Summary figures of one measurement window (computed by analysis.run_summary)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from redline.model.codec import JsonRecord


@dataclass(frozen=True)
class Unsent(JsonRecord):
    count: int
    reason: str


@dataclass(frozen=True)
class StepSummary(JsonRecord):
    """One step of a multi-step iteration over the window (like Rally's atomic actions).

    count: iterations that sent this step; errors: those that it ended in error;
    p50 / p99: its latency in ms over the iterations it answered 2xx/3xx, from the
    previous step's completion (the iteration's intended send time for a first step),
    so that an iteration's step latencies add up to its latency."""

    name: str
    count: int
    errors: int
    p50: float | None
    p99: float | None


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
    steps: tuple[StepSummary, ...] = ()  # multi-step iterations only

    def _json_out(self, d: dict[str, Any]) -> dict[str, Any]:
        if not d.get("steps"):
            d.pop("steps", None)  # single requests: run.json stays as it was
        return d

    def latency(self, key: str) -> float | None:
        return self.latency_ms.get(key)
