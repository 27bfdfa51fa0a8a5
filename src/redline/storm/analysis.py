"""Pure figures of a storm: phase durations, their statistics, occupancy over time."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Collection, Mapping
from typing import Any

import numpy as np

from redline.analysis.storm_diagnosis import observed_phases
from redline.model.storm import PhaseStats, StormSummary
from redline.storm.model import MARKS, PHASES, StormResult, TaskMarks, phase_label

# The state an instance is in between marks, for the occupancy chart (seed 000's stacked areas).
STATES = ("queued", "create", "ping", "ssh", "pre-delete", "delete", "done")


def phase_durations(marks_s: np.ndarray, skipped: Collection[str] = ()) -> dict[str, np.ndarray]:
    """Per phase, the duration of each instance (NaN when it did not complete that phase).

    A phase the driver could not observe (`skipped`: ping without a ping socket, or with a
    console marker in its place) has no row, and the phase after it starts where it would
    have started: with ping skipped, "ssh" runs from running to the ssh mark.
    """
    return {
        name: marks_s[:, MARKS.index(b)] - marks_s[:, MARKS.index(a)] for name, a, b in observed_phases(PHASES, skipped)
    }


def _end_mark(phase: str) -> str:
    return next(b for name, _, b in PHASES if name == phase)


def task_durations(marks_s: np.ndarray, tasks: TaskMarks) -> dict[str, tuple[np.ndarray, int]]:
    """Per task state ("create: scheduling"): the time each instance spent in it, and how many
    instances the poll saw in it.

    A state lasts from the first poll that showed it to the next mark seen after it, among
    the other states of its phase and the phase's end (ACTIVE for create, gone for delete).
    A state no poll showed gets no time of its own: its time is counted in the state seen
    before it; an instance that never left a state (stuck) has no duration for it.
    """
    out: dict[str, tuple[np.ndarray, int]] = {}
    for j, (state, phase) in enumerate(zip(tasks.names, tasks.phases)):
        start = tasks.marks_s[:, j]
        later = [tasks.marks_s[:, k] for k, p in enumerate(tasks.phases) if p == phase and k != j]
        later.append(marks_s[:, MARKS.index(_end_mark(phase))])
        cand = np.column_stack(later)
        cand = np.where(cand > start[:, None], cand, np.inf)
        nxt = cand.min(axis=1)
        dur = np.where(np.isfinite(start) & np.isfinite(nxt), nxt - start, np.nan)
        out[f"{phase}: {state}"] = (dur, int(np.isfinite(start).sum()))
    return out


def _stats(phase: str, v: np.ndarray, label: str = "", seen: int | None = None) -> PhaseStats:
    f = v[np.isfinite(v)]
    if f.size == 0:
        return PhaseStats(phase, 0, None, None, None, None, label=label, seen=seen)
    return PhaseStats(
        phase, int(f.size), float(f.min()), float(np.median(f)), float(np.percentile(f, 90)), float(f.max()),
        label=label, seen=seen,
    )  # fmt: skip


def phase_table(
    marks_s: np.ndarray,
    skipped: Collection[str] = (),
    labels: Mapping[str, str] | None = None,
    tasks: TaskMarks | None = None,
) -> list[PhaseStats]:
    """min / median / p90 / max per phase, each followed by the task states inside it
    ("create: scheduling", …), plus "boot to ssh" (requested → ssh) unless ssh is skipped.

    `labels`: the driver's names for phases (StormResult.labels); a row keeps its key in
    `phase` and says what a human reads in `label` when that differs.
    """
    labels = labels or {}
    by_task = task_durations(marks_s, tasks) if tasks is not None and tasks.names else {}
    rows: list[PhaseStats] = []
    for name, v in phase_durations(marks_s, skipped).items():
        label = phase_label(labels, name)
        rows.append(_stats(name, v, label if label != name else ""))
        for key, (dur, seen) in by_task.items():
            if key.startswith(f"{name}: "):
                rows.append(_stats(key, dur, seen=seen))
    if "ssh" not in skipped:
        total = marks_s[:, MARKS.index("ssh")] - marks_s[:, MARKS.index("requested")]
        label = f"requested→{phase_label(labels, 'ssh')}"
        rows.append(_stats("requested→ssh", total, label if label != "requested→ssh" else ""))
    return rows


def task_note(tasks: TaskMarks, poll_interval_s: float) -> str | None:
    """How far to trust the task-state rows: what the poll saw, for how many instances."""
    if not tasks.names:
        return None
    n = tasks.marks_s.shape[0]
    seen = ", ".join(f"{name} {int(np.isfinite(tasks.marks_s[:, j]).sum())}/{n}" for j, name in enumerate(tasks.names))
    return (
        f"task states are the first status poll (every {poll_interval_s:g} s) that showed each: seen for {seen} "
        "instances; a state shorter than the interval can fall between two polls, and its time then counts in "
        "the state seen before it"
    )


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
        phases=tuple(phase_table(m, result.skipped, result.labels, result.tasks)),
        notes=tuple(x for x in (task_note(result.tasks, result.plan.poll_interval_s),) if x),
    )


def partial_line(result: StormResult) -> str | None:
    """One sentence for a storm where some instances failed: how far they got, where the
    rest were last seen; None when none failed."""
    failed = [i for i, e in enumerate(result.errors) if e]
    if not failed and not result.stopped:
        return None
    n = len(result.names)
    reached = f"{int(np.isfinite(result.mark('running')).sum())} of {n} reached {result.mark_label('running')}"
    if result.goal != "running":
        reached += f", {int(np.isfinite(result.mark(result.goal)).sum())} of {n} {result.mark_label(result.goal)}"
    last = result.last_seen or ("",) * n
    # Where the failed ones stopped: the cloud's last words when it said any, else the error.
    where = Counter(last[i] or result.errors[i].split("; ")[0][:100] for i in failed)
    stuck = ", ".join(f"{k} × {w}" for w, k in where.most_common())
    lead = f"storm stopped: {result.stopped}; " if result.stopped else ""
    how = "last seen" if any(last[i] for i in failed) else "errors:"
    return f"{lead}partial storm: {reached}; {len(failed)} failed, {how} {stuck}"


def state_at(marks_s: np.ndarray, t: np.ndarray, skipped: Collection[str] = ()) -> np.ndarray:
    """(len(t), n) index into STATES of each instance at each instant.

    An instance is "queued" before it is requested, in phase X between X's marks, "pre-delete"
    between ssh and delete requested, "done" once gone. One that failed stays in its last
    state until it is gone (cleanup removes it), so the areas show where it was stuck. With
    a phase skipped (ping, when a console marker or nothing stands in for it) an instance
    past running is in the next phase the storm does observe.
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
    if "ping" in skipped:
        st[st == 2] = 4 if "ssh" in skipped else 3
    return st


def occupancy(marks_s: np.ndarray, t: np.ndarray, skipped: Collection[str] = ()) -> dict[str, np.ndarray]:
    """Share (0–1) of all instances in each state at each instant of `t`."""
    st = state_at(marks_s, t, skipped)
    n = max(1, marks_s.shape[0])
    return {name: (st == i).sum(axis=1) / n for i, name in enumerate(STATES)}


def span_to_ssh_s(marks_s: np.ndarray, goal: str = "ssh") -> float | None:
    """First request → last SSH login (or the storm's other `goal` mark, StormResult.goal),
    seconds; None unless every instance reached it.

    This is T(N) of a storm for scalability fits: the network set-up before the first
    request is not part of it.
    """
    req = marks_s[:, MARKS.index("requested")]
    end = marks_s[:, MARKS.index(goal)]
    if marks_s.shape[0] == 0 or not np.all(np.isfinite(end)):
        return None
    return float(end.max() - np.nanmin(req))
