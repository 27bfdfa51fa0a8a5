"""Arrival schedules: when each request of an open-loop run *should* be sent.

Every schedule is built the same way: arrival k happens when the cumulative intended
count N(t) = ∫ rate reaches a_k, where a_k = k for evenly spaced arrivals and a
unit-rate Poisson process for random ones. Inverting N(t) in closed form gives the
constant rate, a linear ramp, and Poisson versions of both, all vectorised.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

ArrivalKind = Literal["constant", "poisson"]


@dataclass(frozen=True)
class Schedule:
    """Offered load over time: `rate` rising linearly to `end_rate` (equal for a flat rate)."""

    rate: float
    duration_s: float
    arrival: ArrivalKind = "constant"
    end_rate: float | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        if not self.rate > 0 or (self.end_rate is not None and self.end_rate < 0):
            raise ValueError("rates must be positive")
        if not self.duration_s > 0:
            raise ValueError("duration must be positive")
        if self.arrival not in ("constant", "poisson"):
            raise ValueError(f"unknown arrival process {self.arrival!r}")

    @property
    def final_rate(self) -> float:
        return self.rate if self.end_rate is None else self.end_rate

    def expected_count(self) -> float:
        """∫ rate dt over the schedule."""
        return (self.rate + self.final_rate) / 2 * self.duration_s

    def rate_at(self, t_s: np.ndarray | float) -> np.ndarray | float:
        return self.rate + (self.final_rate - self.rate) * np.asarray(t_s) / self.duration_s

    def offsets_ns(self) -> np.ndarray:
        """Intended send times in ns from the schedule's start, ascending, int64."""
        total = self.expected_count()
        if self.arrival == "constant":
            marks = np.arange(int(np.floor(total + 1e-9)), dtype=np.float64)
        else:
            rng = np.random.default_rng(self.seed)
            # Draw a little more than needed, then keep the arrivals inside the span.
            n = int(total + 6 * np.sqrt(total) + 16)
            marks = np.cumsum(rng.exponential(1.0, n))
            marks = marks[marks < total]
        return np.round(self._invert(marks) * 1e9).astype(np.int64)

    def _invert(self, marks: np.ndarray) -> np.ndarray:
        """t such that N(t) = marks, with N(t) = r0·t + (r1 − r0)·t² / (2D)."""
        r0, r1, d = self.rate, self.final_rate, self.duration_s
        slope = (r1 - r0) / d
        if abs(slope) < 1e-12:
            return marks / r0
        # Stable form of the quadratic root (no cancellation when slope is small).
        return 2 * marks / (r0 + np.sqrt(np.maximum(r0 * r0 + 2 * slope * marks, 0.0)))


def split_round_robin(offsets: np.ndarray, workers: int) -> list[np.ndarray]:
    """Deal arrivals to workers in turn: each worker's phase is staggered by one arrival."""
    return [offsets[w::workers] for w in range(workers)]
