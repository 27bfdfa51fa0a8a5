"""Degradation verdicts on synthetic probes whose truth is known by construction."""

from __future__ import annotations

import json

import numpy as np
import pytest

from redline.analysis.degradation import (
    EarlyStopConfig,
    GeneratorFlags,
    PaperCriterion,
    RobustCriterion,
    early_stop,
    judge,
)
from redline.analysis.stats import grouped_quantiles, in_flight, linear_fit, trend
from redline.model.samples import NOT_SET, RequestOutcome, Samples

START = 1_000_000_000_000  # an arbitrary monotonic origin, far from 0
NS = 1_000_000_000


def probe(
    latency_s: np.ndarray,
    rate: float,
    warmup_s: float = 2.0,
    outcome: np.ndarray | None = None,
    status: np.ndarray | None = None,
    intended_s: np.ndarray | None = None,
) -> Samples:
    """Samples with one row per latency, scheduled at `rate` from START (or at intended_s)."""
    n = len(latency_s)
    t = np.arange(n) / rate if intended_s is None else intended_s
    intended = START + (t * NS).astype(np.int64)
    outcome = np.zeros(n, np.int8) if outcome is None else outcome.astype(np.int8)
    unsent = outcome >= RequestOutcome.UNSENT_BACKLOG
    done = np.where(unsent, NOT_SET, intended + (np.asarray(latency_s) * NS).astype(np.int64))
    if status is None:
        status = np.where(outcome == RequestOutcome.OK, 200, 0)
    return Samples(
        intended_ns=intended,
        sent_ns=np.where(unsent, NOT_SET, intended),
        done_ns=done,
        status=status.astype(np.int16),
        outcome=outcome,
        bytes_in=np.full(n, 100, np.int32),
        worker=np.zeros(n, np.int16),
        start_ns=START,
        measure_from_ns=START + int(warmup_s * NS),
        anchor_mono_ns=START,
        anchor_wall_ns=0,
    )


def fifo_queue(rate: float, capacity: float, seconds: float, seed: int, exp_service: bool = True, poisson: bool = True):
    """One FIFO server fed open-loop: Lindley's recursion gives each request's latency."""
    rng = np.random.default_rng(seed)
    n = int(rate * seconds)
    gaps = rng.exponential(1 / rate, n) if poisson else np.full(n, 1 / rate)
    arrivals = np.cumsum(gaps) - gaps[0]
    service = rng.exponential(1 / capacity, n) if exp_service else np.full(n, 1 / capacity)
    done = np.empty(n)
    free = 0.0
    for i in range(n):  # a test helper, not the hot path
        free = max(free, arrivals[i]) + service[i]
        done[i] = free
    return arrivals, done - arrivals


def check_json(verdict) -> None:
    json.dumps(verdict.to_json(), allow_nan=False)


# -- stats helpers ----------------------------------------------------------------------


def test_grouped_quantiles_match_numpy():
    rng = np.random.default_rng(1)
    groups = rng.integers(0, 7, 1000)
    values = rng.exponential(1.0, 1000)
    q = grouped_quantiles(groups, values, 8, (0.5, 0.99))
    for g in range(7):
        assert q[0, g] == pytest.approx(np.percentile(values[groups == g], 50))
        assert q[1, g] == pytest.approx(np.percentile(values[groups == g], 99))
    assert np.isnan(q[:, 7]).all()  # an empty group


def test_in_flight_counts_open_requests():
    intended = np.array([0, 10, 20, 30])
    done = np.array([15, 25, -1, 31])
    assert in_flight(np.array([5, 12, 22, 30, 40]), intended, done).tolist() == [1, 2, 2, 2, 1]


def test_trend_and_fit():
    x = np.arange(20.0)
    tr = trend(x, 2 * x + 1)
    assert tr.slope == pytest.approx(2) and tr.p_increasing < 1e-6
    flat = trend(x, np.ones(20))
    assert flat.slope == 0 and flat.p_increasing == 1.0
    assert linear_fit(x, 3 * x - 2) == pytest.approx((3, -2))


# -- robust -----------------------------------------------------------------------------


def test_flat_latency_is_stable():
    rng = np.random.default_rng(2)
    lat = 0.010 + rng.normal(0, 0.0005, 200 * 22)
    v = judge(probe(lat, 200), 200)
    assert v.state == "stable", v.reasons
    assert v.criterion == "robust"
    assert v.figures["checks"] == {
        "errors": "pass",
        "completion": "pass",
        "trend_p50": "pass",
        "trend_p99": "pass",
        "backlog": "pass",
        "throughput": "pass",
    }
    check_json(v)


def test_a_slow_target_too_slow_for_a_trend_is_judged_by_its_throughput():
    # Keystone without a cache: ~0.29 s of CPU per token, so ~3.4/s; offered 4.86/s for a
    # 2 + 12 s probe, too few requests for a latency trend. Every request is answered in
    # the end, so only what arrived inside the window shows the target fell behind.
    arrivals, lat = fifo_queue(4.86, 3.4, 14, seed=1, exp_service=False, poisson=False)
    v = judge(probe(lat, 4.86, intended_s=arrivals), 4.86)
    assert v.figures["checks"]["trend_p50"] == "not tested"
    assert v.state == "degraded", v.reasons
    assert any("fell behind" in r for r in v.reasons)
    assert v.figures["throughput_ratio"] < 0.8
    check_json(v)
    # The same target offered less than it can serve: stable, and the check says why.
    arrivals, lat = fifo_queue(3.0, 3.4, 14, seed=1, exp_service=False, poisson=False)
    v = judge(probe(lat, 3.0, intended_s=arrivals), 3.0)
    assert v.state == "stable", v.reasons
    assert v.figures["checks"]["throughput"] == "pass"


@pytest.mark.parametrize("latency_s", [0.01, 4.0])
def test_throughput_holds_whatever_the_latency_when_the_target_keeps_up(latency_s):
    # A steady 4 s answer (a long but constant queue) is not a throughput deficit: answers
    # to the warm-up's requests arrive in the window as the window's last ones go out.
    rng = np.random.default_rng(3)
    rate, seconds = 50, 2 + 12
    lat = latency_s + rng.normal(0, latency_s / 50, int(rate * seconds))
    v = judge(probe(lat, rate), rate)
    assert v.figures["checks"]["throughput"] == "pass", v.reasons
    assert 0.97 <= v.figures["throughput_ratio"] <= 1.03


def test_rising_latency_is_degraded():
    t = np.arange(200 * 22) / 200
    lat = 0.010 + 0.002 * np.clip(t - 2, 0, None)  # +2 ms per second: 10 → 50 ms
    v = judge(probe(lat, 200), 200)
    assert v.state == "degraded"
    assert v.figures["checks"]["trend_p50"] == "fail"
    assert v.figures["trend"]["p50"]["slope_ms_per_s"] == pytest.approx(2.0, rel=0.05)
    assert "p50 latency trend" in v.reasons[0]
    check_json(v)


def test_small_rise_within_limit_is_stable():
    # +20 % over the window: significant, but under the default +50 % limit.
    t = np.arange(200 * 22) / 200
    lat = 0.010 * (1 + 0.2 * np.clip(t - 2, 0, None) / 20)
    v = judge(probe(lat, 200), 200, criterion=RobustCriterion(trend_min_rise_ms=0.1))
    assert v.state == "stable", v.reasons
    stricter = judge(probe(lat, 200), 200, criterion=RobustCriterion(trend_max_rise=0.1, trend_min_rise_ms=0.1))
    assert stricter.state == "degraded"


def test_errors_are_degraded_and_named():
    n = 200 * 12
    outcome = np.zeros(n, np.int8)
    status = np.full(n, 200)
    outcome[[900, 1500, 2000]] = RequestOutcome.HTTP
    status[[900, 1500, 2000]] = 503
    outcome[1800] = RequestOutcome.TIMEOUT
    status[1800] = 0
    v = judge(probe(np.full(n, 0.01), 200, outcome=outcome, status=status), 200)
    assert v.state == "degraded"
    assert v.figures["errors_by_kind"] == {"http 503": 3, "timeout": 1}
    assert "http 503 ×3" in v.reasons[0] and "timeout ×1" in v.reasons[0]
    # The same errors under a tolerated ratio of 1 %: 4 / 2000 measured is 0.2 %.
    tolerant = judge(
        probe(np.full(n, 0.01), 200, outcome=outcome, status=status),
        200,
        criterion=RobustCriterion(max_error_ratio=0.01),
    )
    assert tolerant.state == "stable", tolerant.reasons


def test_errors_during_warmup_do_not_count():
    n = 200 * 12
    outcome = np.zeros(n, np.int8)
    outcome[10] = RequestOutcome.RESET  # at 0.05 s, inside the 2 s warm-up
    v = judge(probe(np.full(n, 0.01), 200, outcome=outcome), 200)
    assert v.state == "stable", v.reasons


def test_unsent_backlog_counts_against_completion_interrupted_does_not():
    n = 200 * 12
    lat = np.full(n, 0.01)
    backlog = np.zeros(n, np.int8)
    backlog[-60:] = RequestOutcome.UNSENT_BACKLOG  # 3 % of the window never sent
    v = judge(probe(lat, 200, outcome=backlog), 200)
    assert v.state == "degraded"
    assert v.figures["checks"]["completion"] == "fail"
    assert v.figures["unsent_backlog"] == 60

    interrupted = np.zeros(n, np.int8)
    interrupted[-600:] = RequestOutcome.UNSENT_INTERRUPTED  # the run was stopped 3 s early
    v = judge(probe(lat, 200, outcome=interrupted), 200)
    assert v.state == "stable", v.reasons
    assert v.figures["requests"] == n - 400 - 600


def test_overloaded_queue_is_degraded():
    # 5 % over capacity: the backlog grows by 5 requests per second, latency with it.
    t, lat = fifo_queue(rate=210, capacity=200, seconds=22, seed=3)
    v = judge(probe(lat, 210, intended_s=t), 210)
    assert v.state == "degraded"
    assert v.figures["checks"]["trend_p50"] == "fail"
    assert v.figures["checks"]["backlog"] == "fail"


def test_backlog_growth_alone_is_degraded():
    # 0.5 % of requests hang for a minute (answered after the run): p99 and completion
    # stay within limits, but the requests in flight pile up — Little's law's signal.
    rate, n = 1000, 1000 * 22
    lat = np.full(n, 0.01)
    lat[::200] = 60.0
    v = judge(probe(lat, rate), rate)
    assert v.state == "degraded", v.reasons
    assert v.figures["checks"]["backlog"] == "fail"
    assert v.figures["checks"]["trend_p99"] == "pass"
    assert v.figures["checks"]["completion"] == "pass"
    assert "requests in flight" in v.reasons[0]


def test_slo_p99():
    lat = np.full(200 * 12, 0.030)
    assert judge(probe(lat, 200), 200, criterion=RobustCriterion(slo_p99_ms=20)).state == "degraded"
    ok = judge(probe(lat, 200), 200, criterion=RobustCriterion(slo_p99_ms=50))
    assert ok.state == "stable" and ok.figures["checks"]["slo"] == "pass"


def test_generator_bound_is_inconclusive_never_degraded():
    t = np.arange(200 * 22) / 200
    lat = 0.010 + 0.01 * t
    health = GeneratorFlags(True, ("worker 0 used 98% of a core",))
    for criterion in (RobustCriterion(), PaperCriterion()):
        v = judge(probe(lat, 200), 200, health=health, criterion=criterion)
        assert v.state == "inconclusive"
        assert any("98% of a core" in r for r in v.reasons)
        assert v.figures["target_state_if_generator_ok"] == "degraded"
        check_json(v)
    assert judge(probe(lat, 200), 200, health=GeneratorFlags(False)).state == "degraded"


@pytest.mark.parametrize("seed", range(8))
def test_exponential_noise_is_not_degraded(seed):
    # iid exponential latencies with a fixed mean: heavy-tailed windows, no trend.
    rng = np.random.default_rng(100 + seed)
    lat = rng.exponential(0.010, 500 * 32)
    v = judge(probe(lat, 500), 500)
    assert v.state == "stable", v.reasons


@pytest.mark.parametrize("seed", range(5))
def test_busy_but_stable_queue_is_not_degraded(seed):
    # M/M/1 at 80 % load: queueing noise, autocorrelated windows, a stable mean.
    t, lat = fifo_queue(rate=400, capacity=500, seconds=32, seed=200 + seed)
    v = judge(probe(lat, 400, intended_s=t), 400)
    assert v.state == "stable", v.reasons


def test_low_rate_widens_windows_and_says_when_trend_is_untested():
    lat = np.full(5 * 12, 0.05)
    v = judge(probe(lat, 5), 5)
    assert v.figures["window_s"] == pytest.approx(2.0)
    assert v.state == "stable"
    assert v.figures["checks"]["trend_p50"] == "not tested"
    assert any("not tested" in r for r in v.reasons)


def test_empty_window_is_inconclusive():
    lat = np.full(100, 0.01)
    v = judge(probe(lat, 100, warmup_s=5), 100)  # every row is in the warm-up
    assert v.state == "inconclusive"


# -- paper ------------------------------------------------------------------------------


@pytest.mark.parametrize("a, expected", [(0.009, "stable"), (0.011, "degraded")])
def test_paper_threshold_in_seconds_per_second(a, expected):
    # latency = a·t + b with t in seconds of the window and latency in seconds.
    rng = np.random.default_rng(4)
    rate, warm = 50, 2.0
    t = np.arange(rate * 62) / rate
    lat = 0.05 + a * np.clip(t - warm, 0, None) + rng.normal(0, 0.002, t.size)
    v = judge(probe(lat, rate, warmup_s=warm), rate, criterion=PaperCriterion())
    assert v.state == expected, v.reasons
    assert v.figures["fit"]["a_s_per_s"] == pytest.approx(a, abs=2e-4)
    check_json(v)


def test_paper_any_error_is_degraded():
    n = 50 * 12
    outcome = np.zeros(n, np.int8)
    outcome[-5] = RequestOutcome.CONNECT
    v = judge(probe(np.full(n, 0.05), 50, outcome=outcome), 50, criterion=PaperCriterion())
    assert v.state == "degraded"
    assert "connect ×1" in v.reasons[0]


def test_paper_flat_exponential_noise_is_stable():
    rng = np.random.default_rng(5)
    lat = rng.exponential(0.05, 100 * 62)
    assert judge(probe(lat, 100), 100, criterion=PaperCriterion()).state == "stable"


# -- early stop -------------------------------------------------------------------------


def _snapshot(samples: Samples, now_ns: int) -> Samples:
    """What a running probe looks like at now_ns: later rows absent, unfinished rows open."""
    s = samples.select(samples.intended_ns <= now_ns)
    open_ = s.done_ns > now_ns
    return Samples(
        intended_ns=s.intended_ns,
        sent_ns=s.sent_ns,
        done_ns=np.where(open_, NOT_SET, s.done_ns),
        status=np.where(open_, 0, s.status).astype(np.int16),
        outcome=np.where(open_, -1, s.outcome).astype(np.int8),
        bytes_in=s.bytes_in,
        worker=s.worker,
        start_ns=s.start_ns,
        measure_from_ns=s.measure_from_ns,
        anchor_mono_ns=s.anchor_mono_ns,
        anchor_wall_ns=s.anchor_wall_ns,
    )


def test_early_stop_on_a_collapsing_queue():
    t, lat = fifo_queue(rate=300, capacity=200, seconds=30, seed=6, exp_service=False, poisson=False)
    full = probe(lat, 300, intended_s=t)
    now = START + 8 * NS
    decision = early_stop(_snapshot(full, now), 300, now)
    assert decision.stop, decision.figures
    assert "still rising" in decision.reasons[0]


def test_no_early_stop_on_a_stable_probe():
    t, lat = fifo_queue(rate=400, capacity=500, seconds=30, seed=7)
    full = probe(lat, 400, intended_s=t)
    for s in (3, 6, 10):
        now = START + s * NS
        decision = early_stop(_snapshot(full, now), 400, now)
        assert not decision.stop, decision.reasons


def test_early_stop_on_errors_is_certain_only_past_the_limit():
    n = 200 * 20
    outcome = np.zeros(n, np.int8)
    outcome[[1000, 1001, 1002]] = RequestOutcome.HTTP
    samples = probe(np.full(n, 0.01), 200, outcome=outcome)
    now = START + 8 * NS
    assert early_stop(_snapshot(samples, now), 200, now).stop  # default: any error degrades
    lenient = RobustCriterion(max_error_ratio=0.01)
    # 3 errors of 3600 planned rows (0.08 %) cannot exceed 1 %: keep going.
    assert not early_stop(_snapshot(samples, now), 200, now, lenient, planned_requests=3600).stop
    assert early_stop(_snapshot(samples, now), 200, now, lenient, planned_requests=200).stop
    assert early_stop(_snapshot(samples, now), 200, now, PaperCriterion()).stop


def test_early_stop_needs_enough_windows():
    t, lat = fifo_queue(rate=300, capacity=200, seconds=10, seed=8, exp_service=False, poisson=False)
    full = probe(lat, 300, intended_s=t)
    now = START + 2 * NS
    assert not early_stop(_snapshot(full, now), 300, now, config=EarlyStopConfig(min_windows=3)).stop


def test_a_target_answering_5xx_is_degraded_even_when_the_generator_was_late():
    n = 200 * 22
    outcome = np.zeros(n, np.int8)
    outcome[::10] = RequestOutcome.HTTP  # 10 % answered 503 by the target itself
    status = np.where(outcome == RequestOutcome.HTTP, 503, 200)
    health = GeneratorFlags(True, ("12% of requests were dispatched more than 1 ms late",))
    v = judge(probe(np.full(n, 0.005), 200, outcome=outcome, status=status), 200, health=health)
    assert v.state == "degraded", v.reasons
    assert "5xx" in v.reasons[0] and v.figures["generator_bound"] is True
    # connection errors are not the target's own answer: a late generator stays inconclusive
    outcome[::10] = RequestOutcome.TIMEOUT
    status = np.where(outcome == RequestOutcome.OK, 200, 0)
    late = judge(probe(np.full(n, 0.005), 200, outcome=outcome, status=status), 200, health=health)
    assert late.state == "inconclusive", late.reasons
