"""The nouns of a boot storm: what is launched, the instants each instance reached, the result.

Times are columnar: one row per instance, one column per mark (`MARKS`), seconds since the
storm started, NaN where an instance never got there. A 1000-instance storm is a
1000 × 6 array, not a list of objects. A cloud that says more than "building" (Nova's task
states) adds sub-marks the same way: one column per state, the first poll that showed it.
"""

from __future__ import annotations

from collections.abc import Mapping
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

# What a human reads for each mark (progress bars, the report's columns). A driver that
# observes a mark another way says so in its `labels` (StormResult.labels), e.g. "ssh"
# reached by a console marker: the key stays "ssh" for every program that reads it.
MARK_LABELS = {
    "requested": "requested",
    "running": "running",
    "ping": "ping answers",
    "ssh": "ssh login",
    "delete_requested": "delete requested",
    "gone": "deleted",
}


def mark_label(labels: Mapping[str, str], mark: str) -> str:
    return labels.get(mark, MARK_LABELS.get(mark, mark))


def phase_label(labels: Mapping[str, str], phase: str) -> str:
    """A phase is named after the mark that ends it, so one label serves both ("ssh")."""
    return labels.get(phase, phase)


@dataclass(frozen=True)
class Observed:
    """What the last shared poll said of one instance in the cloud's own words (Nova: its
    status, task state and fault), so that an instance that stuck can say where."""

    status: str
    task_state: str | None = None
    fault: str = ""

    @property
    def text(self) -> str:
        s = self.status + (f"/{self.task_state}" if self.task_state else "")
        return s + (f" ({self.fault})" if self.fault else "")


@dataclass(frozen=True)
class TaskMarks:
    """A cloud's own states inside the storm's phases, first seen by the shared poll.

    names[j] lies in phase phases[j] ("create" or "delete"); marks_s[i, j] is when the poll
    first showed instance i in it, NaN if no poll did (a state shorter than the poll
    interval can fall between two polls)."""

    names: tuple[str, ...]
    phases: tuple[str, ...]
    marks_s: np.ndarray  # (n, len(names))


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
    # Sub-marks (Nova task states; none for libvirt): names, the phase each lies in, and
    # (n, k) first-seen seconds, NaN = not seen.
    task_marks: tuple[str, ...] = ()
    task_phases: tuple[str, ...] = ()
    task_marks_s: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    last_seen: tuple[str, ...] = ()  # per instance, the cloud's last words ("BUILD/scheduling"); "" = none
    labels: dict[str, str] = field(default_factory=dict)  # mark / phase -> what a human reads (MARK_LABELS)
    polls: int = 0  # shared status polls (poll intervals) of the storm loop
    api_calls: dict[str, int] = field(default_factory=dict)  # the driver's calls by kind ("list", "console", …)
    cleanup: tuple[str, ...] = ()  # what the final cleanup removed, one line each
    stopped: str = ""  # why the storm stopped before every instance was done (the cloud stopped answering)

    def __post_init__(self) -> None:
        n, k = len(self.names), len(self.task_marks)
        if self.task_marks_s.size == 0 and self.task_marks_s.shape != (n, k):
            object.__setattr__(self, "task_marks_s", np.full((n, k), np.nan))
        if self.task_marks_s.shape != (n, k) or len(self.task_phases) != k:
            raise ValueError(f"task marks: {self.task_marks_s.shape} for {n} instances and {k} states")

    def mark(self, name: str) -> np.ndarray:
        return self.marks_s[:, MARKS.index(name)]

    def task_mark(self, name: str) -> np.ndarray:
        return self.task_marks_s[:, self.task_marks.index(name)]

    @property
    def tasks(self) -> TaskMarks:
        return TaskMarks(self.task_marks, self.task_phases, self.task_marks_s)

    def mark_label(self, mark: str) -> str:
        return mark_label(self.labels, mark)

    def phase_label(self, phase: str) -> str:
        return phase_label(self.labels, phase)

    @property
    def goal(self) -> str:
        """The last guest-side mark the storm observes: "ssh" (an SSH login or whatever the
        driver put in its place), or "running" when the driver cannot reach the guests."""
        return "running" if "ssh" in self.skipped else "ssh"
