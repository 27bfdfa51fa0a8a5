"""What limits N, end to end on real targets: a single-threaded identity service, a run at a
fixed rate, and (opt-in: REDLINE_OPTIN=1) real Keystone without a cache and with bcrypt cost 12.

The calibrated (latency-bound), demo (CPU-bound) and starved-generator cases extend the
searches of tests/test_capacity.py and tests/test_capacity_embedded.py.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from conftest import GEN_CPUS, TARGET_CPUS, run_redline

pytestmark = pytest.mark.slow
GEN = ",".join(map(str, GEN_CPUS))
PASSWORD = "Diagnosis-lab-pw-42"


@pytest.fixture
def lab_env(tmp_path, monkeypatch):
    """Lab services under tmp_path, found by URL the way a user's are (REDLINE_LAB_DIR)."""
    monkeypatch.setenv("REDLINE_LAB_DIR", str(tmp_path / "lab"))
    monkeypatch.setenv("REDLINE_LAB_PASSWORD", PASSWORD)
    return tmp_path


def _creds(url: str) -> list[str]:
    return ["--os-auth-url", url, "--os-username", "admin", "--os-password", PASSWORD, "--os-project-name", "admin"]


def _search(tmp_path: Path, *args: str, timeout: float = 600) -> tuple[int, dict, dict]:
    proc = run_redline("capacity", *args, "--cpus", GEN, "--results", str(tmp_path / "results"), "--json",
                       timeout=timeout)  # fmt: skip
    assert "Traceback" not in proc.stderr, proc.stderr
    out = json.loads(proc.stdout)
    return proc.returncode, out, json.loads((Path(out["run_dir"]) / "run.json").read_text())


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs a CPU besides the generator's")
def test_one_unpinned_identity_worker_is_single_threaded(lab_env):
    up = run_redline("lab", "identity", "up", "--workers", "1", "--hash-rounds", "4", "--json")
    assert up.returncode == 0, up.stderr
    url = json.loads(up.stdout)["url"]
    try:
        rc, out, doc = _search(lab_env, "--scenario", "keystone.issue", *_creds(url), "--resolution", "10%")
    finally:
        run_redline("lab", "identity", "down")
    # The unpinned service may run on the generator's CPU too, so on 2 CPUs the probes above N
    # can leave the generator short (inconclusive, exit 5): N stands, and so must the diagnosis.
    assert (rc, out["outcome"]["state"]) in ((0, "found"), (5, "inconclusive")), out["outcome"]
    assert out["outcome"]["n"], out["outcome"]
    limit = doc["limit"]
    assert limit["kind"] == "single_thread", limit
    # one worker near one core while the other CPU (all but the generator's share of it) idles
    assert limit["figures"]["median_pct"] >= 90 and limit["figures"]["median_idle_cores"] >= 0.5, limit
    assert "more worker processes" in " ".join(limit["advice"])
    assert "single-threaded" in limit["paragraph"]


def test_run_at_a_fixed_rate_says_what_limits_it(tmp_path):
    # The embedded calibrated target (4 servers × 10 ms, capacity 400/s) at half its capacity.
    proc = run_redline("run", "--rate", "200", "--duration", "4", "--cpus", GEN, "--results", str(tmp_path), "--json")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    doc = json.loads((Path(out["run_dir"]) / "run.json").read_text())
    assert (Path(out["run_dir"]) / "monitor.npz").is_file()
    assert doc["findings"] and doc["limit"]["kind"] == "headroom", doc["limit"]
    # 200/s × ~10 ms: about two requests in flight, and the target's CPU was measured
    assert 1.0 <= doc["limit"]["figures"]["in_flight"] <= 3.5, doc["limit"]
    assert doc["monitor"]["groups"]["target"]["samples"] >= 3
    assert "What limits this run" in Path(out["report"]).read_text()
    human = run_redline("diagnose", out["run_dir"])
    assert human.returncode == 0 and "what limits it: nothing saturated" in human.stdout, human.stdout


def test_diagnose_refuses_what_it_cannot_read(tmp_path):
    missing = run_redline("diagnose", str(tmp_path / "nope"))
    assert missing.returncode != 0 and "Traceback" not in missing.stderr
    assert len([line for line in missing.stderr.splitlines() if line.strip()]) == 1, missing.stderr


# -- opt-in: real Keystone, minutes per search --

optin = pytest.mark.skipif(
    not os.environ.get("REDLINE_OPTIN"), reason="opt-in: REDLINE_OPTIN=1 (real Keystone, ~15 min)"
)


@optin
def test_keystone_without_cache_is_limited_by_role_assignment_sql(lab_env):
    up = run_redline("lab", "keystone", "up", "--cache", "none", "--hash-rounds", "4", *_cpus(), "--json", timeout=900)
    assert up.returncode == 0, up.stderr
    url = json.loads(up.stdout)["url"]
    try:
        rc, out, doc = _search(lab_env, "--scenario", "keystone.validate", *_creds(url), "--protocol", "thorough",
                               "--start", "2", timeout=3000)  # fmt: skip
    finally:
        run_redline("lab", "keystone", "down", timeout=120)
    assert rc == 0, out["outcome"]
    limit = doc["limit"]
    packages = [k["package"] for p in doc["probes"] if p["profile"] for k in p["profile"]["packages"][:6]]
    assert any(k.startswith(("sqlalchemy", "keystone.assignment", "oslo_db")) for k in packages), packages
    assert "keystone.cache_enabled" in [a["id"] for a in limit["audit"]], limit
    assert "memcached" in limit["paragraph"]


@optin
def test_keystone_bcrypt_cost_12_is_limited_by_hashing(lab_env):
    up = run_redline("lab", "keystone", "up", "--cache", "memcached", "--hash-rounds", "12", *_cpus(), "--json",
                     timeout=900)  # fmt: skip
    assert up.returncode == 0, up.stderr
    url = json.loads(up.stdout)["url"]
    try:
        rc, out, doc = _search(lab_env, "--scenario", "keystone.issue", *_creds(url), "--start", "2", timeout=3000)
    finally:
        run_redline("lab", "keystone", "down", timeout=120)
    assert rc == 0, out["outcome"]
    limit = doc["limit"]
    assert limit["hot_code"] and limit["hot_code"].startswith("bcrypt"), limit
    assert "trade-off" in limit["paragraph"]


def _cpus() -> list[str]:
    return ["--cpus", ",".join(map(str, TARGET_CPUS))] if TARGET_CPUS else []
