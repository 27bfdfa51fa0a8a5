"""Summary figures of one run's measurement window (pure: Samples in, numbers out)."""

from __future__ import annotations

import numpy as np

from redline.model.samples import NOT_SET, UNSENT_REASONS, RequestOutcome, Samples
from redline.model.summary import RunSummary, StepSummary, Unsent

PERCENTILES = (50, 90, 95, 99, 99.9)


def latency_percentiles_ms(values_ns: np.ndarray) -> dict[str, float]:
    if values_ns.size == 0:
        return {}
    qs = np.percentile(values_ns, PERCENTILES) / 1e6
    out = {f"p{p:g}": round(float(q), 4) for p, q in zip(PERCENTILES, qs)}
    out["mean"] = round(float(values_ns.mean()) / 1e6, 4)
    out["max"] = round(float(values_ns.max()) / 1e6, 4)
    return out


def summarize(samples: Samples, window_s: float, offered_rate: float, start_ns: int | None = None) -> RunSummary:
    """Figures over the measurement window.

    - offered_rps: rows scheduled in the window / window length;
    - achieved_rps: successful responses *completed* inside the window / window length
      (by completion time, so an overloaded target shows its real throughput);
    - latency (from intended send time) and service time (from actual send), over rows
      scheduled in the window that got a response;
    - outcomes: every row of the window is counted exactly once.

    start_ns moves the window's start (default: the end of the warm-up), e.g. to describe
    the warm-up of a probe stopped before its window began.
    """
    start = samples.measure_from_ns if start_ns is None else start_ns
    end = start + int(window_s * 1e9)
    # Rows scheduled inside the window (a probe stopped early has a shorter one).
    m = samples.select((samples.intended_ns >= start) & (samples.intended_ns < end))
    done_in_window = (samples.done_ns >= start) & (samples.done_ns < end)
    ok_done = int(np.count_nonzero(done_in_window & samples.ok))
    all_done = int(np.count_nonzero(done_in_window & samples.completed))
    completed = m.completed
    counts = np.bincount(m.outcome.astype(np.int64), minlength=len(RequestOutcome))
    outcomes = {o.name.lower(): int(counts[o]) for o in RequestOutcome if counts[o]}
    errors = int(np.count_nonzero(m.errors))
    unsent = {o.name.lower(): Unsent(int(counts[o]), UNSENT_REASONS[o]) for o in UNSENT_REASONS if counts[o]}
    statuses = np.unique(m.status[completed], return_counts=True)
    per_s = 1.0 / window_s if window_s > 0 else 0.0  # a run stopped before its window began
    return RunSummary(
        window_s=window_s,
        scheduled=len(m),
        offered_rps=round(len(m) * per_s, 3),
        planned_rps=offered_rate,
        achieved_rps=round(ok_done * per_s, 3),
        responses_rps=round(all_done * per_s, 3),
        responses=int(np.count_nonzero(completed)),
        errors=errors,
        error_ratio=round(errors / len(m), 6) if len(m) else 0.0,
        outcomes=outcomes,
        unsent=unsent,
        status_codes={str(int(s)): int(c) for s, c in zip(*statuses)},
        latency_ms=latency_percentiles_ms(m.latency_ns[completed]),
        service_ms=latency_percentiles_ms(m.service_ns[completed]),
        bytes_in=int(m.bytes_in.sum()),
        steps=step_summaries(m),
    )


def step_summaries(samples: Samples) -> tuple[StepSummary, ...]:
    """Per-step figures of the iterations in `samples` (empty for single requests)."""
    done, failed = samples.step_done_ns, samples.failed_step
    if done is None or failed is None or not samples.step_names:
        return ()
    out = []
    for slot, (name, prev) in enumerate(zip(samples.step_names, samples.step_prev)):
        passed = done[:, slot] != NOT_SET
        errors = int(np.count_nonzero(failed == slot))
        start = samples.intended_ns if prev < 0 else done[:, prev]
        latency = done[passed, slot] - start[passed]
        p50, p99 = (np.percentile(latency, [50, 99]) / 1e6).tolist() if latency.size else (None, None)
        out.append(
            StepSummary(
                name=name,
                count=int(np.count_nonzero(passed)) + errors,
                errors=errors,
                p50=None if p50 is None else round(p50, 4),
                p99=None if p99 is None else round(p99, 4),
            )
        )
    return tuple(out)


def warmup_summary(samples: Samples, stopped_at_ns: int, offered_rate: float) -> RunSummary | None:
    """Figures of a run stopped during its warm-up (its window is empty), from its start
    to the stop, so that it is not shown as having achieved nothing. None otherwise."""
    if not stopped_at_ns or stopped_at_ns > samples.measure_from_ns or not len(samples):
        return None
    window = max(0.0, (stopped_at_ns - samples.start_ns) / 1e9)
    return summarize(samples, window, offered_rate, start_ns=samples.start_ns)
