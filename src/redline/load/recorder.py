"""Per-worker result columns, filled on the hot path and handed over in chunks.

The columns are a ring of `capacity` slots: row r (the worker's r-th arrival) lives in
slot r % capacity from the moment its intended time is filled in until it is flushed, so
a worker's memory is set by how many rows can be open at once (the rate times the
timeouts), not by the run's length. The connection pool only ever sees slots.
"""

from __future__ import annotations

from array import array
from bisect import bisect_right
from time import monotonic_ns

import numpy as np

from redline.model.samples import NOT_SET

_RESET = {  # a slot's value before its row happens
    "dispatched": NOT_SET,
    "sent": NOT_SET,
    "done": NOT_SET,
    "status": 0,
    "outcome": -1,  # -1: still open; set exactly once per row
    "bytes_in": 0,
}


class Recorder:
    """Columns for the rows one worker owns.

    `array.array` rather than NumPy: setting one item costs a third as much, and
    NumPy views of it (`np.frombuffer`) are free.
    """

    __slots__ = (
        "answered",
        "base",
        "bytes_in",
        "capacity",
        "dispatched",
        "done",
        "errors",
        "failed_step",
        "filled",
        "finished",
        "intended",
        "outcome",
        "recent",
        "responses",
        "sent",
        "status",
        "step_done",
        "steps",
    )

    def __init__(self, capacity: int, steps: int = 0) -> None:
        c = self.capacity = max(1, capacity)
        self.intended = array("q", [0]) * c
        self.dispatched = array("q", [NOT_SET]) * c
        self.sent = array("q", [NOT_SET]) * c
        self.done = array("q", [NOT_SET]) * c
        self.status = array("h", [0]) * c
        self.outcome = array("b", [-1]) * c
        self.bytes_in = array("i", [0]) * c
        # Iterations only: completion time of every step slot that answered 2xx/3xx
        # (row-major, `steps` per row), and the slot of the step that failed (-1: none).
        self.steps = steps
        self.step_done = array("q", [NOT_SET]) * (c * steps)
        self.failed_step = array("b", [-1]) * (c if steps else 0)
        self.base = 0  # every row before this one has been taken (flushed)
        self.filled = 0  # rows before this one have their intended time in the ring
        self.finished = 0
        self.errors = 0
        self.answered = 0  # responses with status < 400
        self.responses = 0  # responses of any status: the target is alive
        # Slots answered since the last progress report (live display and early stop).
        self.recent: list[int] = []

    # -- the ring --

    @property
    def room(self) -> int:
        return self.capacity - (self.filled - self.base)

    def slot(self, row: int) -> int:
        return row % self.capacity

    def segments(self, lo: int, hi: int) -> list[tuple[int, int]]:
        """Rows [lo, hi) as contiguous slot ranges (two when they wrap around)."""
        if hi <= lo:
            return []
        c, s = self.capacity, lo % self.capacity
        end = s + (hi - lo)
        return [(s, end)] if end <= c else [(s, c), (0, end - c)]

    def fill(self, intended_abs_ns: np.ndarray) -> None:
        """Append rows with these intended times (at most `room` of them)."""
        k = len(intended_abs_ns)
        assert k <= self.room, "ring overflow"
        at = 0
        for s, e in self.segments(self.filled, self.filled + k):
            self._view("intended")[s:e] = intended_abs_ns[at : at + e - s]
            for name, value in _RESET.items():
                self._view(name)[s:e] = value
            if self.steps:
                self._view("step_done")[s * self.steps : e * self.steps] = NOT_SET
                self._view("failed_step")[s:e] = -1
            at += e - s
        self.filled += k

    def first_after(self, t: int, lo: int, hi: int) -> int:
        """The first row in [lo, hi) whose intended time is after t (hi if none)."""
        intended = self.intended
        for s, e in self.segments(lo, hi):
            j = bisect_right(intended, t, s, e)
            if j < e:
                return lo + (j - s)
            lo += e - s
        return hi

    def frontier(self, upto: int) -> int:
        """The first row in [base, upto) still open (upto if none): rows before it can be taken."""
        out = self._view("outcome")
        row = self.base
        for s, e in self.segments(self.base, upto):
            open_ = np.flatnonzero(out[s:e] == -1)
            if open_.size:
                return row + int(open_[0])
            row += e - s
        return upto

    def take(self, hi: int) -> dict[str, np.ndarray]:
        """Copies of rows [base, hi), which must all be finished; frees their slots."""
        idx = np.concatenate([np.arange(s, e) for s, e in self.segments(self.base, hi)] or [np.zeros(0, np.int64)])
        cols = {
            "intended_ns": self._view("intended")[idx],
            "dispatched_ns": self._view("dispatched")[idx],
            "sent_ns": self._view("sent")[idx],
            "done_ns": self._view("done")[idx],
            "status": self._view("status")[idx],
            "outcome": self._view("outcome")[idx],
            "bytes_in": self._view("bytes_in")[idx],
        }
        if self.steps:
            cols["step_done_ns"] = self._view("step_done").reshape(self.capacity, self.steps)[idx]
            cols["failed_step"] = self._view("failed_step")[idx]
        self.base = hi
        return cols

    def _view(self, name: str) -> np.ndarray:
        return np.frombuffer(getattr(self, name), dtype=_DTYPES[name])

    # -- the hot path (slots) --

    def finish(self, slot: int, status: int, outcome: int, nbytes: int) -> None:
        now = monotonic_ns()
        self.done[slot] = now
        self.status[slot] = status
        self.outcome[slot] = outcome
        self.bytes_in[slot] = nbytes
        self.finished += 1
        if outcome:
            self.errors += 1
        else:
            self.answered += 1
        if status:
            self.responses += 1
        self.recent.append(slot)

    def mark_unsent(self, slots: range | list[int] | np.ndarray, outcome: int) -> int:
        """Give every still-open slot among `slots` the outcome `outcome`; returns how many."""
        out = self._view("outcome")
        idx = np.arange(slots.start, slots.stop) if isinstance(slots, range) else np.asarray(slots, dtype=np.int64)
        idx = idx[out[idx] == -1]
        out[idx] = outcome
        self.finished += int(idx.size)
        return int(idx.size)

    def mark_rows_unsent(self, lo: int, hi: int, outcome: int) -> int:
        """`mark_unsent` for the rows [lo, hi) of the ring."""
        return sum(self.mark_unsent(range(s, e), outcome) for s, e in self.segments(lo, hi))

    def take_recent(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(rows, done_ns, outcome, latency_ns) of the rows finished since the last call;
        valid while none of them has been taken."""
        slots = np.asarray(self.recent, dtype=np.int64)
        self.recent = []
        c = self.capacity
        rows = self.base + (slots - self.base % c) % c
        done = self._view("done")[slots]
        outcome = self._view("outcome")[slots]
        return rows, done, outcome, done - self._view("intended")[slots]


_DTYPES = {
    "intended": np.int64,
    "dispatched": np.int64,
    "sent": np.int64,
    "done": np.int64,
    "status": np.int16,
    "outcome": np.int8,
    "bytes_in": np.int32,
    "step_done": np.int64,
    "failed_step": np.int8,
}
