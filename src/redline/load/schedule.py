"""Arrival schedules: when each request of an open-loop run *should* be sent.

Every schedule is built the same way: arrival k happens when the cumulative intended
count N(t) = ∫ rate reaches a_k, where a_k = k for evenly spaced arrivals and a
unit-rate Poisson process for random ones. Inverting N(t) in closed form gives the
constant rate, a linear ramp, and Poisson versions of both, all vectorised.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

import numpy as np

ArrivalKind = Literal["constant", "poisson"]
BLOCK = 65536  # arrivals generated at a time


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
        blocks = list(self.blocks())
        return np.concatenate(blocks) if blocks else np.zeros(0, dtype=np.int64)

    def blocks(self, size: int = BLOCK) -> Iterator[np.ndarray]:
        """The same times as `offsets_ns`, `size` at a time, so that a long run never holds
        its whole schedule: the k-th block holds arrivals k·size … (k+1)·size − 1."""
        total = self.expected_count()
        if self.arrival == "constant":
            count = int(np.floor(total + 1e-9))
            for lo in range(0, count, size):
                yield self._offsets(np.arange(lo, min(lo + size, count), dtype=np.float64))
            return
        # One generator drawn block after block gives the same stream as one big draw, and
        # cumsum from the carried sum adds in the same order: the times are bit-identical.
        rng = np.random.default_rng(self.seed)
        carry = 0.0
        while True:
            marks = np.cumsum(np.concatenate(([carry], rng.exponential(1.0, size))))[1:]
            carry = float(marks[-1])
            inside = marks[marks < total]
            if inside.size:
                yield self._offsets(inside)
            if inside.size < size:
                return

    def count(self) -> int:
        """How many arrivals the schedule holds (generated block by block for Poisson)."""
        if self.arrival == "constant":
            return int(np.floor(self.expected_count() + 1e-9))
        return sum(b.size for b in self.blocks())

    def share(self, worker: int, workers: int, size: int = BLOCK) -> Iterator[np.ndarray]:
        """Worker `worker`'s arrivals (every `workers`-th, from arrival `worker`), in blocks."""
        first = 0
        for block in self.blocks(size):
            yield block[(worker - first) % workers :: workers]
            first += block.size

    def share_count(self, worker: int, workers: int) -> int:
        return len(range(worker, self.count(), workers))

    def _offsets(self, marks: np.ndarray) -> np.ndarray:
        return np.round(self._invert(marks) * 1e9).astype(np.int64)

    def _invert(self, marks: np.ndarray) -> np.ndarray:
        """t such that N(t) = marks, with N(t) = r0·t + (r1 − r0)·t² / (2D)."""
        r0, r1, d = self.rate, self.final_rate, self.duration_s
        slope = (r1 - r0) / d
        if abs(slope) < 1e-12:
            return marks / r0
        # Stable form of the quadratic root (no cancellation when slope is small).
        return 2 * marks / (r0 + np.sqrt(np.maximum(r0 * r0 + 2 * slope * marks, 0.0)))
