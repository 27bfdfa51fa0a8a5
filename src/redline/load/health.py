"""Generator health: was the load generator itself the limit of a run?

Computed in every run from what the workers recorded. The thresholds are deliberately
simple and printed with the verdict, so that a reader can check them against the
figures beside them.
"""

from __future__ import annotations

import numpy as np

from redline.model.health import GeneratorHealth, WorkerStats
from redline.model.samples import NOT_SET

LATE_NS = 1_000_000  # "late": dispatched more than 1 ms after the intended time
LATE_SHARE_LIMIT = 0.05  # more than 5 % late: the schedule was not kept
CPU_SHARE_LIMIT = 0.90  # a worker above 90 % of one core had no headroom left
LAG_P99_LIMIT_MS = 5.0


def percentiles_ms(values_ns: np.ndarray) -> dict[str, float]:
    if values_ns.size == 0:
        return {}
    qs = np.percentile(values_ns, [50, 90, 99, 99.9]) / 1e6
    return {
        "p50": round(float(qs[0]), 4),
        "p90": round(float(qs[1]), 4),
        "p99": round(float(qs[2]), 4),
        "p99.9": round(float(qs[3]), 4),
        "max": round(float(values_ns.max()) / 1e6, 4),
    }


def assess(
    intended_ns: np.ndarray,
    dispatched_ns: np.ndarray,
    sent_ns: np.ndarray,
    workers: list[WorkerStats],
    timelines: list[dict[str, np.ndarray]],
    connection_cap: int,
) -> GeneratorHealth:
    """Judge whether the generator kept its schedule and had CPU to spare."""
    dispatched = dispatched_ns != NOT_SET
    lag = dispatched_ns[dispatched] - intended_ns[dispatched]
    sent = sent_ns != NOT_SET
    send_lag = sent_ns[sent] - intended_ns[sent]
    late_share = float(np.mean(lag > LATE_NS)) if lag.size else 0.0
    lag_ms = percentiles_ms(lag)

    reasons: list[str] = []
    for w in workers:
        if w.cpu_share >= CPU_SHARE_LIMIT:
            reasons.append(
                f"worker {w.index} used {w.cpu_share:.0%} of a core (limit {CPU_SHARE_LIMIT:.0%}): "
                "add workers or CPUs (--workers, --cpus)"
            )
    if late_share > LATE_SHARE_LIMIT and lag_ms.get("p99", 0.0) > LAG_P99_LIMIT_MS:
        reasons.append(
            f"{late_share:.1%} of requests were dispatched more than {LATE_NS / 1e6:g} ms late "
            f"(p99 schedule lag {lag_ms['p99']:.1f} ms): the generator could not keep the schedule"
        )
    cap_hits = sum(w.cap_hits for w in workers)
    notes: list[str] = []
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
        send_lag_ms=percentiles_ms(send_lag),
        late_share=round(late_share, 6),
        workers=tuple(workers),
        cap_hits=cap_hits,
        connection_cap=connection_cap,
        in_flight_max=in_flight_max,
        backlog_max=backlog_max,
        notes=tuple(notes),
        late_threshold_ms=LATE_NS / 1e6,
    )
