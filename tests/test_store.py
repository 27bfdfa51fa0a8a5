"""The run-folder store: typed results round-trip through run.json, the schema version is
checked on every read, and damaged parts are named instead of crashing a reader."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from redline.errors import UserError
from redline.model import (
    CapacityResult,
    Evidence,
    Finding,
    GeneratorHealth,
    ProbeResult,
    RunSummary,
    ScaleFit,
    SearchOutcome,
    Severity,
    Verdict,
    WorkerStats,
)
from redline.model.codec import SchemaError, from_json
from redline.model.storm import Interval
from redline.store import RunFolder


def _health() -> GeneratorHealth:
    w = WorkerStats(
        0, 123, (0,), cpu_s=0.5, wall_s=2.0, cap_hits=0, connects=4, connect_failures=0, retries=1, end_reason="done"
    )
    return GeneratorHealth(False, (), {"p99": 0.2}, {"p99": 0.3}, 0.0, (w,), 0, 1000, 3, 0)


def _probe(index: int, rate: float, state: str = "stable") -> ProbeResult:
    summary = RunSummary(10.0, 1000, 100.0, 100.0, 99.9, 99.9, 999, 0, 0.0, latency_ms={"p50": 1.5, "p99": 3.0})
    verdict = Verdict(state, "robust", ("fine",), {"slope": 0.0})  # type: ignore[arg-type]
    return ProbeResult(
        index=index, rate=rate, phase="confirm", full=True, attempt=0, workers=1, warmup_s=2.0, window_s=10.0,
        started_ns=1, ended_ns=2, interrupted=False, stopped_early=None, verdict=verdict, summary=summary,
        health=_health(), dir=f"probes/{index:02d}-{rate:g}", target_cpu_pct=50.0, generator_cpu_pct=10.0,
    )  # fmt: skip


def _capacity(tmp_path) -> tuple[RunFolder, CapacityResult]:
    folder = RunFolder.create(tmp_path, "t")
    finding = Finding(
        "bottleneck.x", "title", Severity.HIGH, evidence=(Evidence.say("a sentence"), Evidence("/etc/f", "k = 1"))
    )
    doc = CapacityResult(
        **RunFolder.header({"url": "http://127.0.0.1:1/"}, {"arrival": "constant"}) | {"status": "complete"},
        probes=(_probe(0, 100.0), _probe(1, 110.0, "degraded")),
        findings=(finding,),
        outcome=SearchOutcome("found", 100.0, "because"),
    )
    folder.write(doc)
    return folder, doc


def test_capacity_result_round_trips_through_run_json(tmp_path):
    folder, doc = _capacity(tmp_path)
    back = folder.read()
    assert back == doc
    raw = json.loads((folder.path / "run.json").read_text())
    # the keys readers of earlier run.json files know are still there, spelled as before
    p = raw["probes"][0]
    assert p["health"]["schedule_lag_ms"] == {"p99": 0.2} and p["health"]["workers"][0]["stale_keepalive_retries"] == 1
    assert p["health"]["workers"][0]["cpu_share"] == 0.25 and p["verdict"]["state"] == "stable"
    assert raw["findings"][0]["evidence"] == ["a sentence", {"path": "/etc/f", "value": "k = 1"}]
    assert raw["findings"][0]["severity"] == "high" and raw["schema_version"] == 1
    assert back.probe_at_n() is not None and back.probe_at_n().target_cpu_ms_per_request == pytest.approx(500 / 99.9)


def test_newer_schema_is_refused_with_one_line(tmp_path):
    folder, _ = _capacity(tmp_path)
    raw = json.loads((folder.path / "run.json").read_text())
    (folder.path / "run.json").write_text(json.dumps(raw | {"schema_version": 999}))
    with pytest.raises(UserError, match=r"newer redline .*schema 999"):
        folder.read()
    r = subprocess.run(
        [sys.executable, "-m", "redline", "report", str(folder.path)], capture_output=True, text=True, timeout=120
    )
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "schema 999" in lines[0] and "Traceback" not in r.stderr


def test_a_run_json_without_schema_is_not_a_result(tmp_path):
    folder, _ = _capacity(tmp_path)
    raw = json.loads((folder.path / "run.json").read_text())
    del raw["schema_version"]
    (folder.path / "run.json").write_text(json.dumps(raw))
    with pytest.raises(UserError, match="no schema_version"):
        folder.read()


def test_a_damaged_probe_record_is_named_and_the_rest_kept(tmp_path):
    folder, _ = _capacity(tmp_path)
    raw = json.loads((folder.path / "run.json").read_text())
    raw["probes"][1]["rate"] = "fast"
    (folder.path / "run.json").write_text(json.dumps(raw))
    loaded = folder.load()
    assert [p.index for p in loaded.result.probes] == [0]
    assert len(loaded.problems) == 1 and "probes[1].rate" in loaded.problems[0]


def test_codec_names_the_bad_key():
    with pytest.raises(SchemaError, match=r"\$\.n: expected a number"):
        from_json(SearchOutcome, {"state": "found", "n": "many", "reason": ""})
    with pytest.raises(SchemaError, match="'reason' is missing"):
        from_json(SearchOutcome, {"state": "found", "n": 1})
    with pytest.raises(SchemaError, match="is not one of"):
        from_json(SearchOutcome, {"state": "sideways", "n": 1, "reason": ""})


def test_scale_fit_keeps_nan_bounds_as_null():
    fit = ScaleFit("amdahl", 1.0, Interval(0.5, float("nan"), float("nan")), None, None, 2.0, 0.1, 0, "none", 0)
    raw = fit.to_json()
    assert raw["lambda"] == 1.0 and raw["sigma"]["low"] is None
    back = ScaleFit.from_json(json.loads(json.dumps(raw)))
    assert np.isnan(back.sigma.low) and back.sigma.value == 0.5 and back.lam == 1.0
