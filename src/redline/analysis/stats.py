"""Statistics shared by the verdicts: time windows, robust trends, in-flight counts.

Everything is vectorised over NumPy columns (a probe can hold millions of rows) and
free of I/O. Times are seconds as float64 unless a name ends in `_ns`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

_MAX_INT64 = np.iinfo(np.int64).max
MAX_AUTOCORR = 0.5


@dataclass(frozen=True)
class Windows:
    """Per-window figures of one probe, windows laid out by *intended* send time.

    Open loop: a request belongs to the window in which it was scheduled, so a queue that
    builds up shows as later windows holding slower requests, not as fewer requests.

    t_s:       window centres, seconds since the measurement window started.
    offered:   rows scheduled in the window.
    completed: rows that got a response (any status).
    errors:    rows that ended in an error (HTTP >= 400 or transport).
    p50_s, p99_s: latency percentiles of the completed rows, NaN for an empty window.
    """

    width_s: float
    t_s: np.ndarray
    offered: np.ndarray
    completed: np.ndarray
    errors: np.ndarray
    p50_s: np.ndarray
    p99_s: np.ndarray

    def __len__(self) -> int:
        return int(self.t_s.shape[0])


def window_index(t_s: np.ndarray, start_s: float, width_s: float, n: int) -> np.ndarray:
    """Window number of each time; rows past the last full window join the last one.

    Folding the ragged tail into the last window avoids a final window with a handful of
    rows whose percentiles would be pure noise.
    """
    idx = np.floor((t_s - start_s) / width_s).astype(np.int64)
    return np.clip(idx, 0, n - 1)


def grouped_quantiles(groups: np.ndarray, values: np.ndarray, n_groups: int, qs: tuple[float, ...]) -> np.ndarray:
    """Quantiles of `values` within each group, as a (len(qs), n_groups) array.

    Same interpolation as `np.percentile(..., method="linear")`; NaN for empty groups.
    One sort for all groups instead of one `np.percentile` call per window.
    """
    out = np.full((len(qs), n_groups), np.nan)
    if values.size == 0:
        return out
    order = np.lexsort((values, groups))
    v = values[order].astype(np.float64)
    counts = np.bincount(groups, minlength=n_groups)
    starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
    has = counts > 0
    for i, q in enumerate(qs):
        pos = q * (counts[has] - 1)
        lo = np.floor(pos).astype(np.int64)
        hi = np.ceil(pos).astype(np.int64)
        base = starts[has]
        out[i, has] = v[base + lo] + (v[base + hi] - v[base + lo]) * (pos - lo)
    return out


def make_windows(
    t_s: np.ndarray,
    latency_s: np.ndarray,
    completed: np.ndarray,
    errors: np.ndarray,
    width_s: float,
    span_s: float,
) -> Windows:
    """Cut [0, span_s) into windows of `width_s` and summarise each.

    `t_s` is the intended time of every row (seconds from the window start), `latency_s`
    is read only where `completed` is true.
    """
    n = max(1, math.floor(span_s / width_s + 1e-9))
    idx = window_index(t_s, 0.0, width_s, n)
    offered = np.bincount(idx, minlength=n)
    done = np.bincount(idx[completed], minlength=n)
    errs = np.bincount(idx[errors], minlength=n)
    q = grouped_quantiles(idx[completed], latency_s[completed], n, (0.5, 0.99))
    centres = (np.arange(n) + 0.5) * width_s
    return Windows(width_s, centres, offered, done, errs, q[0], q[1])


@dataclass(frozen=True)
class Trend:
    """A robust trend of a series: Theil–Sen slope and a Mann–Kendall test.

    slope, intercept: Theil–Sen (median of pairwise slopes), per unit of x.
    slope_lo, slope_hi: its 95 % confidence interval.
    tau: Kendall's tau between x and y (the Mann–Kendall statistic, normalised).
    p_increasing: one-sided p-value of "y increases with x", after the variance
        correction for autocorrelation (see `mann_kendall`).
    autocorr: lag-1 autocorrelation of the detrended series used for that correction.
    n: points used (NaNs dropped).
    """

    slope: float
    intercept: float
    slope_lo: float
    slope_hi: float
    tau: float
    p_increasing: float
    autocorr: float
    n: int

    def rise(self, x0: float, x1: float) -> float:
        """How much the fitted line climbs between x0 and x1."""
        return self.slope * (x1 - x0)


def mann_kendall(y: np.ndarray, residuals: np.ndarray | None = None) -> tuple[float, float, float]:
    """One-sided Mann–Kendall test of an increasing trend in y (in x order).

    Returns (tau, p_increasing, r1). The variance of S is inflated for serial
    correlation (Yue & Wang 2004, AR(1) form): near capacity a queue's windows are not
    independent — a random walk of the backlog lasts several windows — and the plain
    test reads such a wander as a trend. r1 is the lag-1 autocorrelation of the
    detrended series (`residuals`), so a genuine trend does not count as correlation.
    """
    y = np.asarray(y, dtype=np.float64)
    n = y.size
    diff = np.sign(y[None, :] - y[:, None])
    s = float(np.triu(diff, 1).sum())
    _, ties = np.unique(y, return_counts=True)
    var = (n * (n - 1) * (2 * n + 5) - float(np.sum(ties * (ties - 1) * (2 * ties + 5)))) / 18.0
    pairs = n * (n - 1) / 2
    tau = s / pairs if pairs else 0.0
    r1 = 0.0
    if residuals is not None and n >= 10:
        r = residuals - residuals.mean()
        denom = float(np.dot(r, r))
        r1 = float(np.dot(r[:-1], r[1:]) / denom) if denom > 0 else 0.0
    # Capped: a queue drifting under overload is itself a random walk (r1 near 1), and the
    # uncapped AR(1) factor (~n) would then hide the very trend we look for. With 0.5 the
    # variance at most triples; on simulated M/M/1 probes this kept 30 s trials at 95 %
    # load clean while still catching 5 % overload (docs/verdicts.md).
    r1 = min(r1, MAX_AUTOCORR)
    if r1 > 0:
        k = np.arange(1, n)
        var *= 1 + 2 * float(np.sum((1 - k / n) * r1**k))
    if var <= 0:
        return tau, 1.0, r1
    z = (s - np.sign(s)) / math.sqrt(var)  # continuity correction
    from scipy import stats as _sps  # ~0.8 s to import: only when a trend is tested

    return tau, float(_sps.norm.sf(z)), r1


def trend(x: np.ndarray, y: np.ndarray) -> Trend | None:
    """Theil–Sen + Mann–Kendall over the finite points; None with fewer than 3 points.

    Why these two: window percentiles have heavy tails (one stalled request moves a p99
    window a lot), and both statistics depend on ranks and medians, so a few wild windows
    neither tilt the line nor fake a significant trend.
    """
    keep = np.isfinite(x) & np.isfinite(y)
    x, y = np.asarray(x, dtype=np.float64)[keep], np.asarray(y, dtype=np.float64)[keep]
    if x.size < 3 or np.ptp(x) == 0:
        return None
    order = np.argsort(x, kind="stable")
    x, y = x[order], y[order]
    from scipy import stats as _sps

    slope, intercept, lo, hi = _sps.theilslopes(y, x, alpha=0.95)
    if np.ptp(y) == 0:  # a constant series cannot be rising: no evidence at all
        return Trend(float(slope), float(intercept), float(lo), float(hi), 0.0, 1.0, 0.0, int(x.size))
    tau, p_inc, r1 = mann_kendall(y, y - (slope * x + intercept))
    return Trend(float(slope), float(intercept), float(lo), float(hi), tau, p_inc, r1, int(x.size))


def linear_fit(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Ordinary least squares y = a·x + b (the study's model); (nan, nan) if undefined."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if x.size < 2:
        return math.nan, math.nan
    xm, ym = x.mean(), y.mean()
    dx = x - xm
    sxx = float(np.dot(dx, dx))
    if sxx == 0.0:
        return math.nan, math.nan
    a = float(np.dot(dx, y - ym)) / sxx
    return a, float(ym - a * xm)


def in_flight(instants_ns: np.ndarray, intended_ns: np.ndarray, done_ns: np.ndarray) -> np.ndarray:
    """How many requests were outstanding at each instant: intended <= t < done.

    Counted from the schedule, not the socket: in an open loop a request is "in the
    system" from its intended time, including time queued inside the generator, which is
    the population Little's law relates to latency. Rows with no done time (never
    finished) stay in flight for ever; pass done_ns < 0 for them.
    """
    starts = np.sort(intended_ns)
    ends = np.sort(np.where(done_ns < 0, _MAX_INT64, done_ns))
    arrived = np.searchsorted(starts, instants_ns, side="right")
    left = np.searchsorted(ends, instants_ns, side="right")
    return (arrived - left).astype(np.int64)


def finite_or_none(value: float | int | None, digits: int = 6) -> float | int | None:
    """A JSON-safe number: NaN and infinities become None, floats are rounded."""
    if value is None:
        return None
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return int(value)
    f = float(value)
    if not math.isfinite(f):
        return None
    return round(f, digits)
