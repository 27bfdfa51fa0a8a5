"""`redline capacity` without --url (what `./dev demo` runs): redline starts the reference
identity service on its own CPU, searches with keystone.issue (bcrypt cost 4), and stops
it; `--embedded calibrated` keeps the queue of known capacity reachable."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import GEN_CPUS, TARGET_CPUS, assert_one_line_error, run_redline
from redline.procs import alive

pytestmark = pytest.mark.slow
GEN = ",".join(map(str, GEN_CPUS))


def test_default_target_is_the_reference_identity_service(tmp_path):
    proc = run_redline(
        "capacity", "--min", "40", "--max", "120", "--resolution", "50%", "--cpus", GEN,
        "--results", str(tmp_path), "--json", timeout=240,
    )  # fmt: skip
    assert "Traceback" not in proc.stderr, proc.stderr
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["outcome"]["n"] and out["outcome"]["n"] >= 40, out["outcome"]
    t = out["target"]
    assert t["embedded"] is True and t["lab"]["kind"] == "identity"
    assert t["scenario"]["name"] == "keystone.issue" and t["scenario"]["password_hash_rounds"] == 4
    assert t["scenario"]["credentials"]["source"] == "embedded"
    if TARGET_CPUS:  # pinned apart from the generator
        assert t["cpus"] == list(TARGET_CPUS) and t["lab"]["cpus"] == list(TARGET_CPUS)
    assert any(p["target_cpu_pct"] for p in out["probes"])  # the service's processes were monitored
    assert t["pid"] > 0 and not alive(t["pid"])  # stopped when the command ended
    assert "embedded target: the reference identity service" in proc.stderr
    assert Path(out["report"]).is_file()
    for f in Path(out["run_dir"]).rglob("*"):  # its generated password and tokens stay in memory
        if f.is_file():
            assert b"gAAAAA" not in f.read_bytes(), f


def test_embedded_calibrated_and_bad_combinations(tmp_path):
    proc = run_redline(
        "capacity", "--embedded", "calibrated", "--min", "300", "--max", "500", "--resolution", "50%",
        "--cpus", GEN, "--results", str(tmp_path), "--json", timeout=240,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["target"]["kind"] == "calibrated" and out["target"]["embedded"] is True
    assert 300 <= out["outcome"]["n"] <= 400, out["probes"]
    for args, words in (
        (("--embedded", "nope"), "--embedded must be one of"),
        (("--embedded", "identity", "--url", "http://127.0.0.1:9/"), "drop --url"),
        (("--embedded", "calibrated", "--scenario", "keystone.issue"), "--scenario needs a Keystone"),
    ):
        assert words in assert_one_line_error(run_redline("capacity", *args, "--results", str(tmp_path)))
