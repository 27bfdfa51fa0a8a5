"""Generator health of one run or probe: was the load generator itself the limit?
(Computed by load.health.assess; stored in run.json.)"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from redline.model.codec import JsonRecord


@dataclass(frozen=True)
class WorkerStats(JsonRecord):
    index: int
    pid: int
    cpus: tuple[int, ...]
    cpu_s: float
    wall_s: float
    cap_hits: int
    connects: int
    connect_failures: int
    retries: int = field(metadata={"key": "stale_keepalive_retries"})
    end_reason: str

    @property
    def cpu_share(self) -> float:
        """Share of one core this worker used over its run."""
        return self.cpu_s / self.wall_s if self.wall_s > 0 else 0.0

    def _json_extra(self) -> dict[str, Any]:
        return {"cpu_s": round(self.cpu_s, 4), "cpu_share": round(self.cpu_share, 4)}

    @classmethod
    def _json_in(cls, d: dict[str, Any]) -> dict[str, Any]:
        if "wall_s" not in d:  # written before wall_s was kept: it follows from the share
            share = d.get("cpu_share") or 0.0
            d = d | {"wall_s": (d.get("cpu_s", 0.0) / share) if share else 0.0}
        return d


@dataclass(frozen=True)
class GeneratorHealth(JsonRecord):
    generator_bound: bool
    reasons: tuple[str, ...]
    lag_ms: dict[str, float] = field(metadata={"key": "schedule_lag_ms"})  # dispatch − intended
    send_lag_ms: dict[str, float]  # sent − intended, includes waiting for a free connection
    late_share: float
    workers: tuple[WorkerStats, ...]
    cap_hits: int
    connection_cap: int
    in_flight_max: int
    backlog_max: int
    notes: tuple[str, ...] = ()
    late_threshold_ms: float = 1.0

    @property
    def cpu_s(self) -> float:
        return sum(w.cpu_s for w in self.workers)

    def _json_extra(self) -> dict[str, Any]:
        return {"cpu_s": self.cpu_s}
