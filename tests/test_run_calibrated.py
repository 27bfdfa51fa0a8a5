"""`redline run` against the real calibrated target (the issue's Done-when figures)."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest

from conftest import GEN_CPUS, run_redline
from redline.analysis import hdr
from redline.load.schedule import Schedule
from redline.model.samples import NOT_SET, UNSENT_REASONS, RequestOutcome, Samples
from redline.store import RunFolder

pytestmark = pytest.mark.slow


def _run(url: str, tmp_path: Path, *args: str, timeout: float = 120) -> tuple[dict, Samples]:
    proc = run_redline(
        "run", "--url", url, "--cpus", ",".join(map(str, GEN_CPUS)), "--results", str(tmp_path), "--json", *args,
        timeout=timeout,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    run_dir = Path(out["run_dir"])
    doc = json.loads((run_dir / "run.json").read_text())
    assert doc["schema_version"] == 1 and doc["status"] == "complete"
    assert doc["host"]["logical_cpus"] and doc["tool"]["name"] == "redline"
    return doc, RunFolder.open(run_dir).read_samples()


def doc_dir(results: Path) -> Path:
    """The one run folder under `results`."""
    (folder,) = [p for p in results.iterdir() if (p / "run.json").is_file()]
    return folder


def test_half_capacity_is_served_on_time(calibrated, tmp_path):
    lab = calibrated(servers=4, service_ms=10)
    doc, samples = _run(lab.url + "/", tmp_path, "--rate", "200", "--duration", "20")
    s = doc["summary"]
    assert abs(s["achieved_rps"] - 200) <= 2.0, s  # within 1 %
    assert abs(s["latency_ms"]["p50"] - 10.0) <= 1.0, s  # within 10 %
    assert s["errors"] == 0 and s["outcomes"] == {"ok": 4000}
    assert len(samples) == 4000 and np.all(samples.outcome == RequestOutcome.OK)
    assert np.all(samples.status == 200)
    assert not doc["health"]["generator_bound"]
    # latency counts from the intended send time: it is never below the service time
    assert np.all(samples.latency_ns >= samples.service_ns)
    # the dispatch slack is recorded, and what it costs is measured as lag, never hidden
    assert doc["plan"]["dispatch_slack_us"] == 100
    send_lag = samples.lag_ns[samples.sent_ns != NOT_SET]
    h = doc["health"]
    assert h["send_lag_ms"]["p99"] == pytest.approx(np.percentile(send_lag, 99) / 1e6, abs=1e-3)
    assert 0 <= h["schedule_lag_ms"]["p99"] <= h["send_lag_ms"]["p99"] < 5  # dispatch comes before the send
    # the workers' HDR histograms hold the same window as the summary
    hist = RunFolder.open(Path(doc_dir(tmp_path))).read_histograms()
    merged = hdr.merged_encoded(hist.latency_us)
    assert merged.get_total_count() == 4000
    for p in ("p50", "p99"):
        assert hdr.percentiles_ms(merged)[p] == pytest.approx(s["latency_ms"][p], rel=0.01, abs=0.01), p


def test_a_run_longer_than_its_workers_ring_keeps_every_row_in_order(calibrated, tmp_path):
    # 1 s timeouts: the worker holds ~5.5 s of rows (rate × (connect + read timeout + 3.5 s)),
    # so 12 s at 300/s (3/4 of the target's 400/s) goes round its ring twice; parts every 5 s.
    lab = calibrated(servers=4, service_ms=10)
    args = ("--rate", "300", "--duration", "12", "--timeout", "1", "--connect-timeout", "1", "--workers", "1")
    doc, samples = _run(lab.url + "/", tmp_path, *args)
    assert len(samples) == 3600 == doc["summary"]["scheduled"]
    expected = Schedule(rate=300, duration_s=12).offsets_ns() + samples.start_ns
    assert np.array_equal(samples.intended_ns, expected)  # every row once, none overwritten
    assert np.all(samples.outcome == RequestOutcome.OK) and np.all(samples.latency_ns >= samples.service_ns)
    assert abs(doc["summary"]["latency_ms"]["p50"] - 10.0) <= 1.0
    parts = sorted((doc_dir(tmp_path) / "samples").glob("w*.npz"))
    assert len(parts) >= 2, parts
    assert doc["files"]["samples"] == "samples"


def test_overload_latency_grows_and_every_request_is_accounted_for(calibrated, tmp_path):
    lab = calibrated(servers=4, service_ms=10)
    doc, samples = _run(lab.url + "/", tmp_path, "--rate", "800", "--duration", "20", "--timeout", "5", timeout=180)
    s = doc["summary"]
    assert len(samples) == 16000 == s["scheduled"]
    assert sum(s["outcomes"].values()) == 16000  # done, error or not sent: each row exactly once
    assert abs(s["achieved_rps"] - 400) < 20  # the target's capacity, not the offered rate
    unsent = samples.unsent
    assert unsent.any()
    for kind, info in s["unsent"].items():
        assert info["reason"] == UNSENT_REASONS[RequestOutcome[kind.upper()]]
    done = samples.completed
    t = samples.t_seconds()[done]
    lat = samples.latency_ns[done] / 1e6
    # Offered twice the capacity, the target's queue grows by 400 requests a second, so a
    # request scheduled at t waits about t seconds.
    early = np.median(lat[t < 1])
    late = np.median(lat[(t > 8) & (t < 12)])
    assert early < 1000 and late > 8 * early, (early, late)
    # grows through the run: windowed medians rise from window to window
    medians = [np.median(lat[(t >= a) & (t < a + 2)]) for a in range(0, 12, 2)]
    assert all(b > a for a, b in itertools.pairwise(medians)), medians
