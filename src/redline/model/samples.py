"""Columnar per-request samples: one row per *scheduled* request.

A 5-minute run at 10k requests/s is 3 million rows, so every column is a NumPy
array and nothing here loops over rows in Python.

Times are CLOCK_MONOTONIC nanoseconds (shared by every process on the host), with
one wall-clock anchor so that a row can be placed in calendar time.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import IntEnum
from typing import Any

import numpy as np

NOT_SET = -1
"""Value of `sent_ns` / `done_ns` for a request that was never sent / never finished."""


class RequestOutcome(IntEnum):
    """What happened to one scheduled request (the `outcome` column)."""

    OK = 0  # a response with status < 400
    HTTP = 1  # a response with status >= 400
    CONNECT = 2  # could not connect (refused, unreachable, connect timeout)
    TIMEOUT = 3  # sent, no complete response within the read timeout
    RESET = 4  # the connection broke while the request was in flight
    PROTOCOL = 5  # the response could not be parsed as HTTP/1.1
    UNSENT_BACKLOG = 6  # still waiting inside the generator for a connection when the run ended
    UNSENT_INTERRUPTED = 7  # the run was interrupted (Ctrl-C, SIGTERM) before this was sent
    UNSENT_ABORTED = 8  # the run was abandoned (target unreachable) before this was sent

    @property
    def is_error(self) -> bool:
        return self in ERROR_OUTCOMES

    @property
    def is_unsent(self) -> bool:
        return self >= RequestOutcome.UNSENT_BACKLOG


ERROR_OUTCOMES = frozenset(
    {RequestOutcome.HTTP, RequestOutcome.CONNECT, RequestOutcome.TIMEOUT, RequestOutcome.RESET, RequestOutcome.PROTOCOL}
)

UNSENT_REASONS = {
    RequestOutcome.UNSENT_BACKLOG: "still queued in the generator (no free connection) when the run ended",
    RequestOutcome.UNSENT_INTERRUPTED: "the run was interrupted before its send time",
    RequestOutcome.UNSENT_ABORTED: "the run was abandoned before its send time",
}

_COLUMNS = {
    "intended_ns": np.int64,
    "sent_ns": np.int64,
    "done_ns": np.int64,
    "status": np.int16,
    "outcome": np.int8,
    "bytes_in": np.int32,
    "worker": np.int16,
}


@dataclass(frozen=True)
class SampleClock:
    """The clock facts of a run's rows (see Samples)."""

    start_ns: int
    measure_from_ns: int
    anchor_mono_ns: int
    anchor_wall_ns: int


@dataclass(frozen=True)
class Samples:
    """Per-request columns plus the clock facts needed to interpret them.

    intended_ns: when the request should have been sent (the schedule).
    sent_ns:     when its first byte was actually written, or NOT_SET.
    done_ns:     when it finished (response complete or error detected), or NOT_SET.
    status:      HTTP status code, 0 when there was no response.
    outcome:     an `RequestOutcome` code.
    bytes_in:    response bytes received.
    worker:      index of the generator process that owned the row.
    start_ns:    monotonic time of the schedule's zero (start of warm-up).
    measure_from_ns: monotonic time where the measurement window starts (end of warm-up).
    anchor_mono_ns / anchor_wall_ns: one simultaneous reading of both clocks.

    Multi-step iterations (one row per iteration) add:
    step_done_ns: (rows, steps) completion time of each step slot answered 2xx/3xx, else NOT_SET;
    failed_step:  the slot of the step that ended the iteration in error, −1 for none;
    step_names / step_prev: each slot's name and the slot before it in its iteration
                  (−1: a first step, which starts at the row's intended time).
    """

    intended_ns: np.ndarray
    sent_ns: np.ndarray
    done_ns: np.ndarray
    status: np.ndarray
    outcome: np.ndarray
    bytes_in: np.ndarray
    worker: np.ndarray
    start_ns: int
    measure_from_ns: int
    anchor_mono_ns: int
    anchor_wall_ns: int
    step_done_ns: np.ndarray | None = None
    failed_step: np.ndarray | None = None
    step_names: tuple[str, ...] = ()
    step_prev: tuple[int, ...] = ()

    def __len__(self) -> int:
        return int(self.intended_ns.shape[0])

    # -- derived columns (vectorised; NaN-free: callers select rows with the masks) --

    @property
    def completed(self) -> np.ndarray:
        """Rows that got a response (any status) — the rows with a latency."""
        completed: np.ndarray = (self.outcome == RequestOutcome.OK) | (self.outcome == RequestOutcome.HTTP)
        return completed

    @property
    def ok(self) -> np.ndarray:
        ok: np.ndarray = self.outcome == RequestOutcome.OK
        return ok

    @property
    def errors(self) -> np.ndarray:
        return (self.outcome >= RequestOutcome.HTTP) & (self.outcome <= RequestOutcome.PROTOCOL)

    @property
    def unsent(self) -> np.ndarray:
        return self.outcome >= RequestOutcome.UNSENT_BACKLOG

    @property
    def latency_ns(self) -> np.ndarray:
        """done − intended: includes any queueing inside the generator (open loop)."""
        latency: np.ndarray = self.done_ns - self.intended_ns
        return latency

    @property
    def service_ns(self) -> np.ndarray:
        """done − sent: what a closed-loop tool would report."""
        service: np.ndarray = self.done_ns - self.sent_ns
        return service

    @property
    def lag_ns(self) -> np.ndarray:
        """sent − intended: how late the generator was in sending."""
        lag: np.ndarray = self.sent_ns - self.intended_ns
        return lag

    def t_seconds(self, column: np.ndarray | None = None) -> np.ndarray:
        """Seconds since the start of the measurement window (negative during warm-up)."""
        col = self.intended_ns if column is None else column
        return (col - self.measure_from_ns) / 1e9

    def wall_ns(self, column: np.ndarray) -> np.ndarray:
        return column - self.anchor_mono_ns + self.anchor_wall_ns

    # -- selection --

    def select(self, mask: np.ndarray) -> Samples:
        return Samples(
            **{name: getattr(self, name)[mask] for name in _COLUMNS},
            start_ns=self.start_ns,
            measure_from_ns=self.measure_from_ns,
            anchor_mono_ns=self.anchor_mono_ns,
            anchor_wall_ns=self.anchor_wall_ns,
            step_done_ns=None if self.step_done_ns is None else self.step_done_ns[mask],
            failed_step=None if self.failed_step is None else self.failed_step[mask],
            step_names=self.step_names,
            step_prev=self.step_prev,
        )

    def measured(self) -> Samples:
        """The rows scheduled inside the measurement window (warm-up dropped)."""
        return self.select(self.intended_ns >= self.measure_from_ns)

    def sorted(self) -> Samples:
        return self.select(np.argsort(self.intended_ns, kind="stable"))

    # -- construction --

    @classmethod
    def concat(cls, parts: list[Samples]) -> Samples:
        if not parts:
            raise ValueError("no samples to concatenate")
        first = parts[0]
        stepped = first.step_done_ns is not None and all(p.step_done_ns is not None for p in parts)
        merged = cls(
            **{name: np.concatenate([getattr(p, name) for p in parts]) for name in _COLUMNS},
            start_ns=first.start_ns,
            measure_from_ns=first.measure_from_ns,
            anchor_mono_ns=first.anchor_mono_ns,
            anchor_wall_ns=first.anchor_wall_ns,
            step_done_ns=np.concatenate([p.step_done_ns for p in parts]) if stepped else None,
            failed_step=np.concatenate([p.failed_step for p in parts]) if stepped else None,
            step_names=first.step_names if stepped else (),
            step_prev=first.step_prev if stepped else (),
        )
        return merged.sorted()

    @classmethod
    def of_parts(
        cls,
        parts: list[dict[str, np.ndarray]],
        clock: SampleClock,
        step_names: tuple[str, ...] = (),
        step_prev: tuple[int, ...] = (),
    ) -> Samples:
        """Chunks of columns (as workers hand them over) merged in intended order."""
        if not parts:
            empty = cls.empty(clock.start_ns, clock.measure_from_ns)
            return replace(empty, anchor_mono_ns=clock.anchor_mono_ns, anchor_wall_ns=clock.anchor_wall_ns)
        stepped = bool(step_names) and all("step_done_ns" in p for p in parts)
        merged = cls(
            **{name: np.concatenate([p[name] for p in parts]).astype(dt, copy=False) for name, dt in _COLUMNS.items()},
            start_ns=clock.start_ns,
            measure_from_ns=clock.measure_from_ns,
            anchor_mono_ns=clock.anchor_mono_ns,
            anchor_wall_ns=clock.anchor_wall_ns,
            step_done_ns=np.concatenate([p["step_done_ns"] for p in parts]) if stepped else None,
            failed_step=np.concatenate([p["failed_step"] for p in parts]) if stepped else None,
            step_names=step_names if stepped else (),
            step_prev=step_prev if stepped else (),
        )
        return merged.sorted()

    @property
    def clock(self) -> SampleClock:
        return SampleClock(self.start_ns, self.measure_from_ns, self.anchor_mono_ns, self.anchor_wall_ns)

    @classmethod
    def empty(cls, start_ns: int = 0, measure_from_ns: int = 0) -> Samples:
        columns: dict[str, Any] = {name: np.zeros(0, dtype=dt) for name, dt in _COLUMNS.items()}
        return cls(
            **columns,
            start_ns=start_ns,
            measure_from_ns=measure_from_ns,
            anchor_mono_ns=0,
            anchor_wall_ns=0,
        )


COLUMN_DTYPES = dict(_COLUMNS)
