"""The results of `redline storm` and `redline scale`."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from redline.model.codec import JsonRecord
from redline.model.document import RunDocument
from redline.model.finding import Finding
from redline.model.storm_diagnosis import PhaseCpu


@dataclass(frozen=True)
class PhaseStats(JsonRecord):
    phase: str  # the key: "create", "ssh", "create: scheduling" (a task state inside create)
    count: int  # instances that completed the phase
    min_s: float | None
    median_s: float | None
    p90_s: float | None
    max_s: float | None
    label: str = ""  # what a human reads when the driver names it otherwise ("guest up (console marker …)")
    seen: int | None = None  # task states: instances the poll saw in it (short ones fall between polls)

    @property
    def title(self) -> str:
        return self.label or self.phase


@dataclass(frozen=True)
class StormSummary(JsonRecord):
    count: int
    reached: dict[str, int]  # mark -> instances that reached it
    first_active_s: float | None
    last_active_s: float | None
    last_ssh_s: float | None
    total_s: float | None  # start → last instance gone (or the storm's end)
    failed: int
    phases: tuple[PhaseStats, ...]
    notes: tuple[str, ...] = ()  # how to read the table (what the poll could see of task states)


@dataclass(frozen=True)
class InstanceRecord(JsonRecord):
    """One instance of a storm: its marks in seconds since the storm started (None: not reached)."""

    name: str
    error: str | None = None
    ssh_output: str | None = None
    requested: float | None = None
    running: float | None = None
    ping: float | None = None
    ssh: float | None = None
    delete_requested: float | None = None
    gone: float | None = None
    # Task state -> the first poll that showed it (None: no poll did); empty for libvirt.
    task_states: dict[str, float | None] = field(default_factory=dict)
    last_seen: str | None = None  # the cloud's last words on it ("BUILD/scheduling")


@dataclass(frozen=True, kw_only=True)
class StormRunResult(RunDocument):
    command: str = "storm"
    run_id: str = ""
    summary: StormSummary | None = None  # None until the storm has ended
    instances: tuple[InstanceRecord, ...] = ()
    notes: tuple[str, ...] = ()
    skipped_phases: tuple[str, ...] = ()
    monitor: dict[str, Any] | None = None
    # Where the time went (analysis/storm_diagnosis.py): empty in folders written before it.
    phase_cpu: tuple[PhaseCpu, ...] = ()
    findings: tuple[Finding, ...] = ()
    # The driver's names for marks and phases ({"ssh": "guest up (console marker GUEST-UP)"}).
    labels: dict[str, str] = field(default_factory=dict)
    polls: int | None = None  # shared status polls of the storm loop (poll intervals)
    api_calls: dict[str, int] = field(default_factory=dict)  # the driver's calls by kind: "list" == polls
    cleanup: tuple[str, ...] = ()  # what the final cleanup removed


def usl(n: Any, lam: float, sigma: float, kappa: float) -> np.ndarray:
    """X(N) = λ N / (1 + σ (N − 1) + κ N (N − 1)): the Universal Scalability Law."""
    n = np.asarray(n, float)
    x: np.ndarray = lam * n / (1.0 + sigma * (n - 1.0) + kappa * n * (n - 1.0))
    return x


@dataclass(frozen=True)
class Interval(JsonRecord):
    value: float
    low: float  # NaN when the data cannot bound it
    high: float

    def text(self, digits: int = 4) -> str:
        if not (math.isfinite(self.low) and math.isfinite(self.high)):
            return f"{self.value:.{digits}f} [no interval]"
        return f"{self.value:.{digits}f} [{self.low:.{digits}f}, {self.high:.{digits}f}]"


@dataclass(frozen=True)
class ScaleFit(JsonRecord):
    model: str  # "usl" or "amdahl"
    lam: float = field(metadata={"key": "lambda"})  # throughput of one alone (instances per second)
    sigma: Interval
    kappa: Interval | None  # None for Amdahl
    peak_n: float | None  # N of the highest throughput (USL with κ > 0)
    peak_x: float | None  # the throughput there; for Amdahl, the ceiling λ/σ
    rel_rmse: float  # root mean square of log(x / fit): ≈ the relative error of a point
    dof: int  # points − parameters
    boot_method: str  # "parametric" or "none"
    boot_used: int  # resamples that gave a fit

    @property
    def kappa_value(self) -> float:
        return self.kappa.value if self.kappa is not None else 0.0

    def predict(self, n: Any) -> np.ndarray:
        return usl(n, self.lam, self.sigma.value, self.kappa_value)


@dataclass(frozen=True)
class ScalePoint(JsonRecord):
    n: int
    round: int
    t_s: float  # first request → last SSH login (ScaleResult.goal_label)
    run_dir: str  # the storm's folder, relative to the scale folder
    # phase -> median duration over the storm's instances (NaN: none completed it), so the
    # phase that grows fastest with N is found without opening every storm folder.
    phase_median_s: dict[str, float] = field(default_factory=dict)

    @property
    def throughput(self) -> float:
        return self.n / self.t_s

    def _json_extra(self) -> dict[str, Any]:
        return {"throughput_per_s": self.throughput}


@dataclass(frozen=True, kw_only=True)
class ScaleResult(RunDocument):
    command: str = "scale"
    points: tuple[ScalePoint, ...] = ()
    usl: ScaleFit | None = None
    amdahl: ScaleFit | None = None
    sentences: tuple[str, ...] = ()
    findings: tuple[Finding, ...] = ()  # the fastest-growing phase first
    goal_label: str = "SSH login"  # what T(N) runs to: the storms' last guest-side mark
    labels: dict[str, str] = field(default_factory=dict)  # the storms' names for phases (StormRunResult.labels)
