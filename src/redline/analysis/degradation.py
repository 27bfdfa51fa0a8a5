"""Degradation verdicts: did a target sustain one probe's rate, or did it degrade?

A verdict is a pure function of one probe's `Samples`, its offered rate and the
generator's health. Two criteria:

`paper` reproduces the Keystone study (seed 003): any error degrades; otherwise fit
latency = a·t + b by least squares over the measurement window and call it stable iff
a < 0.01. The study gives no units. We read both axes in seconds — latency in seconds,
t in seconds since the window started — so `a` is seconds of latency gained per second
of test, a dimensionless rate. Why:

* In an open loop fed at λ by a server of capacity μ < λ, the backlog grows by λ − μ
  requests per second and each waits 1/μ longer, so latency climbs at (λ − μ)/μ = ρ − 1
  seconds per second. In these units a < 0.01 reads "offered load exceeds capacity by
  less than 1 %", a statement that does not depend on the rate or the service time.
* It makes the study's own numbers consistent: one request/s past N = 37 gives
  a ≈ 1/37 = 0.027 (degraded) and past N = 99 gives a ≈ 0.0101 (just degraded), which
  is how the study could separate N from N+1. Over its 300 s window, a = 0.01 is 3 s of
  latency gained.
* The alternatives fail that test. Per request sequence number (Rally's chart x-axis)
  at 37 req/s the same overload is 0.027/37 ≈ 0.0007 s per request, far under 0.01:
  nothing short of collapse would ever degrade. With latency in milliseconds, 0.01 ms/s
  is 3 ms over five minutes, below what a cache warming up or a growing table moves,
  so the verdict would follow noise and request count rather than the system.

`robust` (the default) looks at 1-second windows (widened at low rates so each holds
enough requests) and degrades on: errors above a ratio (default: any), completed /
offered below 0.99, a significant rising trend of windowed p50 or p99 (Theil–Sen slope,
Mann–Kendall test) large relative to the first windows, a growing in-flight backlog
(Little's law), or a broken p99 SLO. docs/verdicts.md explains each threshold.

A probe during which the generator was the limit is `inconclusive`, never `degraded`:
its latencies include the generator's own delay, so they say nothing about the target.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from redline.analysis.stats import (
    Trend,
    finite_or_none,
    grouped_quantiles,
    in_flight,
    linear_fit,
    make_windows,
    trend,
)
from redline.model.samples import NOT_SET, RequestOutcome, Samples
from redline.model.verdict import State, Verdict

_NS = 1e9


class GeneratorHealthLike(Protocol):
    """What a verdict needs to know about the generator (load.health.GeneratorHealth fits)."""

    @property
    def generator_bound(self) -> bool: ...

    @property
    def reasons(self) -> tuple[str, ...]: ...


@dataclass(frozen=True)
class GeneratorFlags:
    """A minimal generator-health input, for callers (and tests) without the engine's."""

    generator_bound: bool = False
    reasons: tuple[str, ...] = ()


HEALTHY = GeneratorFlags()


@dataclass(frozen=True)
class PaperCriterion:
    """The study's rule (seed 003). `slope_threshold` is in seconds of latency per second.

    unsent_is_failure: requests still queued in the generator at the end never got an
    answer; Rally would have waited for them and seen huge latencies at the end of the
    run, so we count them as failures rather than silently fitting only the answered ones.
    """

    slope_threshold: float = 0.01
    unsent_is_failure: bool = True

    @property
    def name(self) -> str:
        return "paper"


@dataclass(frozen=True)
class RobustCriterion:
    """Thresholds of the default criterion (see docs/verdicts.md for why these values).

    window_s:          window width; widened so a window holds >= min_per_window requests.
    max_error_ratio:   errors / offered above this degrades (0: any error degrades).
    min_completion:    answered / offered below this degrades.
    trend_alpha:       Mann–Kendall one-sided significance for "latency rises".
    trend_max_rise:    fitted rise over the window, as a fraction of the first windows'
                       level, above which a significant trend degrades.
    trend_min_rise_ms: and the rise must exceed this many ms (sub-ms jitter is not a trend).
    baseline_windows:  how many first windows define "the first windows' level".
    min_trend_windows: fewer windows than this: trends are not tested (and said so).
    backlog_max_rise:  fitted in-flight growth over the window, as a fraction of the first
                       windows' level, that degrades when the growth is significant.
    backlog_min_rise:  and the growth must exceed this many requests.
    min_throughput:    answers completed inside the window / requests scheduled in it below
                       this degrades (the queue grew) ...
    throughput_min_deficit: ... when at least this many answers are missing. Unlike the
                       trends it needs no minimum number of windows, so it also judges a
                       slow target whose short probe holds too few requests for a trend.
    slo_p99_ms:        optional: p99 over the window above this degrades.
    """

    window_s: float = 1.0
    min_per_window: int = 10
    max_error_ratio: float = 0.0
    min_completion: float = 0.99
    trend_alpha: float = 0.01
    trend_max_rise: float = 0.5
    trend_min_rise_ms: float = 1.0
    baseline_windows: int = 3
    min_trend_windows: int = 6
    backlog_max_rise: float = 1.0
    backlog_min_rise: float = 5.0
    min_throughput: float = 0.9
    throughput_min_deficit: int = 5
    slo_p99_ms: float | None = None

    @property
    def name(self) -> str:
        return "robust"


Criterion = PaperCriterion | RobustCriterion


def judge(
    samples: Samples,
    offered_rps: float,
    health: GeneratorHealthLike | None = None,
    criterion: Criterion | None = None,
) -> Verdict:
    """Judge one probe. Pass the probe's full samples (warm-up included: it is dropped
    here, but requests from the warm-up still in flight count in the backlog)."""
    criterion = RobustCriterion() if criterion is None else criterion
    if isinstance(criterion, PaperCriterion):
        return paper_verdict(samples, offered_rps, health, criterion)
    return robust_verdict(samples, offered_rps, health, criterion)


# -- the window both criteria look at --------------------------------------------------


@dataclass(frozen=True)
class _Window:
    """The measured rows of a probe, interrupted rows dropped, with derived columns."""

    rows: Samples
    t_s: np.ndarray
    latency_s: np.ndarray
    completed: np.ndarray
    errors: np.ndarray
    span_s: float

    @property
    def n(self) -> int:
        return len(self.rows)


def _window(samples: Samples, offered_rps: float) -> _Window:
    rows = samples.measured()
    # An interrupted run did not offer those requests: they neither pass nor fail.
    rows = rows.select(rows.outcome != RequestOutcome.UNSENT_INTERRUPTED)
    t_s = rows.t_seconds()
    completed = rows.completed
    latency_s = np.where(completed, rows.latency_ns, 0) / _NS
    # The window spans the schedule, one inter-arrival past its last request.
    gap = 1.0 / offered_rps if offered_rps > 0 else 0.0
    span = float(t_s.max()) + gap if t_s.size else 0.0
    return _Window(rows, t_s, latency_s, completed, rows.errors, max(span, 0.0))


def _error_breakdown(rows: Samples, errors: np.ndarray) -> dict[str, int]:
    """Errors by kind, HTTP ones by status ("http 503": 10) so reasons name them."""
    out: Counter[str] = Counter()
    for code, count in zip(*np.unique(rows.outcome[errors], return_counts=True)):
        if int(code) == RequestOutcome.HTTP:
            continue
        out[RequestOutcome(int(code)).name.lower()] += int(count)
    http = rows.outcome == RequestOutcome.HTTP
    for status, count in zip(*np.unique(rows.status[http], return_counts=True)):
        out[f"http {int(status)}"] += int(count)
    return dict(out.most_common())


def _describe_errors(breakdown: dict[str, int]) -> str:
    return ", ".join(f"{kind} ×{count}" for kind, count in breakdown.items())


def _latency_summary_ms(latency_s: np.ndarray) -> dict[str, float | None]:
    if latency_s.size == 0:
        return {}
    q = np.percentile(latency_s, [50, 95, 99]) * 1e3
    return {
        "p50": finite_or_none(q[0], 4),
        "p95": finite_or_none(q[1], 4),
        "p99": finite_or_none(q[2], 4),
        "max": finite_or_none(latency_s.max() * 1e3, 4),
        "mean": finite_or_none(latency_s.mean() * 1e3, 4),
    }


def _generator_bound(
    health: GeneratorHealthLike | None,
    criterion: str,
    target_state: State,
    target_reasons: list[str],
    figures: dict[str, Any],
) -> Verdict | None:
    if health is None or not health.generator_bound:
        return None
    refused = _server_errors(figures)
    if target_state == "degraded" and refused >= max(1, SERVER_ERROR_EVIDENCE * figures.get("requests", 0)):
        # The target itself answered "overloaded": a late generator only offered it less
        # than planned, so that answer stands whatever the generator's state.
        figures["generator_bound"] = True
        reasons = [
            f"the target answered {refused} requests with a 5xx status: degraded although the generator was late"
        ]
        reasons += [f"generator: {r}" for r in health.reasons] + target_reasons
        return Verdict("degraded", criterion, tuple(reasons), figures)
    reasons = ["the load generator was the limit during this probe, so it says nothing about the target"]
    reasons += [f"generator: {r}" for r in health.reasons]
    # Kept for the reader: what the target-side checks saw, without acting on it.
    reasons += [f"(not counted) target checks alone would say {target_state}: {r}" for r in target_reasons]
    figures["generator_bound"] = True
    figures["target_state_if_generator_ok"] = target_state
    return Verdict("inconclusive", criterion, tuple(reasons), figures)


SERVER_ERROR_EVIDENCE = 0.01  # 5xx answers on 1 % of a probe's requests: the target's own verdict


def _server_errors(figures: dict[str, Any]) -> int:
    kinds: dict[str, int] = figures.get("errors_by_kind") or {}
    return sum(n for kind, n in kinds.items() if kind.startswith("http 5"))


def _common_figures(w: _Window, offered_rps: float) -> dict[str, Any]:
    unsent_backlog = int(np.count_nonzero(w.rows.outcome == RequestOutcome.UNSENT_BACKLOG))
    unsent_aborted = int(np.count_nonzero(w.rows.outcome == RequestOutcome.UNSENT_ABORTED))
    n_completed = int(np.count_nonzero(w.completed))
    return {
        "offered_rps": finite_or_none(offered_rps),
        "span_s": finite_or_none(w.span_s, 3),
        "requests": w.n,
        "completed": n_completed,
        "errors": int(np.count_nonzero(w.errors)),
        "errors_by_kind": _error_breakdown(w.rows, w.errors),
        "unsent_backlog": unsent_backlog,
        "unsent_aborted": unsent_aborted,
        "achieved_rps": finite_or_none(n_completed / w.span_s if w.span_s > 0 else math.nan, 3),
        "latency_ms": _latency_summary_ms(w.latency_s[w.completed]),
        "generator_bound": False,
    }


# -- paper ------------------------------------------------------------------------------


def paper_verdict(
    samples: Samples,
    offered_rps: float,
    health: GeneratorHealthLike | None = None,
    criterion: PaperCriterion = PaperCriterion(),
) -> Verdict:
    """The study's rule: any error, or a least-squares slope a >= threshold (s/s)."""
    name = criterion.name
    w = _window(samples, offered_rps)
    figures = _common_figures(w, offered_rps)
    figures["slope_threshold_s_per_s"] = criterion.slope_threshold
    if w.n == 0:
        return Verdict("inconclusive", name, ("no request was scheduled in the measurement window",), figures)

    failures: list[str] = []
    passes: list[str] = []
    n_err = figures["errors"]
    if n_err:
        failures.append(
            f"{n_err} of {w.n} requests failed ({_describe_errors(figures['errors_by_kind'])}); "
            "the study counts any error as degradation"
        )
    else:
        passes.append(f"no errors in {w.n} requests")
    unsent = figures["unsent_backlog"] + figures["unsent_aborted"]
    if unsent and criterion.unsent_is_failure:
        failures.append(
            f"{unsent} of {w.n} requests were never sent (queued in the generator or abandoned "
            "when the run ended); an unanswered request counts as a failure"
        )

    t, lat = w.t_s[w.completed], w.latency_s[w.completed]
    a, b = linear_fit(t, lat)
    figures["fit"] = {"a_s_per_s": finite_or_none(a, 9), "b_s": finite_or_none(b, 9), "points": int(t.size)}
    if math.isnan(a):
        if failures:
            state: State = "degraded"
        else:
            state = "inconclusive"
            failures.append(f"only {t.size} answered request(s): no slope can be fitted")
    else:
        rise_ms = a * w.span_s * 1e3
        fit = (
            f"least-squares latency = a·t + b over {t.size} answers: a = {a:.5f} s/s "
            f"(latency {'+' if rise_ms >= 0 else '−'}{abs(rise_ms):.1f} ms over the {w.span_s:.0f} s window), "
            f"b = {b * 1e3:.1f} ms"
        )
        if a >= criterion.slope_threshold:
            failures.append(f"{fit}; a ≥ {criterion.slope_threshold:g}: response time rises")
        else:
            passes.append(f"{fit}; a < {criterion.slope_threshold:g}")
        state = "degraded" if failures else "stable"

    reasons = failures + passes
    bound = _generator_bound(health, name, state, reasons, figures)
    return bound or Verdict(state, name, tuple(reasons), figures)


# -- robust -----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Check:
    name: str
    passed: bool | None  # None: not tested (too few data), said so in `reason`
    reason: str


def _effective_width(criterion: RobustCriterion, offered_rps: float) -> float:
    # At low rates a 1 s window holds a few requests and its p99 is just its maximum;
    # widening keeps percentiles meaningful while leaving fast probes at 1 s resolution.
    if offered_rps <= 0:
        return criterion.window_s
    return max(criterion.window_s, criterion.min_per_window / offered_rps)


def _baseline(values: np.ndarray, k: int) -> float:
    finite = values[np.isfinite(values)]
    return float(np.median(finite[:k])) if finite.size else math.nan


def _trend_check(
    label: str, t: np.ndarray, y_s: np.ndarray, criterion: RobustCriterion, figures: dict[str, Any]
) -> _Check:
    n_finite = int(np.count_nonzero(np.isfinite(y_s)))
    if n_finite < criterion.min_trend_windows:
        figures[label] = {"tested": False, "windows": n_finite}
        return _Check(
            f"trend_{label}",
            None,
            f"{label} trend not tested: {n_finite} window(s) with answers, "
            f"{criterion.min_trend_windows} needed (the probe is too short at this rate)",
        )
    tr = trend(t, y_s)
    base = _baseline(y_s, criterion.baseline_windows)
    finite_t = t[np.isfinite(y_s)]
    t0, t1 = float(finite_t[0]), float(finite_t[-1])
    assert tr is not None  # n_finite >= min_trend_windows >= 3 distinct centres
    rise = tr.rise(t0, t1)
    limit = max(criterion.trend_max_rise * base, criterion.trend_min_rise_ms / 1e3)
    rel = rise / base if base > 0 else math.inf
    significant = tr.p_increasing < criterion.trend_alpha
    failed = significant and rise > limit
    figures[label] = _trend_figures(tr, base, rise, limit, t0, t1)
    start, end = (tr.intercept + tr.slope * t0) * 1e3, (tr.intercept + tr.slope * t1) * 1e3
    text = (
        f"{label} latency trend {start:.1f} → {end:.1f} ms over {t1 - t0:.0f} s "
        f"(Theil–Sen {tr.slope * 1e3:+.3f} ms/s, {rel:+.0%} of the first windows' {base * 1e3:.1f} ms; "
        f"Mann–Kendall τ = {tr.tau:+.2f}, p = {tr.p_increasing:.2g})"
    )
    if failed:
        return _Check(
            f"trend_{label}",
            False,
            f"{text}: rising, beyond the limit of +{limit * 1e3:.1f} ms "
            f"(+{criterion.trend_max_rise:.0%}, p < {criterion.trend_alpha:g})",
        )
    why = "not significant" if not significant else f"within +{limit * 1e3:.1f} ms"
    return _Check(f"trend_{label}", True, f"{text}: {why}")


def _trend_figures(tr: Trend, base: float, rise: float, limit: float, t0: float, t1: float) -> dict[str, Any]:
    return {
        "tested": True,
        "windows": tr.n,
        "slope_ms_per_s": finite_or_none(tr.slope * 1e3),
        "intercept_ms": finite_or_none(tr.intercept * 1e3),
        "slope_ci_ms_per_s": [finite_or_none(tr.slope_lo * 1e3), finite_or_none(tr.slope_hi * 1e3)],
        "tau": finite_or_none(tr.tau, 4),
        "autocorr": finite_or_none(tr.autocorr, 4),
        "p_increasing": finite_or_none(tr.p_increasing, 8),
        "baseline_ms": finite_or_none(base * 1e3),
        "rise_ms": finite_or_none(rise * 1e3),
        "limit_ms": finite_or_none(limit * 1e3),
        "t0_s": finite_or_none(t0, 3),
        "t1_s": finite_or_none(t1, 3),
    }


def _backlog_series(samples: Samples, measure_from_ns: int, width_s: float, n_windows: int) -> np.ndarray:
    """Time-averaged in-flight count per window, from the schedule and the done times.

    Ten instants per window approximate the time average that Little's law speaks of.
    Warm-up rows take part: a request from the warm-up still waiting is backlog too.
    """
    rows = samples.select(samples.outcome != RequestOutcome.UNSENT_INTERRUPTED)
    per = 10
    offsets = (np.arange(n_windows * per) + 0.5) * (width_s / per)
    instants = measure_from_ns + (offsets * _NS).astype(np.int64)
    done = np.where(rows.done_ns == NOT_SET, -1, rows.done_ns)
    counts = in_flight(instants, rows.intended_ns, done)
    per_window: np.ndarray = counts.reshape(n_windows, per).mean(axis=1)
    return per_window


def _backlog_check(
    samples: Samples,
    w: _Window,
    offered_rps: float,
    width_s: float,
    t: np.ndarray,
    criterion: RobustCriterion,
    figures: dict[str, Any],
) -> _Check:
    level = _backlog_series(samples, samples.measure_from_ns, width_s, len(t))
    lat = w.latency_s[w.completed]
    little = offered_rps * float(lat.mean()) if lat.size else math.nan
    fig: dict[str, Any] = {
        "mean_in_flight": finite_or_none(level.mean(), 3),
        "little_expected": finite_or_none(little, 3),
    }
    figures["backlog"] = fig
    if len(t) < criterion.min_trend_windows:
        fig["tested"] = False
        return _Check("backlog", None, f"backlog trend not tested: {len(t)} window(s)")
    tr = trend(t, level)
    base = _baseline(level, criterion.baseline_windows)
    rise = tr.rise(float(t[0]), float(t[-1])) if tr else 0.0
    # Relative to the measured first level: Little's λ·W is printed as a cross-check,
    # but a few very slow requests inflate W long before the backlog they imply exists.
    limit = max(criterion.backlog_max_rise * base, criterion.backlog_min_rise)
    significant = tr is not None and tr.p_increasing < criterion.trend_alpha
    fig.update(
        tested=True,
        first_level=finite_or_none(base, 3),
        last_level=finite_or_none(level[-1], 3),
        rise=finite_or_none(rise, 3),
        limit=finite_or_none(limit, 3),
        p_increasing=finite_or_none(tr.p_increasing if tr else 1.0, 8),
    )
    text = (
        f"requests in flight {base:.1f} → {level[-1]:.1f} over {t[-1] - t[0]:.0f} s "
        f"(fitted {rise:+.1f}; Little's law expects λ·W = {offered_rps:g}/s × {lat.mean() * 1e3 if lat.size else math.nan:.1f} ms "
        f"= {little:.1f} in a steady state)"
    )
    if significant and rise > limit:
        return _Check("backlog", False, f"{text}: the backlog grows, beyond +{limit:.1f}")
    return _Check("backlog", True, f"{text}: no growing backlog")


def robust_verdict(
    samples: Samples,
    offered_rps: float,
    health: GeneratorHealthLike | None = None,
    criterion: RobustCriterion = RobustCriterion(),
) -> Verdict:
    """The default verdict; see the module docstring and docs/verdicts.md."""
    name = criterion.name
    w = _window(samples, offered_rps)
    figures = _common_figures(w, offered_rps)
    if w.n == 0 or w.span_s <= 0:
        return Verdict("inconclusive", name, ("no request was scheduled in the measurement window",), figures)

    width = _effective_width(criterion, offered_rps)
    win = make_windows(w.t_s, w.latency_s, w.completed, w.errors, width, w.span_s)
    figures["window_s"] = finite_or_none(width, 4)
    figures["windows"] = len(win)
    checks: list[_Check] = []

    # Errors: the ratio over everything offered in the window.
    n_err = figures["errors"]
    ratio = n_err / w.n
    figures["error_ratio"] = finite_or_none(ratio, 6)
    limit_txt = f"limit {criterion.max_error_ratio:.2%}"
    if ratio > criterion.max_error_ratio:
        checks.append(
            _Check(
                "errors",
                False,
                f"{n_err} of {w.n} requests failed ({ratio:.2%}, {limit_txt}): "
                f"{_describe_errors(figures['errors_by_kind'])}",
            )
        )
    else:
        checks.append(_Check("errors", True, f"{n_err} errors in {w.n} requests ({ratio:.2%}, {limit_txt})"))

    # Completion: answered / offered; requests left queued in the generator count against it.
    completion = figures["completed"] / w.n
    figures["completion_ratio"] = finite_or_none(completion, 6)
    unanswered = w.n - figures["completed"]
    detail = (
        f"{figures['completed']} of {w.n} requests answered ({completion:.2%}, limit {criterion.min_completion:.0%})"
    )
    if figures["unsent_backlog"]:
        detail += f"; {figures['unsent_backlog']} never left the generator's queue"
    if completion < criterion.min_completion:
        checks.append(_Check("completion", False, f"{detail}: {unanswered} unanswered"))
    else:
        checks.append(_Check("completion", True, detail))

    trends: dict[str, Any] = {}
    checks.append(_trend_check("p50", win.t_s, win.p50_s, criterion, trends))
    checks.append(_trend_check("p99", win.t_s, win.p99_s, criterion, trends))
    figures["trend"] = trends
    figures["series"] = {
        "t_s": [finite_or_none(v, 3) for v in win.t_s],
        "p50_ms": [finite_or_none(v * 1e3, 4) for v in win.p50_s],
        "p99_ms": [finite_or_none(v * 1e3, 4) for v in win.p99_s],
        "offered": win.offered.tolist(),
        "errors": win.errors.tolist(),
    }
    checks.append(_backlog_check(samples, w, offered_rps, width, win.t_s, criterion, figures))
    checks.append(_throughput_check(samples, w, criterion, figures))

    if criterion.slo_p99_ms is not None:
        p99 = figures["latency_ms"].get("p99")
        figures["slo_p99_ms"] = criterion.slo_p99_ms
        if p99 is None:
            checks.append(_Check("slo", None, "p99 SLO not tested: no answered request"))
        elif p99 > criterion.slo_p99_ms:
            checks.append(
                _Check("slo", False, f"p99 latency {p99:.1f} ms breaks the SLO of {criterion.slo_p99_ms:g} ms")
            )
        else:
            checks.append(
                _Check("slo", True, f"p99 latency {p99:.1f} ms within the SLO of {criterion.slo_p99_ms:g} ms")
            )

    figures["checks"] = {c.name: {True: "pass", False: "fail", None: "not tested"}[c.passed] for c in checks}
    failed = [c.reason for c in checks if c.passed is False]
    others = [c.reason for c in checks if c.passed is not False]
    state: State = "degraded" if failed else "stable"
    reasons = failed + others
    bound = _generator_bound(health, name, state, failed or others, figures)
    return bound or Verdict(state, name, tuple(reasons), figures)


def _throughput_check(samples: Samples, w: _Window, criterion: RobustCriterion, figures: dict[str, Any]) -> _Check:
    """Answers that arrived inside the window against the requests they answer.

    A target that keeps up answers, inside the window, the requests sent one latency
    earlier; a target slower than the offered rate falls behind by λ − μ per second.
    The lag is the latency at the window's start (the median of its first answered
    requests), so a long but steady latency is no deficit. Answers arriving after the
    window (the engine waits for them) are the backlog draining and do not count.
    """
    start = samples.measure_from_ns
    end = start + int(w.span_s * _NS)
    first = w.latency_s[w.completed][:10]
    lag = int(float(np.median(first)) * _NS) if first.size else 0
    live = samples.outcome != RequestOutcome.UNSENT_INTERRUPTED
    due = int(np.count_nonzero(live & (samples.intended_ns >= start - lag) & (samples.intended_ns < end - lag)))
    served = int(np.count_nonzero(samples.completed & (samples.done_ns >= start) & (samples.done_ns < end)))
    ratio = served / due if due else 1.0
    figures["throughput"] = {"served_in_window": served, "due": due, "lag_ms": round(lag / 1e6, 3)}
    figures["throughput_ratio"] = finite_or_none(ratio, 4)
    text = (
        f"{served} answers arrived inside the window for {due} requests due in it "
        f"({served / w.span_s:.4g}/s of {due / w.span_s:.4g}/s, {ratio:.0%}, limit {criterion.min_throughput:.0%})"
    )
    if ratio < criterion.min_throughput and due - served >= criterion.throughput_min_deficit:
        return _Check("throughput", False, f"{text}: the target fell behind, the queue grew")
    return _Check("throughput", True, text)


# -- early stop -------------------------------------------------------------------------


@dataclass(frozen=True)
class EarlyStopConfig:
    """When a running probe is already clearly degraded.

    latency_factor: the latest full window's p50 exceeds this many times the first
                    window's (floored at latency_floor_ms) ...
    min_windows:    ... after at least this many full windows, and p50 is still rising.
    """

    window_s: float = 1.0
    latency_factor: float = 10.0
    latency_floor_ms: float = 1.0
    min_windows: int = 3


@dataclass(frozen=True)
class EarlyStop:
    stop: bool
    reasons: tuple[str, ...]
    figures: dict[str, Any] = field(default_factory=dict)


def early_stop(
    samples: Samples,
    offered_rps: float,
    now_ns: int,
    criterion: Criterion | None = None,
    planned_requests: int | None = None,
    config: EarlyStopConfig = EarlyStopConfig(),
) -> EarlyStop:
    """Say whether a probe still running is already clearly degraded.

    `samples` holds every row scheduled so far (rows still open may have outcome -1 and
    done_ns NOT_SET); `now_ns` is the monotonic time of the snapshot; `planned_requests`
    is how many rows the measurement window will hold in all (rate × duration), which
    makes the error rule exact: once errors / planned exceeds the criterion's limit, the
    final ratio must too. The caller must still check generator health: a starved
    generator also makes latencies climb.
    """
    criterion = RobustCriterion() if criterion is None else criterion
    limit = criterion.max_error_ratio if isinstance(criterion, RobustCriterion) else 0.0
    rows = samples.select((samples.intended_ns <= now_ns) & (samples.outcome != RequestOutcome.UNSENT_INTERRUPTED))
    measured = rows.intended_ns >= rows.measure_from_ns
    n_err = int(np.count_nonzero(rows.errors & measured))
    figures: dict[str, Any] = {"errors": n_err, "error_limit": limit}
    reasons: list[str] = []

    if n_err:
        if planned_requests:
            certain = n_err / planned_requests > limit
        else:
            n_meas = int(np.count_nonzero(measured))
            # Without the plan, stop only when far past the limit and on enough errors.
            certain = limit == 0 or (n_err >= 10 and n_err / max(n_meas, 1) > max(10 * limit, 0.01))
        if certain:
            reasons.append(
                f"{n_err} errors already ({_describe_errors(_error_breakdown(rows, rows.errors & measured))}), "
                f"over the limit of {limit:.2%} whatever the rest of the probe does"
            )

    # Latency, from what finished in each window (by done time): a window of *intended*
    # times is still mostly unanswered at `now`, so its latencies would be censored.
    # A window with nothing finished reads as the age of the oldest open request, which
    # is what a stalled server's next answer will at least cost.
    full = math.floor((now_ns - rows.start_ns) / _NS / config.window_s)
    figures["full_windows"] = full
    finished = (rows.done_ns != NOT_SET) & (rows.done_ns <= now_ns)
    if full >= config.min_windows and np.any(finished):
        t_done = (rows.done_ns[finished] - rows.start_ns) / _NS
        lat = (rows.done_ns[finished] - rows.intended_ns[finished]) / _NS
        keep = t_done < full * config.window_s
        idx = np.floor(t_done[keep] / config.window_s).astype(np.int64)
        p50 = grouped_quantiles(idx, lat[keep], full, (0.5,))[0]
        still_open = ~finished & ~rows.unsent
        oldest = float((now_ns - rows.intended_ns[still_open].min()) / _NS) if np.any(still_open) else 0.0
        if not np.isfinite(p50[-1]):
            p50[-1] = oldest
        first = _baseline(p50, 1)
        ref = max(first, config.latency_floor_ms / 1e3)
        last = float(p50[-1])
        tr = trend((np.arange(full) + 0.5) * config.window_s, p50)
        before = p50[:-1][np.isfinite(p50[:-1])]
        rising = tr is not None and tr.slope > 0 and before.size > 0 and last >= before.max()
        figures.update(
            first_p50_ms=finite_or_none(first * 1e3),
            last_p50_ms=finite_or_none(last * 1e3),
            oldest_open_ms=finite_or_none(oldest * 1e3),
            factor=finite_or_none(last / ref, 3),
            rising=bool(rising),
        )
        if last > config.latency_factor * ref and rising:
            reasons.append(
                f"p50 latency of the requests finished in the latest {config.window_s:g} s is "
                f"{last * 1e3:.1f} ms, {last / ref:.0f}× the first window's {first * 1e3:.1f} ms, "
                "and still rising"
            )
    return EarlyStop(bool(reasons), tuple(reasons), figures)
