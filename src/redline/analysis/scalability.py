"""Scalability fits: the Universal Scalability Law and Amdahl's law, with bootstrap intervals.

Pure functions over (N, throughput) points. For a storm of N instances, throughput is
N / T(N), where T(N) is the time until the last instance answered SSH; relative capacity
C(N) = X(N) / X(1). USL: C(N) = N / (1 + σ(N − 1) + κ N (N − 1)), σ contention (the serial
fraction), κ coherency (crosstalk). Amdahl's law is the USL with κ = 0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Interval:
    value: float
    low: float
    high: float

    def to_dict(self) -> dict:
        return {"value": self.value, "low": self.low, "high": self.high}


@dataclass(frozen=True)
class ScaleFit:
    model: str  # "usl" or "amdahl"
    lam: float  # throughput of one (instances per second)
    sigma: Interval
    kappa: Interval | None
    peak_n: float | None  # N of the highest throughput (USL with κ > 0)
    rmse: float

    def predict(self, n: np.ndarray) -> np.ndarray:
        return usl(np.asarray(n, float), self.lam, self.sigma.value, self.kappa.value if self.kappa else 0.0)

    def to_dict(self) -> dict:
        return {"model": self.model, "lambda": self.lam, "sigma": self.sigma.to_dict(),
                "kappa": self.kappa.to_dict() if self.kappa else None, "peak_n": self.peak_n, "rmse": self.rmse}  # fmt: skip


def usl(n: np.ndarray, lam: float, sigma: float, kappa: float) -> np.ndarray:
    return lam * n / (1 + sigma * (n - 1) + kappa * n * (n - 1))


def _fit(n: np.ndarray, x: np.ndarray, with_kappa: bool) -> tuple[float, float, float]:
    from scipy.optimize import least_squares

    lam0 = float(x[n == n.min()].mean() / n.min())

    def resid(p):
        lam, sigma = p[0], p[1]
        kappa = p[2] if with_kappa else 0.0
        return (usl(n, lam, sigma, kappa) - x) / max(float(np.abs(x).max()), 1e-12)

    p0 = [lam0, 0.1, 0.01] if with_kappa else [lam0, 0.1]
    lo = [1e-12, 0.0, 0.0] if with_kappa else [1e-12, 0.0]
    hi = [np.inf, 1.0, 1.0] if with_kappa else [np.inf, 1.0]
    r = least_squares(resid, p0, bounds=(lo, hi))
    return float(r.x[0]), float(r.x[1]), float(r.x[2]) if with_kappa else 0.0


def fit(n, x, model: str = "usl", boot: int = 400, seed: int = 1) -> ScaleFit:
    """Fit `model` to throughputs `x` at sizes `n`; 95% intervals by residual bootstrap."""
    n = np.asarray(n, float)
    x = np.asarray(x, float)
    if n.shape != x.shape or n.size < 3 or len(set(n.tolist())) < 3:
        raise ValueError("a scalability fit needs at least three distinct sizes")
    if not (np.all(n >= 1) and np.all(x > 0)):
        raise ValueError("sizes must be ≥ 1 and throughputs positive")
    with_kappa = model == "usl"
    lam, sigma, kappa = _fit(n, x, with_kappa)
    pred = usl(n, lam, sigma, kappa)
    res = x - pred
    rng = np.random.default_rng(seed)
    sig_b, kap_b = [], []
    for _ in range(boot):
        xb = pred + rng.choice(res, size=res.size, replace=True)
        if np.any(xb <= 0):
            continue
        _, s, k = _fit(n, xb, with_kappa)
        sig_b.append(s)
        kap_b.append(k)

    def iv(v, b):
        if len(b) < 10:
            return Interval(v, float("nan"), float("nan"))
        lo, hi = np.percentile(b, [2.5, 97.5])
        return Interval(v, float(min(lo, v)), float(max(hi, v)))

    peak = math.sqrt((1 - sigma) / kappa) if with_kappa and kappa > 0 and sigma < 1 else None
    return ScaleFit(model, lam, iv(sigma, sig_b), iv(kappa, kap_b) if with_kappa else None, peak,
                    float(np.sqrt(np.mean(res**2))))  # fmt: skip


def sentences(n, t) -> list[str]:
    """Plain statements such as "16 instances took 11.2× as long as 1 (ideal 1×)"."""
    n = np.asarray(n, float)
    t = np.asarray(t, float)
    base = t[np.argmin(n)]
    n0 = int(n.min())
    out = []
    for k, tk in zip(n, t):
        if k == n0:
            continue
        out.append(f"{int(k)} instances took {tk / base:.1f}× as long as {n0} (ideal 1×; fully serial {k / n0:.0f}×)")
    return out
