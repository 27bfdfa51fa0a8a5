"""`redline run` options end to end against the real calibrated target (docs/run.md,
docs/lab-calibrated.md): every figure is checked against what the schedule or the queue
implies by hand, from the rows kept in the run folder."""

from __future__ import annotations

import json
import math
import socket
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
import pytest

from conftest import GEN_CPUS, TARGET_CPUS, run_redline
from redline.lab.process import start_calibrated
from redline.load.schedule import Schedule
from redline.model.samples import RequestOutcome, Samples
from redline.store import RunFolder

pytestmark = pytest.mark.slow
GEN = ",".join(map(str, GEN_CPUS))


@pytest.fixture(scope="module")
def lab():
    """One calibrated target for the module: 4 servers × 10 ms, capacity 400/s."""
    with start_calibrated(servers=4, service_ms=10, cpus=TARGET_CPUS) as started:
        yield started


def _run(tmp_path: Path, *args: str, timeout: float = 120) -> tuple[dict, dict, Samples]:
    proc = run_redline(
        "run", "--cpus", GEN, "--results", str(tmp_path), "--json", "--no-profile", *args, timeout=timeout
    )
    assert "Traceback" not in proc.stderr, proc.stderr
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    run_dir = Path(out["run_dir"])
    doc = json.loads((run_dir / "run.json").read_text())
    assert doc["status"] == "complete"
    return out, doc, RunFolder.open(run_dir).read_samples()


def _per_second(t_s: np.ndarray, seconds: int) -> np.ndarray:
    return np.histogram(t_s, bins=seconds, range=(0, seconds))[0]


def test_run_without_url_offers_200_per_s_to_the_embedded_calibrated_target(tmp_path):
    # docs/run.md: without --url, the embedded calibrated target (4 × 10 ms, capacity 400/s)
    # on the last CPU, and 200 requests/s.
    out, doc, samples = _run(tmp_path, "--duration", "5")
    t = out["target"]
    assert t["embedded"] is True and t["kind"] == "calibrated"
    assert (t["servers"], t["service_ms"], t["capacity_rps"]) == (4, 10.0, 400.0)
    if TARGET_CPUS:
        assert t["cpus"] == list(TARGET_CPUS)
    s = doc["summary"]
    assert s["offered_rps"] == pytest.approx(200) and s["scheduled"] == 1000 == len(samples)
    assert s["outcomes"] == {"ok": 1000}
    assert abs(s["achieved_rps"] - 200) <= 2.0, s  # within 1 % of the default rate
    # Half its capacity: no queue, so latency is the calibrated 10 ms service time (+ loopback).
    assert 10.0 <= s["latency_ms"]["p50"] <= 11.0, s
    # The target was redline's for the length of the command: gone once it ended.
    port = urlsplit(t["url"]).port
    with socket.socket() as sock, pytest.raises(ConnectionRefusedError):
        sock.connect(("127.0.0.1", port))


def test_end_rate_ramps_the_offered_and_achieved_rate_linearly(lab, tmp_path):
    # 100 → 300/s over 10 s: N(t) = 100 t + 10 t², 2000 requests; second k holds 110 + 20 k.
    _out, doc, samples = _run(
        tmp_path, "--url", lab.url + "/", "--rate", "100", "--end-rate", "300", "--duration", "10"
    )
    assert len(samples) == 2000 == doc["summary"]["scheduled"]
    assert np.all(samples.outcome == RequestOutcome.OK)
    expected = 110 + 20 * np.arange(10)
    intended = _per_second(samples.t_seconds(), 10)
    assert np.all(np.abs(intended - expected) <= 1), intended
    # What the target answered follows the ramp too (answers land ~10 ms after their send).
    answered = _per_second(samples.t_seconds(samples.done_ns), 10)
    assert np.all(np.abs(answered - expected) <= 0.03 * expected + 3), answered
    assert answered[-1] == pytest.approx(290, abs=10)  # the last second: near the end rate
    assert answered[0] == pytest.approx(110, abs=6)
    # Gaps at the end are 1/300 s, at the start 1/100 s.
    gaps = np.diff(samples.intended_ns) / 1e6
    assert gaps[:10].mean() == pytest.approx(10.0, rel=0.02) and gaps[-10:].mean() == pytest.approx(3.33, rel=0.02)


def test_poisson_arrivals_have_exponential_gaps_as_offered_and_as_sent(lab, tmp_path):
    _out, doc, samples = _run(
        tmp_path, "--url", lab.url + "/", "--rate", "200", "--duration", "10", "--arrival", "poisson", "--seed", "7"
    )
    n = len(samples)
    # A Poisson count of mean 2000 (σ ≈ 45), and exactly the draw `--seed 7` names.
    assert abs(n - 2000) < 180 and n == Schedule(rate=200, duration_s=10, arrival="poisson", seed=7).count()
    assert np.all(samples.outcome == RequestOutcome.OK)
    for column in (samples.intended_ns, np.sort(samples.sent_ns)):
        gaps = np.diff(column) / 1e6
        cv = gaps.std() / gaps.mean()
        assert gaps.mean() == pytest.approx(5.0, rel=0.06), gaps.mean()
        assert abs(cv - 1.0) < 0.1, cv  # an exponential's coefficient of variation is 1 (constant: 0)
        below_median = np.mean(gaps < math.log(2) * 5.0)  # the exponential's median is ln 2 × mean
        assert 0.45 < below_median < 0.55, below_median
    assert abs(doc["summary"]["achieved_rps"] - n / 10) <= 0.01 * n / 10 + 1


def test_two_workers_share_the_schedule_in_turn(lab, tmp_path):
    _out, doc, samples = _run(tmp_path, "--url", lab.url + "/", "--rate", "300", "--duration", "6", "--workers", "2")
    assert len(samples) == 1800 == doc["summary"]["scheduled"]
    # Every row of the offered schedule once, dealt to the two workers in turn.
    assert np.array_equal(samples.intended_ns, Schedule(rate=300, duration_s=6).offsets_ns() + samples.start_ns)
    assert np.array_equal(samples.worker, np.arange(1800) % 2)
    assert np.all(samples.outcome == RequestOutcome.OK)
    assert [w["index"] for w in doc["health"]["workers"]] == [0, 1]
    assert abs(doc["summary"]["achieved_rps"] - 300) <= 3.0, doc["summary"]
    assert 10.0 <= doc["summary"]["latency_ms"]["p50"] <= 11.0


def test_exponential_service_times_have_the_exponentials_median(tmp_path):
    # 40 servers × 10 ms exponential (capacity 4000/s) at 200/s: no request waits for a
    # server, so latency is the service time S·Exp(1) plus the loopback's ~0.3-1 ms:
    # median ln 2 × 10 = 6.93 ms, spread (std) S = 10 ms, mean − median S(1 − ln 2) = 3.07 ms.
    # (A fixed 10 ms service would give p50 ≈ 10 ms and a std under 1 ms.)
    with start_calibrated(servers=40, service_ms=10, distribution="exponential", cpus=TARGET_CPUS) as exp_lab:
        out, doc, samples = _run(tmp_path, "--url", exp_lab.url + "/", "--rate", "200", "--duration", "10")
    assert out["target"]["url"].startswith(exp_lab.url)
    lat = samples.latency_ns[samples.completed] / 1e6
    assert lat.size == 2000 and np.all(samples.outcome == RequestOutcome.OK)
    # Standard errors at n = 2000: median ~0.22 ms, std ~0.3 ms; the overhead only adds (≤ 1.5 ms).
    median = float(np.median(lat))
    assert math.log(2) * 10 - 0.5 <= median <= math.log(2) * 10 + 1.5, median
    assert lat.std() == pytest.approx(10.0, abs=1.0), lat.std()  # a constant overhead does not move these two
    assert lat.mean() - median == pytest.approx(10 * (1 - math.log(2)), abs=0.6), (lat.mean(), median)
    assert doc["summary"]["latency_ms"]["p50"] == pytest.approx(median, rel=0.02, abs=0.05)
