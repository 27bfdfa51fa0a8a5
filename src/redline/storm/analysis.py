"""Pure figures of a storm: phase durations, their statistics, occupancy over time."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from redline.model.storm import PhaseStats, StormSummary
from redline.storm.model import MARKS, PHASES, StormResult

# The state an instance is in between marks, for the occupancy chart (seed 000's stacked areas).
STATES = ("queued", "create", "ping", "ssh", "pre-delete", "delete", "done")


def phase_durations(marks_s: np.ndarray) -> dict[str, np.ndarray]:
    """Per phase, the duration of each instance (NaN when it did not complete that phase)."""
    return {name: marks_s[:, MARKS.index(b)] - marks_s[:, MARKS.index(a)] for name, a, b in PHASES}


def _stats(phase: str, v: np.ndarray) -> PhaseStats:
    f = v[np.isfinite(v)]
    if f.size == 0:
        return PhaseStats(phase, 0, None, None, None, None)
    return PhaseStats(
        phase, int(f.size), float(f.min()), float(np.median(f)), float(np.percentile(f, 90)), float(f.max())
    )


def phase_table(marks_s: np.ndarray) -> list[PhaseStats]:
    """min / median / p90 / max per phase, plus "boot to ssh" (requested → ssh)."""
    rows = [_stats(name, v) for name, v in phase_durations(marks_s).items()]
    total = marks_s[:, MARKS.index("ssh")] - marks_s[:, MARKS.index("requested")]
    rows.append(_stats("requested→ssh", total))
    return rows


def _opt(v: np.ndarray, fn: Callable[[np.ndarray], Any]) -> float | None:
    f = v[np.isfinite(v)]
    return float(fn(f)) if f.size else None


def summarise(result: StormResult) -> StormSummary:
    m = result.marks_s
    running = m[:, MARKS.index("running")]
    gone = m[:, MARKS.index("gone")]
    end = _opt(gone, np.max)
    if np.isfinite(result.end_s) and (end is None or result.end_s > end) and not np.all(np.isfinite(gone)):
        end = result.end_s
    return StormSummary(
        count=int(m.shape[0]),
        reached={k: int(np.isfinite(m[:, i]).sum()) for i, k in enumerate(MARKS)},
        first_active_s=_opt(running, np.min),
        last_active_s=_opt(running, np.max),
        last_ssh_s=_opt(m[:, MARKS.index("ssh")], np.max),
        total_s=end,
        failed=sum(1 for e in result.errors if e),
        phases=tuple(phase_table(m)),
    )


def state_at(marks_s: np.ndarray, t: np.ndarray) -> np.ndarray:
    """(len(t), n) index into STATES of each instance at each instant.

    An instance is "queued" before it is requested, in phase X between X's marks, "pre-delete"
    between ssh and delete requested, "done" once gone. One that failed stays in its last
    state until it is gone (cleanup removes it), so the areas show where it was stuck.
    """
    n = marks_s.shape[0]
    t = np.asarray(t, float)[:, None]
    reached = [np.isfinite(marks_s[:, i]) & (marks_s[:, i] <= t) for i in range(len(MARKS))]
    st = np.zeros((t.shape[0], n), np.int8)  # queued
    st[reached[0]] = 1  # create
    st[reached[1]] = 2  # ping
    st[reached[2]] = 3  # ssh
    st[reached[3]] = 4  # pre-delete
    st[reached[4]] = 5  # delete
    st[reached[5]] = 6  # done
    return st


def occupancy(marks_s: np.ndarray, t: np.ndarray) -> dict[str, np.ndarray]:
    """Share (0–1) of all instances in each state at each instant of `t`."""
    st = state_at(marks_s, t)
    n = max(1, marks_s.shape[0])
    return {name: (st == i).sum(axis=1) / n for i, name in enumerate(STATES)}


def span_to_ssh_s(marks_s: np.ndarray) -> float | None:
    """First request → last SSH login, seconds; None unless every instance reached SSH.

    This is T(N) of a storm for scalability fits: the network set-up before the first
    request is not part of it.
    """
    req = marks_s[:, MARKS.index("requested")]
    ssh = marks_s[:, MARKS.index("ssh")]
    if marks_s.shape[0] == 0 or not np.all(np.isfinite(ssh)):
        return None
    return float(ssh.max() - np.nanmin(req))
