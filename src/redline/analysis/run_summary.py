"""Summary figures of one run's measurement window (pure: Samples in, numbers out)."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from redline.analysis import hdr
from redline.model.samples import ERROR_OUTCOMES, NOT_SET, UNSENT_REASONS, RequestOutcome, SampleClock, Samples
from redline.model.summary import RunSummary, StepSummary, Unsent

PERCENTILES = hdr.PERCENTILES


class _Spread:
    """Percentiles from an HDR histogram (within 0.1 %), exact mean and max."""

    def __init__(self) -> None:
        self.hist = hdr.new()
        self.count = 0
        self.total = 0
        self.max = 0

    def add(self, values_ns: np.ndarray) -> None:
        if values_ns.size:
            hdr.record_ns(self.hist, values_ns)
            self.count += int(values_ns.size)
            self.total += int(values_ns.sum())
            self.max = max(self.max, int(values_ns.max()))

    def figures_ms(self) -> dict[str, float]:
        if not self.count:
            return {}
        out = {k: v for k, v in hdr.percentiles_ms(self.hist, PERCENTILES).items() if k != "max"}
        out["mean"] = round(self.total / self.count / 1e6, 4)
        out["max"] = round(self.max / 1e6, 4)
        return out


class WindowTally:
    """The figures of one measurement window [start, start + window), gathered part by
    part, so that a run of any length is summarised without holding its rows.

    - offered_rps: rows scheduled in the window / window length;
    - achieved_rps: successful responses *completed* inside the window / window length
      (by completion time, so an overloaded target shows its real throughput);
    - latency (from intended send time) and service time (from actual send), over rows
      scheduled in the window that got a response: percentiles from HDR histograms
      (3 significant digits), mean and max exact;
    - outcomes: every row of the window is counted exactly once.
    """

    def __init__(self, start_ns: int, window_s: float, step_names: tuple[str, ...] = ()) -> None:
        self.start = start_ns
        self.end = start_ns + int(window_s * 1e9)
        self.window_s = window_s
        self.scheduled = 0
        self.ok_done = 0
        self.all_done = 0
        self.outcomes = np.zeros(len(RequestOutcome), dtype=np.int64)
        self.statuses: dict[int, int] = {}
        self.bytes_in = 0
        self.latency = _Spread()
        self.service = _Spread()
        self.step_names = step_names
        self.step_prev: tuple[int, ...] = ()
        self.steps = [(_Spread(), [0, 0]) for _ in step_names]  # latency, [count, errors]

    def add(self, samples: Samples) -> None:
        done_in_window = (samples.done_ns >= self.start) & (samples.done_ns < self.end)
        self.ok_done += int(np.count_nonzero(done_in_window & samples.ok))
        self.all_done += int(np.count_nonzero(done_in_window & samples.completed))
        # Rows scheduled inside the window (a probe stopped early has a shorter one).
        m = samples.select((samples.intended_ns >= self.start) & (samples.intended_ns < self.end))
        self.scheduled += len(m)
        self.outcomes += np.bincount(m.outcome.astype(np.int64), minlength=len(RequestOutcome))[: len(RequestOutcome)]
        completed = m.completed
        for status, count in zip(*np.unique(m.status[completed], return_counts=True)):
            self.statuses[int(status)] = self.statuses.get(int(status), 0) + int(count)
        self.bytes_in += int(m.bytes_in.sum())
        self.latency.add(m.latency_ns[completed])
        self.service.add(m.service_ns[completed])
        self._add_steps(m)

    def _add_steps(self, m: Samples) -> None:
        done, failed = m.step_done_ns, m.failed_step
        if done is None or failed is None or not self.step_names:
            return
        self.step_prev = m.step_prev
        for slot, prev in enumerate(m.step_prev):
            passed = done[:, slot] != NOT_SET
            start = m.intended_ns if prev < 0 else done[:, prev]
            spread, counts = self.steps[slot]
            spread.add(done[passed, slot] - start[passed])
            errors = int(np.count_nonzero(failed == slot))
            counts[0] += int(np.count_nonzero(passed)) + errors
            counts[1] += errors

    def summary(self, offered_rate: float) -> RunSummary:
        counts = self.outcomes
        errors = int(sum(counts[o] for o in ERROR_OUTCOMES))
        per_s = 1.0 / self.window_s if self.window_s > 0 else 0.0  # a run stopped before its window began
        n = self.scheduled
        return RunSummary(
            window_s=self.window_s,
            scheduled=n,
            offered_rps=round(n * per_s, 3),
            planned_rps=offered_rate,
            achieved_rps=round(self.ok_done * per_s, 3),
            responses_rps=round(self.all_done * per_s, 3),
            responses=int(counts[RequestOutcome.OK] + counts[RequestOutcome.HTTP]),
            errors=errors,
            error_ratio=round(errors / n, 6) if n else 0.0,
            outcomes={o.name.lower(): int(counts[o]) for o in RequestOutcome if counts[o]},
            unsent={o.name.lower(): Unsent(int(counts[o]), UNSENT_REASONS[o]) for o in UNSENT_REASONS if counts[o]},
            status_codes={str(s): c for s, c in sorted(self.statuses.items())},
            latency_ms=self.latency.figures_ms(),
            service_ms=self.service.figures_ms(),
            bytes_in=self.bytes_in,
            steps=self._step_summaries(),
        )

    def _step_summaries(self) -> tuple[StepSummary, ...]:
        out = []
        for name, (spread, (count, errors)) in zip(self.step_names, self.steps):
            figures = spread.figures_ms()
            out.append(
                StepSummary(name=name, count=count, errors=errors, p50=figures.get("p50"), p99=figures.get("p99"))
            )
        return tuple(out)


def summarize(samples: Samples, window_s: float, offered_rate: float, start_ns: int | None = None) -> RunSummary:
    """Figures over the measurement window of rows held in memory (see WindowTally).

    start_ns moves the window's start (default: the end of the warm-up), e.g. to describe
    the warm-up of a probe stopped before its window began.
    """
    tally = WindowTally(samples.measure_from_ns if start_ns is None else start_ns, window_s, samples.step_names)
    tally.add(samples)
    return tally.summary(offered_rate)


def summarize_parts(parts: Iterable[Samples], clock: SampleClock, window_s: float, offered_rate: float) -> RunSummary:
    """`summarize` over rows read part by part (a long run's folder): one part in memory."""
    tally: WindowTally | None = None
    for part in parts:
        tally = tally or WindowTally(clock.measure_from_ns, window_s, part.step_names)
        tally.add(part)
    return (tally or WindowTally(clock.measure_from_ns, window_s)).summary(offered_rate)


def warmup_summary(samples: Samples, stopped_at_ns: int, offered_rate: float) -> RunSummary | None:
    """Figures of a run stopped during its warm-up (its window is empty), from its start
    to the stop, so that it is not shown as having achieved nothing. None otherwise."""
    if not stopped_at_ns or stopped_at_ns > samples.measure_from_ns or not len(samples):
        return None
    window = max(0.0, (stopped_at_ns - samples.start_ns) / 1e9)
    return summarize(samples, window, offered_rate, start_ns=samples.start_ns)
