"""USL / Amdahl fits recover known parameters from synthetic data; their intervals mean something."""

from __future__ import annotations

import math

import numpy as np
import pytest

from redline.analysis.scalability import ScaleFit, fit, sentences, slowdowns, usl
from redline.cli.scale import parse_counts
from redline.errors import UserError


def noisy(n, lam, sigma, kappa, rel_sd, seed):
    rng = np.random.default_rng(seed)
    n = np.asarray(n, float)
    return usl(n, lam, sigma, kappa) * (1 + rel_sd * rng.standard_normal(n.size))


def test_usl_fit_recovers_sigma_and_kappa_with_intervals():
    n = np.array([1, 2, 4, 8, 16, 32], float)
    f = fit(n, noisy(n, 2.0, 0.05, 0.002, 0.01, seed=3), "usl")
    assert f.boot_method == "parametric" and f.dof == 3 and f.boot_used == 400
    assert abs(f.sigma.value - 0.05) < 0.01 and f.sigma.low <= 0.05 <= f.sigma.high
    assert f.kappa is not None and abs(f.kappa.value - 0.002) < 0.0005 and f.kappa.low <= 0.002 <= f.kappa.high
    assert f.peak_n == pytest.approx(math.sqrt((1 - f.sigma.value) / f.kappa.value))
    assert f.peak_n == pytest.approx(math.sqrt(0.95 / 0.002), rel=0.15)  # 21.8
    assert f.peak_x == pytest.approx(float(f.predict([f.peak_n])[0]))
    assert f.sigma.high - f.sigma.low < 0.05  # 1% noise: a tight interval


def test_contention_and_coherency_are_told_apart():
    n = np.array([1, 2, 3, 4, 6, 8, 12, 16], float)
    only_sigma = fit(n, noisy(n, 1.0, 0.3, 0.0, 0.02, seed=5), "usl")
    assert abs(only_sigma.sigma.value - 0.3) < 0.05 and only_sigma.sigma.low > 0.2
    assert only_sigma.kappa is not None and only_sigma.kappa.low < 1e-3  # no coherency cost found where there is none
    only_kappa = fit(n, noisy(n, 1.0, 0.0, 0.02, 0.02, seed=6), "usl")
    assert only_kappa.sigma.low < 0.02
    assert only_kappa.kappa is not None and only_kappa.kappa.low > 0.01  # clearly not zero
    assert only_kappa.peak_n == pytest.approx(math.sqrt(1 / 0.02), rel=0.2)  # 7.1: throughput falls past it


def test_amdahl_is_usl_without_kappa():
    n = np.array([1, 2, 4, 8], float)
    f = fit(n, usl(n, 1.0, 0.2, 0.0), "amdahl")
    assert f.kappa is None and f.peak_n is None and f.peak_x == pytest.approx(1.0 / 0.2, rel=1e-3)
    assert f.sigma.value == pytest.approx(0.2, abs=1e-4) and f.rel_rmse < 1e-6


def test_fully_serial_work_has_sigma_one_and_linear_slowdown():
    n = np.array([1, 2, 4, 8], float)
    t = n * 3.0  # N at once take N times as long: throughput is flat
    f = fit(n, n / t, "amdahl")
    assert f.sigma.value == pytest.approx(1.0, abs=1e-3)
    assert sentences(n, t)[-1] == "8 instances took 8.0× as long as 1 instance (ideal 1×; fully serial 8×)"
    assert slowdowns([2, 4, 8, 2], [10, 15, 30, 10]) == [(4, 1.5), (8, 3.0)]
    assert sentences([2, 4, 8], [10, 15, 30])[0].endswith("as long as 2 instances (ideal 1×; fully serial 2×)")


@pytest.mark.parametrize("sizes, sigma, kappa", [
    ([1, 2, 4, 8], 0.1, 0.01),  # what `redline scale` runs by default: one degree of freedom left
    ([1, 2, 4, 8, 16] * 3, 0.1, 0.002),  # three storms per size
])  # fmt: skip
def test_intervals_cover_the_truth_in_most_experiments(sizes, sigma, kappa):
    """Over 20 synthetic experiments with 3% noise, the 95% intervals hold the true σ and κ in most."""
    n = np.array(sizes, float)
    hits_s = hits_k = 0
    for seed in range(20):
        f = fit(n, noisy(n, 0.5, sigma, kappa, 0.03, seed=100 + seed), "usl", boot=100, seed=seed)
        assert f.kappa is not None
        hits_s += f.sigma.low <= sigma <= f.sigma.high
        hits_k += f.kappa.low <= kappa <= f.kappa.high
    assert hits_s >= 16 and hits_k >= 16, (hits_s, hits_k)


def test_more_points_give_narrower_intervals():
    few = np.array([1, 2, 4, 8], float)
    many = np.array([1, 2, 4, 8] * 4, float)
    w = [fit(n, noisy(n, 0.5, 0.1, 0.01, 0.03, seed=7), "usl", boot=150).sigma for n in (few, many)]
    assert (w[1].high - w[1].low) < (w[0].high - w[0].low)


def test_as_many_parameters_as_points_gives_no_interval():
    n = np.array([1, 2, 3], float)
    f = fit(n, noisy(n, 1.0, 0.1, 0.01, 0.03, seed=1), "usl")
    assert f.dof == 0 and f.boot_method == "none"
    assert math.isnan(f.sigma.low) and f.to_json()["sigma"]["low"] is None and "[no interval]" in f.sigma.text()
    assert fit(n, noisy(n, 1.0, 0.1, 0.0, 0.03, seed=1), "amdahl").boot_method == "parametric"  # 1 dof left


def test_round_trip_through_json():
    n = np.array([1, 2, 4, 8], float)
    f = fit(n, noisy(n, 1.0, 0.1, 0.01, 0.02, seed=2), "usl", boot=60)
    g = ScaleFit.from_json(f.to_json())
    assert g.sigma.value == f.sigma.value and g.kappa == f.kappa and np.allclose(g.predict(n), f.predict(n))


@pytest.mark.parametrize(
    "bad", [([1, 2], [1, 2]), ([1, 1, 1], [1, 1, 1]), ([1, 2, 4], [1, 0, 1]), ([0, 2, 4], [1, 1, 1])]
)
def test_fit_refuses_too_few_or_bad_points(bad):
    with pytest.raises(ValueError):
        fit(*bad)


def test_parse_counts():
    assert parse_counts("8,1,2,4,2") == [1, 2, 4, 8]
    for bad in ("1,2", "a,b,c", "0,1,2", "1,2,500", ""):
        with pytest.raises(UserError):
            parse_counts(bad)


def test_scale_report_draws_the_fit_over_its_points(tmp_path):
    import json

    from redline.cli.scale import print_scale
    from redline.model import ScaleResult
    from redline.report.scale import write_scale_report

    n = np.array([1, 2, 4, 8], float)
    t = n / noisy(n, 0.2, 0.3, 0.01, 0.02, seed=4)
    pts = [
        {"n": int(k), "round": 0, "t_s": float(v), "throughput_per_s": float(k / v), "run_dir": f"storm-{int(k)}"}
        for k, v in zip(n, t)
    ]
    doc = {"schema_version": 1, "command": "scale", "status": "complete", "plan": {"counts": [1, 2, 4, 8]}, "points": pts,
           "usl": fit(n, n / t, "usl", boot=60).to_json(), "amdahl": fit(n, n / t, "amdahl", boot=60).to_json(),
           "sentences": sentences(n, t)}  # fmt: skip
    (tmp_path / "run.json").write_text(json.dumps(doc))
    page = write_scale_report(tmp_path).read_text()
    assert (tmp_path / "png" / "scale.png").stat().st_size > 10_000
    assert "data:image/png;base64," in page and 'href="storm-8/report.html"' in page
    assert "8 instances took" in page and "σ [95%]" in page and "1 degree(s) of freedom" in page
    print_scale(ScaleResult.from_json(doc))  # the terminal form renders from the same document


def test_scale_bad_input_is_one_line(tmp_path, monkeypatch):
    from tests.conftest import assert_one_line_error, run_redline

    assert "--counts" in assert_one_line_error(run_redline("scale", "--counts", "1,2"))
    assert "--repeat" in assert_one_line_error(run_redline("scale", "--repeat", "0"))
    # openstack: the lab's defaults, or one line saying there is neither the lab nor a cloud
    monkeypatch.delenv("OS_CLOUD", raising=False)
    no_lab = run_redline("scale", "--driver", "openstack", "--state-dir", str(tmp_path))
    assert "redline lab openstack up" in assert_one_line_error(no_lab)
    assert "--driver must be" in assert_one_line_error(run_redline("scale", "--driver", "xen"))
    assert "--memory" in assert_one_line_error(run_redline("scale", "--memory", "1"))
