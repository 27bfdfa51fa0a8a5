"""Scalability fits: the Universal Scalability Law and Amdahl's law, with bootstrap intervals.

Pure functions over (N, throughput) points. For a storm of N instances, throughput is
X(N) = N / T(N), T(N) the time from the first request to the last SSH login. USL (Gunther):

    X(N) = λ N / (1 + σ (N − 1) + κ N (N − 1))

σ is contention (the serialised share of the work: queueing on a lock, a single-threaded
service), κ coherency (crosstalk: every pair of workers pays to agree, so throughput falls
past N* = √((1 − σ) / κ)). Amdahl's law is the USL with κ = 0; its σ is the serial fraction.

Errors are taken as multiplicative (storm times vary by a share of their size, not by a
fixed number of seconds), so fits minimise log(x / fit). 95% intervals come from a
parametric bootstrap: new data sets are drawn around the fitted curve with log-normal
noise whose scale is itself drawn from its χ² distribution given the residuals' degrees
of freedom. With few points (1,2,4,8 leaves the USL one degree of freedom) the scale is
barely known and the intervals are wide — as they should be; a plain residual bootstrap
would give narrow intervals that miss the truth most of the time (see the tests). With as
many parameters as points there is no interval at all.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike

from redline.model.storm import Interval, ScaleFit, usl

__all__ = ["BOOT", "Interval", "ScaleFit", "fit", "sentences", "slowdowns", "usl"]

BOOT = 400
MIN_BOOT = 50  # fewer usable resamples than this: no interval


def _start(n: np.ndarray, x: np.ndarray, with_kappa: bool) -> list[float]:
    """A starting point from the linearised law: n·λ/x − 1 = σ(n − 1) + κ n(n − 1), λ from the smallest n."""
    lam = float(np.clip(np.mean(x[n == n.min()]) / n.min(), 1e-9, 1e9))
    y = n * lam / x - 1
    cols = [n - 1, n * (n - 1)] if with_kappa else [n - 1]
    coef, *_ = np.linalg.lstsq(np.column_stack(cols), y, rcond=None)
    coef = np.clip(coef, 1e-6, 0.99)
    return [lam, *map(float, coef)]


def _fit(n: np.ndarray, x: np.ndarray, with_kappa: bool) -> tuple[float, float, float]:
    from scipy.optimize import least_squares

    def resid(p: np.ndarray) -> np.ndarray:
        log_ratio: np.ndarray = np.log(usl(n, p[0], p[1], p[2] if with_kappa else 0.0) / x)
        return log_ratio

    p0 = _start(n, x, with_kappa)
    lo = [1e-12, 0.0, 0.0][: len(p0)]
    hi = [np.inf, 1.0, 1.0][: len(p0)]
    r = least_squares(resid, p0, bounds=(lo, hi), x_scale=[p0[0], 0.1, 0.01][: len(p0)])
    return float(r.x[0]), float(r.x[1]), float(r.x[2]) if with_kappa else 0.0


def fit(n: ArrayLike, x: ArrayLike, model: str = "usl", boot: int = BOOT, seed: int = 1) -> ScaleFit:
    """Fit `model` ("usl" or "amdahl") to throughputs `x` at sizes `n` (sizes may repeat)."""
    n = np.asarray(n, float)
    x = np.asarray(x, float)
    if model not in ("usl", "amdahl"):
        raise ValueError(f"unknown model {model!r}")
    if n.shape != x.shape or n.ndim != 1 or len(set(n.tolist())) < 3:
        raise ValueError("a scalability fit needs at least three distinct sizes")
    if not (np.all(n >= 1) and np.all(np.isfinite(x)) and np.all(x > 0)):
        raise ValueError("sizes must be ≥ 1 and throughputs positive")
    with_kappa = model == "usl"
    n_par = 3 if with_kappa else 2
    lam, sigma, kappa = _fit(n, x, with_kappa)
    pred = usl(n, lam, sigma, kappa)
    logres = np.log(x / pred)
    dof = n.size - n_par
    rss = float(np.sum(logres**2))
    method = "parametric" if dof >= 1 else "none"  # none: the curve passes through every point
    rng = np.random.default_rng(seed)
    draws: list[tuple[float, float]] = []
    for _ in range(boot if method != "none" else 0):
        # The noise scale is uncertain with few degrees of freedom: draw it, then the noise.
        # Capped at e² ≈ 7× per point: beyond that σ and κ are unbounded anyway, and the fit stays finite.
        scale = min(2.0, math.sqrt(max(rss, 1e-18) / max(rng.chisquare(dof), 1e-12)))
        xb = pred * np.exp(scale * rng.standard_normal(n.size))
        _, s, k = _fit(n, xb, with_kappa)
        draws.append((s, k))
    b = np.array(draws).reshape(-1, 2)

    def iv(v: float, col: np.ndarray) -> Interval:
        if col.size < MIN_BOOT:
            return Interval(v, float("nan"), float("nan"))
        lo, hi = np.percentile(col, [2.5, 97.5])
        return Interval(v, float(min(lo, v)), float(max(hi, v)))

    if with_kappa and kappa > 0 and sigma < 1:
        peak_n: float | None = math.sqrt((1 - sigma) / kappa)
        peak_x: float | None = float(usl(np.array([peak_n]), lam, sigma, kappa)[0])
    else:
        peak_n = None
        peak_x = lam / sigma if sigma > 0 else None
    return ScaleFit(model, lam, iv(sigma, b[:, 0]), iv(kappa, b[:, 1]) if with_kappa else None, peak_n, peak_x,
                    float(np.sqrt(np.mean(logres**2))), dof, method, len(draws))  # fmt: skip


def slowdowns(n: ArrayLike, t: ArrayLike) -> list[tuple[int, float]]:
    """(N, median T(N) / median T(smallest N)) for each larger size."""
    n = np.asarray(n, float)
    t = np.asarray(t, float)
    n0 = n.min()
    base = float(np.median(t[n == n0]))
    return [(int(s), float(np.median(t[n == s])) / base) for s in np.unique(n) if s != n0]


def sentences(n: ArrayLike, t: ArrayLike) -> list[str]:
    """Plain statements such as "16 instances took 11.2× as long as 1 (ideal 1×; fully serial 16×)"."""
    n0 = int(np.min(np.asarray(n, float)))
    unit = "instance" if n0 == 1 else "instances"
    return [
        f"{k} instances took {r:.1f}× as long as {n0} {unit} (ideal 1×; fully serial {k / n0:.0f}×)"
        for k, r in slowdowns(n, t)
    ]
