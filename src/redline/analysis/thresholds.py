"""`--threshold` gates: parse `METRIC OP VALUE[UNIT]` and judge it on a result (pure).

Every figure is read from the stored result (the run's window, the probe at N, the search
outcome), so a gate judged later from run.json gives the same answer as the live one.
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable, Iterable

from redline.model.capacity import CapacityResult, ProbeResult
from redline.model.run import RunResult
from redline.model.summary import RunSummary
from redline.model.thresholds import Op, Threshold, ThresholdCheck, ThresholdReport


class ThresholdError(ValueError):
    """An expression that is not a threshold; the message names it."""


_OPS: dict[str, Callable[[float, float], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "==": operator.eq,
}
# summary keys: avg is the mean, as k6 spells it
_LATENCY = {"p50": "p50", "p90": "p90", "p95": "p95", "p99": "p99", "p99.9": "p99.9", "max": "max", "avg": "mean"}
# schedule lag is stored as the generator's health records it (load.health): no p95, no mean
_LAG = ("p50", "p90", "p99", "p99.9", "max")
_TIME_UNITS = {"": 1.0, "ms": 1.0, "s": 1000.0, "us": 0.001, "µs": 0.001}
_RATE_UNITS = ("", "/s", "rps")

_EXPR = re.compile(
    r"^\s*(?P<metric>[a-z_][a-z0-9_]*(?:\.[0-9]+)?)\s*(?P<op><=|>=|==|<|>)\s*"
    r"(?P<value>[0-9]*\.?[0-9]+(?:e[+-]?[0-9]+)?)\s*(?P<unit>[a-zµ%/]*)\s*$",
    re.IGNORECASE,
)


def metric_names() -> tuple[str, ...]:
    lat = tuple(_LATENCY)
    return (
        lat
        + tuple(f"service_{k}" for k in lat)
        + ("errors", "error_count", "achieved", "n")
        + tuple(f"lag_{k}" for k in _LAG)
    )


def _kind(metric: str) -> str | None:
    if metric in _LATENCY or (metric.startswith("service_") and metric[8:] in _LATENCY):
        return "ms"
    if metric.startswith("lag_") and metric[4:] in _LAG:
        return "ms"
    return {"errors": "ratio", "error_count": "count", "achieved": "/s", "n": "/s"}.get(metric)


def parse_threshold(text: str) -> Threshold:
    m = _EXPR.match(text)
    if m is None:
        raise ThresholdError(f"bad threshold {text!r}: expected METRIC OP VALUE[UNIT], e.g. p99<250ms or errors<0.1%")
    metric, op, unit = m["metric"].lower(), m["op"], m["unit"].lower()
    value = float(m["value"])
    kind = _kind(metric)
    if kind is None:
        raise ThresholdError(f"bad threshold {text!r}: unknown metric {metric!r} (known: {', '.join(metric_names())})")
    if kind == "ms":
        if unit not in _TIME_UNITS:
            raise ThresholdError(f"bad threshold {text!r}: {metric} takes ms, s or us, not {unit!r}")
        value *= _TIME_UNITS[unit]
    elif kind == "ratio":
        if unit == "%":
            value /= 100.0
        elif unit:
            raise ThresholdError(f"bad threshold {text!r}: errors is a ratio: write 0.1% or 0.001, not {unit!r}")
        if value > 1.0:
            raise ThresholdError(f"bad threshold {text!r}: an error ratio is at most 100% (1.0)")
    elif kind == "/s":
        if unit not in _RATE_UNITS:
            raise ThresholdError(f"bad threshold {text!r}: {metric} is a rate: write {metric}>=500 or 500/s")
    else:
        if unit or not value.is_integer():
            raise ThresholdError(f"bad threshold {text!r}: error_count is a whole number of requests")
    return Threshold(expression=text.strip(), metric=metric, op=_op(op), value=value, unit=kind)


def _op(text: str) -> Op:
    for op in ("<", "<=", ">", ">=", "=="):
        if text == op:
            return op
    raise ThresholdError(f"bad operator {text!r}")  # unreachable: the pattern only matches these


def parse_thresholds(texts: Iterable[str], command: str = "run") -> tuple[Threshold, ...]:
    """Each --threshold, each one split at commas; `n` only where there is an N (capacity)."""
    out = []
    for text in texts:
        for part in text.split(","):
            if not part.strip():
                raise ThresholdError(f"bad threshold {text!r}: an empty expression between commas")
            t = parse_threshold(part)
            if t.metric == "n" and command != "capacity":
                raise ThresholdError(
                    f"bad threshold {part.strip()!r}: n is the capacity search's result; {command} has none"
                )
            out.append(t)
    return tuple(out)


def format_value(value: float, unit: str) -> str:
    """A figure or a limit in its metric's unit, as the reasons and the report show it."""
    if unit == "ms":
        return f"{value:,.2f} ms" if value >= 0.1 or value == 0 else f"{value * 1000:,.1f} µs"
    if unit == "ratio":
        return f"{value:.3%}"
    if unit == "/s":
        return f"{value:,.1f}/s"
    return f"{value:,.0f}"


def _figure(t: Threshold, s: RunSummary, lag_ms: dict[str, float]) -> tuple[float | None, int | None, str]:
    """The measured value, how many requests it comes from, and what those requests are."""
    m = t.metric
    if m == "errors":
        return s.error_ratio, s.scheduled, "requests"
    if m == "error_count":
        return float(s.errors), s.scheduled, "requests"
    if m == "achieved":
        return s.achieved_rps, s.outcomes.get("ok", 0), "successful responses"
    if m.startswith("lag_"):
        return lag_ms.get(_LATENCY[m[4:]]), s.scheduled, "requests (dispatch − intended send time)"
    if m.startswith("service_"):
        return s.service_ms.get(_LATENCY[m[8:]]), s.responses, "responses (from actual send)"
    return s.latency_ms.get(_LATENCY[m]), s.responses, "responses (from intended send time)"


def _judge(t: Threshold, measured: float | None, source: str, samples: int | None, window_s: float | None,
           what: str, missing: str) -> ThresholdCheck:  # fmt: skip
    if measured is None or not math.isfinite(measured):
        return ThresholdCheck(t, False, None, source, samples, window_s, f"{t.expression}: not measured — {missing}")
    ok = _OPS[t.op](measured, t.value)
    counted = f" over {samples:,} {what}" if samples is not None else ""
    reason = f"{t.metric} = {format_value(measured, t.unit)}{counted} of {source}; {t.expression}: {'passed' if ok else 'BROKEN'}"
    return ThresholdCheck(t, ok, measured, source, samples, window_s, reason)


def evaluate_run(thresholds: Iterable[Threshold], result: RunResult) -> ThresholdReport:
    s, h = result.summary, result.health
    checks = []
    for t in thresholds:
        if s is None:
            checks.append(
                _judge(t, None, "the run", None, None, "", f"the run ended {result.status} without a summary")
            )
            continue
        value, n, what = _figure(t, s, h.lag_ms if h else {})
        source = f"the run window ({s.window_s:g} s)"
        checks.append(_judge(t, value, source, n, s.window_s, what, f"no {what.split(' (')[0]} in {source}"))
    return ThresholdReport(tuple(checks))


def _probe_source(p: ProbeResult) -> str:
    trial = "full-length confirmation" if p.full else f"{p.phase} trial"
    return f"probe {p.index + 1} at N = {p.rate:g}/s ({trial}, {p.summary.window_s:g} s)"


def evaluate_capacity(thresholds: Iterable[Threshold], result: CapacityResult) -> ThresholdReport:
    """`n` from the search outcome, every other figure from the stable probe at N. Without N
    (never stable, inconclusive, cut short) each check fails and says why."""
    o = result.outcome
    no_n = f"the search found no N ({o.state}: {o.reason})" if o else "the search recorded no outcome"
    at_n = result.probe_at_n()
    checks = []
    for t in thresholds:
        if t.metric == "n":
            n = o.n if o else None
            source = f"the search outcome ({o.state})" if o else "the search"
            checks.append(_judge(t, n, source, None, None, "", no_n))
        elif at_n is None:
            checks.append(_judge(t, None, "the probe at N", None, None, "", no_n))
        else:
            value, count, what = _figure(t, at_n.summary, at_n.health.lag_ms)
            source = _probe_source(at_n)
            checks.append(_judge(t, value, source, count, at_n.summary.window_s, what, f"no {what} in {source}"))
    return ThresholdReport(tuple(checks))
