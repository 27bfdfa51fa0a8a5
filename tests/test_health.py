"""Generator health decided by whether the schedule was kept (load/health.py), on
synthetic dispatch records whose lag and CPU are known by construction."""

from __future__ import annotations

import numpy as np

from redline.load.health import assess
from redline.model.health import WorkerStats
from redline.model.samples import NOT_SET

N = 10_000


def _worker(cpu_share: float, cap_hits: int = 0) -> WorkerStats:
    return WorkerStats(0, 1, (0,), cpu_s=cpu_share * 10, wall_s=10, cap_hits=cap_hits, connects=8,
                       connect_failures=0, retries=0, end_reason="completed")  # fmt: skip


def _assess(lag_ns: np.ndarray, service_ns: float, cpu_share: float = 0.3, cap_hits: int = 0):
    intended = np.arange(N, dtype=np.int64) * 100_000
    dispatched = intended + lag_ns
    done = dispatched + int(service_ns)
    timeline = {"in_flight": np.array([3]), "backlog": np.array([0])}
    return assess(intended, dispatched, dispatched, [_worker(cpu_share, cap_hits)], [timeline], 1000, done)


def _lag(late_share: float, late_ns: int, on_time_ns: int = 20_000) -> np.ndarray:
    lag = np.full(N, on_time_ns, dtype=np.int64)
    lag[: int(N * late_share)] = late_ns
    return np.random.default_rng(1).permutation(lag)


def test_a_busy_worker_that_keeps_the_schedule_is_not_the_limit():
    h = _assess(_lag(0.0, 0), service_ns=2e6, cpu_share=0.97)
    assert not h.generator_bound and not h.reasons
    assert any("97% of a core, near its limit (yet kept the schedule)" in n for n in h.notes), h.notes
    assert h.lag_ms["p99"] == 0.02


def test_a_schedule_not_kept_is_the_generators_limit_whatever_its_cpu():
    h = _assess(_lag(0.20, 30_000_000), service_ns=2e6, cpu_share=0.40)
    assert h.generator_bound
    assert "20.0% of requests were dispatched more than 1 ms late (p99 schedule lag 30.0 ms)" in h.reasons[0]
    assert h.late_share == 0.2


def test_lag_small_next_to_the_answers_is_noted_not_judged():
    # 12 % late by 8 ms on answers of 250 ms: the study's Keystone cells at 3.5–5/s
    h = _assess(_lag(0.12, 8_000_000), service_ns=250e6)
    assert not h.generator_bound, h.reasons
    assert any("too little to change a verdict" in n for n in h.notes), h.notes
    # the same lag on 2 ms answers is the generator's own figure
    assert _assess(_lag(0.12, 8_000_000), service_ns=2e6).generator_bound


def test_each_threshold_alone_is_not_enough():
    # many late, by little (p99 2 ms): kept, noted
    few_ms = _assess(_lag(0.30, 2_000_000), service_ns=2e6)
    assert not few_ms.generator_bound and any("the schedule was kept" in n for n in few_ms.notes)
    # few late, by a lot (3 % at 50 ms): kept
    rare = _assess(_lag(0.03, 50_000_000), service_ns=2e6)
    assert not rare.generator_bound
    # just above both limits: bound
    assert _assess(_lag(0.06, 6_000_000), service_ns=2e6).generator_bound


def test_connection_cap_hits_are_noted_and_unsent_rows_ignored():
    lag = _lag(0.0, 0)
    h = _assess(lag, service_ns=2e6, cap_hits=42)
    assert not h.generator_bound and any("connection cap (1000) was reached 42 times" in n for n in h.notes)
    intended = np.arange(N, dtype=np.int64) * 100_000
    dispatched = np.where(np.arange(N) % 2 == 0, intended + 10_000, NOT_SET)
    timeline = {"in_flight": np.array([1]), "backlog": np.array([5])}
    h2 = assess(intended, dispatched, dispatched, [_worker(0.2)], [timeline], 1000, np.full(N, NOT_SET))
    assert not h2.generator_bound and h2.lag_ms["p99"] == 0.01 and h2.backlog_max == 5
