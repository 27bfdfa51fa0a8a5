"""Pass/fail gates on a run's or a search's figures (`--threshold`), as judged and stored."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from redline.model.codec import JsonRecord

Op = Literal["<", "<=", ">", ">=", "=="]


@dataclass(frozen=True)
class Threshold(JsonRecord):
    """`metric op value`; value in the metric's own unit (ms, ratio, /s or a count) whatever
    unit the expression used, so `avg<=0.5s` and `avg<=500ms` are the same gate."""

    expression: str  # as the user wrote it
    metric: str
    op: Op
    value: float
    unit: str  # ms, ratio, /s, count


@dataclass(frozen=True)
class ThresholdCheck(JsonRecord):
    """One threshold judged. measured is None when the figure does not exist (no response
    completed, no N): such a check fails, it never passes for lack of data."""

    threshold: Threshold
    passed: bool
    measured: float | None
    source: str  # where the figure comes from: the run window, the probe at N, the search outcome
    samples: int | None  # requests the figure was computed from (None: not a per-request figure)
    window_s: float | None  # length of the measurement window it came from
    reason: str  # one sentence with the figure, the limit and its source


@dataclass(frozen=True)
class ThresholdReport(JsonRecord):
    checks: tuple[ThresholdCheck, ...] = ()

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)

    @property
    def broken(self) -> tuple[ThresholdCheck, ...]:
        return tuple(c for c in self.checks if not c.passed)

    def _json_extra(self) -> dict[str, Any]:
        return {"passed": self.passed, "broken": len(self.broken)}
