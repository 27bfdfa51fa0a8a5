"""USL / Amdahl fits recover known parameters; bad input is refused."""

from __future__ import annotations

import numpy as np
import pytest

from redline.analysis.scalability import fit, sentences, usl
from redline.cli.scale import parse_counts
from redline.errors import UserError


def test_usl_fit_recovers_sigma_and_kappa_with_intervals():
    n = np.array([1, 2, 4, 8, 16, 32], float)
    noise = np.array([0.01, -0.01, 0.015, -0.01, 0.005, -0.005])
    x = usl(n, 2.0, 0.05, 0.002) * (1 + noise)
    f = fit(n, x, "usl")
    assert f.sigma.low <= 0.05 <= f.sigma.high and abs(f.sigma.value - 0.05) < 0.02
    assert f.kappa is not None and f.kappa.low <= 0.002 <= f.kappa.high
    assert f.peak_n == pytest.approx(np.sqrt((1 - f.sigma.value) / f.kappa.value))
    assert 15 < f.peak_n < 30


def test_amdahl_is_usl_without_kappa():
    n = np.array([1, 2, 4, 8], float)
    f = fit(n, usl(n, 1.0, 0.2, 0.0), "amdahl")
    assert f.kappa is None and f.peak_n is None
    assert f.sigma.value == pytest.approx(0.2, abs=1e-4) and f.rmse < 1e-6


def test_fully_serial_work_has_sigma_one():
    n = np.array([1, 2, 4, 8], float)
    f = fit(n, np.ones(4), "amdahl")  # N at once takes N times as long: throughput flat
    assert f.sigma.value == pytest.approx(1.0, abs=1e-3)
    assert sentences(n, n)[-1].startswith("8 instances took 8.0× as long as 1")


@pytest.mark.parametrize("bad", [([1, 2], [1, 2]), ([1, 1, 1], [1, 1, 1]), ([1, 2, 4], [1, 0, 1])])
def test_fit_refuses_too_few_or_bad_points(bad):
    with pytest.raises(ValueError):
        fit(*bad)


def test_parse_counts():
    assert parse_counts("8,1,2,4,2") == [1, 2, 4, 8]
    for bad in ("1,2", "a,b,c", "0,1,2", "1,2,500"):
        with pytest.raises(UserError):
            parse_counts(bad)
