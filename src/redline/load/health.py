"""Generator health: was the load generator itself the limit of a run?

Computed in every run from what the workers recorded. The verdict is decided by
evidence that the schedule was not kept — requests dispatched late, by enough and often
enough to distort what was measured — never by the generator's CPU alone: a worker at
95 % of a core that sends every request on time measured the target truthfully, so a busy
CPU is a note ("near its limit"), not a verdict. The thresholds are deliberately simple
and printed with the verdict, so that a reader can check them against the figures beside
them.
"""

from __future__ import annotations

import numpy as np
from hdrh.histogram import HdrHistogram

from redline.analysis import hdr
from redline.model.health import GeneratorHealth, WorkerStats
from redline.model.samples import NOT_SET

LATE_NS = 1_000_000  # "late": dispatched more than 1 ms after the intended time
LATE_SHARE_LIMIT = 0.05  # more than 5 % late ...
LAG_P99_LIMIT_MS = 5.0  # ... with a p99 lag above 5 ms ...
# ... that is also a visible part of what was measured: 8 ms of lag on 250 ms answers
# shifts no verdict, 8 ms on 2 ms answers is the generator's own figure.
LAG_SHARE_OF_LATENCY = 0.10
CPU_NEAR_LIMIT = 0.90  # a worker above 90 % of one core: warned, not judged
NOTE_LATE_SHARE = 0.01  # fewer late than this is not worth a note


class ScheduleKeeping:
    """How well the schedule was kept, gathered chunk by chunk (so a run of any length
    needs a few histograms, not its rows): schedule lag (dispatch − intended) and send
    lag (first byte − intended) of every dispatched row, how many were late, and the time
    from dispatch to done."""

    def __init__(self) -> None:
        self.lag = hdr.new()
        self.send_lag = hdr.new()
        self.dispatch_to_done = hdr.new()
        self.dispatched = 0
        self.late = 0

    def add(self, intended_ns: np.ndarray, dispatched_ns: np.ndarray, sent_ns: np.ndarray, done_ns: np.ndarray) -> None:
        dispatched = dispatched_ns != NOT_SET
        lag = dispatched_ns[dispatched] - intended_ns[dispatched]
        hdr.record_ns(self.lag, lag)
        self.dispatched += int(lag.size)
        self.late += int(np.count_nonzero(lag > LATE_NS))
        sent = sent_ns != NOT_SET
        hdr.record_ns(self.send_lag, sent_ns[sent] - intended_ns[sent])
        both = dispatched & (done_ns != NOT_SET)
        hdr.record_ns(self.dispatch_to_done, done_ns[both] - dispatched_ns[both])

    @property
    def late_share(self) -> float:
        return self.late / self.dispatched if self.dispatched else 0.0


def percentiles_ms(hist: HdrHistogram) -> dict[str, float]:
    return hdr.percentiles_ms(hist, (50, 90, 99, 99.9))


def assess(
    intended_ns: np.ndarray,
    dispatched_ns: np.ndarray,
    sent_ns: np.ndarray,
    workers: list[WorkerStats],
    timelines: list[dict[str, np.ndarray]],
    connection_cap: int,
    done_ns: np.ndarray | None = None,
) -> GeneratorHealth:
    """`judge` on one set of rows held in memory."""
    keeping = ScheduleKeeping()
    keeping.add(intended_ns, dispatched_ns, sent_ns, np.full_like(intended_ns, NOT_SET) if done_ns is None else done_ns)
    return judge(keeping, workers, timelines, connection_cap)


def judge(
    keeping: ScheduleKeeping,
    workers: list[WorkerStats],
    timelines: list[dict[str, np.ndarray]],
    connection_cap: int,
) -> GeneratorHealth:
    """Judge whether the generator kept its schedule; note what came close."""
    late_share = keeping.late_share
    lag_ms = percentiles_ms(keeping.lag)
    lag_p99 = lag_ms.get("p99", 0.0)
    served = keeping.dispatch_to_done
    # The median time from dispatch to done: the part of latency the lag does not include.
    median_latency_ms = served.get_value_at_percentile(50) / 1e3 if served.get_total_count() else None

    reasons: list[str] = []
    notes: list[str] = []
    if late_share > LATE_SHARE_LIMIT and lag_p99 > LAG_P99_LIMIT_MS:
        late = (
            f"{late_share:.1%} of requests were dispatched more than {LATE_NS / 1e6:g} ms late "
            f"(p99 schedule lag {lag_p99:.1f} ms"
        )
        if median_latency_ms is not None and lag_p99 <= LAG_SHARE_OF_LATENCY * median_latency_ms:
            notes.append(
                f"{late}, at most {LAG_SHARE_OF_LATENCY:.0%} of the median {median_latency_ms:.1f} ms "
                "from dispatch to answer): the lag counts in every latency, too little to change a verdict"
            )
        else:
            reasons.append(
                f"{late}): the generator could not keep the schedule: add workers or CPUs (--workers, --cpus)"
            )
    elif late_share > NOTE_LATE_SHARE:
        notes.append(
            f"{late_share:.1%} of requests were dispatched more than {LATE_NS / 1e6:g} ms late "
            f"(p99 schedule lag {lag_p99:.2f} ms): counted in their latency, the schedule was kept"
        )
    for w in workers:
        if w.cpu_share >= CPU_NEAR_LIMIT:
            kept = "and the schedule slipped" if reasons else "yet kept the schedule"
            notes.append(
                f"worker {w.index} used {w.cpu_share:.0%} of a core, near its limit ({kept}): "
                "more load needs more workers or CPUs (--workers, --cpus)"
            )
    cap_hits = sum(w.cap_hits for w in workers)
    if cap_hits:
        notes.append(
            f"the connection cap ({connection_cap}) was reached {cap_hits} times: requests waited "
            "inside the generator for a connection; that wait counts in their latency"
        )
    # Workers sample at their own instants; the sum of their peaks bounds the joint peak.
    in_flight_max = sum(int(t["in_flight"].max()) for t in timelines if t["in_flight"].size)
    backlog_max = sum(int(t["backlog"].max()) for t in timelines if t["backlog"].size)
    return GeneratorHealth(
        generator_bound=bool(reasons),
        reasons=tuple(reasons),
        lag_ms=lag_ms,
        send_lag_ms=percentiles_ms(keeping.send_lag),
        late_share=round(late_share, 6),
        workers=tuple(workers),
        cap_hits=cap_hits,
        connection_cap=connection_cap,
        in_flight_max=in_flight_max,
        backlog_max=backlog_max,
        notes=tuple(notes),
        late_threshold_ms=LATE_NS / 1e6,
    )
