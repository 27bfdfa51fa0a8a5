"""Per-worker result columns, filled on the hot path and handed over as NumPy arrays."""

from __future__ import annotations

from array import array
from time import monotonic_ns

import numpy as np

from redline.model.samples import NOT_SET


class Recorder:
    """Columns for the rows one worker owns (row i is the worker's i-th arrival).

    `array.array` rather than NumPy: setting one item costs a third as much, and
    converting at the end is a zero-copy `np.frombuffer`.
    """

    __slots__ = (
        "answered",
        "bytes_in",
        "dispatched",
        "done",
        "errors",
        "failed_step",
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

    def __init__(self, intended_abs_ns: np.ndarray, steps: int = 0) -> None:
        n = len(intended_abs_ns)
        self.intended = array("q", intended_abs_ns.astype(np.int64).tobytes())
        self.dispatched = array("q", [NOT_SET]) * n
        self.sent = array("q", [NOT_SET]) * n
        self.done = array("q", [NOT_SET]) * n
        self.status = array("h", [0]) * n
        self.outcome = array("b", [-1]) * n  # -1: still open; set exactly once per row
        self.bytes_in = array("i", [0]) * n
        # Iterations only: completion time of every step slot that answered 2xx/3xx
        # (row-major, `steps` per row), and the slot of the step that failed (-1: none).
        self.steps = steps
        self.step_done = array("q", [NOT_SET]) * (n * steps)
        self.failed_step = array("b", [-1]) * (n if steps else 0)
        self.finished = 0
        self.errors = 0
        self.answered = 0  # responses with status < 400
        self.responses = 0  # responses of any status: the target is alive
        # Rows answered since the last progress report (live display and early stop).
        self.recent: list[int] = []

    def finish(self, row: int, status: int, outcome: int, nbytes: int) -> None:
        now = monotonic_ns()
        self.done[row] = now
        self.status[row] = status
        self.outcome[row] = outcome
        self.bytes_in[row] = nbytes
        self.finished += 1
        if outcome:
            self.errors += 1
        else:
            self.answered += 1
        if status:
            self.responses += 1
        self.recent.append(row)

    def mark_unsent(self, rows: range | list[int], outcome: int) -> int:
        """Give every still-open row among `rows` the outcome `outcome`; returns how many."""
        out = np.frombuffer(self.outcome, dtype=np.int8)
        idx = np.arange(rows.start, rows.stop) if isinstance(rows, range) else np.asarray(rows, dtype=np.int64)
        idx = idx[out[idx] == -1]
        out[idx] = outcome
        self.finished += int(idx.size)
        return int(idx.size)

    def take_recent(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(rows, done_ns, outcome) of the rows finished since the last call."""
        rows = np.asarray(self.recent, dtype=np.int64)
        self.recent = []
        done = np.frombuffer(self.done, dtype=np.int64)[rows]
        outcome = np.frombuffer(self.outcome, dtype=np.int8)[rows]
        return rows, done, outcome

    def columns(self) -> dict[str, np.ndarray]:
        steps: dict[str, np.ndarray] = {}
        if self.steps:
            n = len(self.intended)
            steps = {
                "step_done_ns": np.frombuffer(self.step_done, dtype=np.int64).reshape(n, self.steps),
                "failed_step": np.frombuffer(self.failed_step, dtype=np.int8),
            }
        return steps | {
            "intended_ns": np.frombuffer(self.intended, dtype=np.int64),
            "dispatched_ns": np.frombuffer(self.dispatched, dtype=np.int64),
            "sent_ns": np.frombuffer(self.sent, dtype=np.int64),
            "done_ns": np.frombuffer(self.done, dtype=np.int64),
            "status": np.frombuffer(self.status, dtype=np.int16),
            "outcome": np.frombuffer(self.outcome, dtype=np.int8),
            "bytes_in": np.frombuffer(self.bytes_in, dtype=np.int32),
        }
