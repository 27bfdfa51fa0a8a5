"""The nouns of a boot storm: what is launched, the instants each instance reached, the result.

Times are columnar: one row per instance, one column per mark (`MARKS`), seconds since the
storm started, NaN where an instance never got there. A 1000-instance storm is a
1000 × 6 array, not a list of objects.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

# The instants recorded per instance, in the order an instance passes them.
MARKS = ("requested", "running", "ping", "ssh", "delete_requested", "gone")
# A phase is the wait between two consecutive marks; "delete" spans delete_requested → gone.
PHASES = (
    ("create", "requested", "running"),
    ("ping", "running", "ping"),
    ("ssh", "ping", "ssh"),
    ("delete", "delete_requested", "gone"),
)
PHASE_NAMES = tuple(p[0] for p in PHASES)


@dataclass(frozen=True)
class InstanceSpec:
    """One instance to launch: its name carries the run id, as does its metadata."""

    index: int
    name: str
    run_id: str
    mac: str = ""
    address: str = ""


@dataclass(frozen=True)
class StormPlan:
    count: int
    concurrency: int
    poll_interval_s: float = 0.5
    instance_timeout_s: float = 300.0  # requested → ssh, per instance
    total_timeout_s: float = 900.0  # the whole storm, cleanup not included
    memory_mib: int = 112
    ping: bool = True
    ssh: bool = True

    def __post_init__(self) -> None:
        if self.count < 1:
            raise ValueError(f"count must be at least 1 (got {self.count})")
        if self.concurrency < 1:
            raise ValueError(f"concurrency must be at least 1 (got {self.concurrency})")
        if not self.poll_interval_s > 0:
            raise ValueError("poll interval must be positive")
        if not (self.instance_timeout_s > 0 and self.total_timeout_s > 0):
            raise ValueError("timeouts must be positive")

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class StormResult:
    """Per-instance marks of one storm, and how it ended."""

    run_id: str
    driver: str
    plan: StormPlan
    names: tuple[str, ...]
    marks_s: np.ndarray  # (n, len(MARKS)) seconds since start_ns, NaN = not reached
    start_ns: int  # CLOCK_MONOTONIC at the storm's start (the monitor's clock)
    errors: tuple[str, ...]  # "" = none, per instance
    ssh_output: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    interrupted: bool = False
    end_s: float = float("nan")  # when the storm loop ended, cleanup done
    skipped: tuple[str, ...] = field(default_factory=tuple)  # phases the driver could not observe

    def mark(self, name: str) -> np.ndarray:
        return self.marks_s[:, MARKS.index(name)]
