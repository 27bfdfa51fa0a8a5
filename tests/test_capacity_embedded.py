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
    # What `./dev demo` runs (the generator pinned as the suite pins it): a whole quick search.
    proc = run_redline("capacity", "--cpus", GEN, "--results", str(tmp_path), "--json", timeout=400)
    assert "Traceback" not in proc.stderr, proc.stderr
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["outcome"]["state"] == "found" and out["outcome"]["n"] > 100, out["outcome"]
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
    if TARGET_CPUS:
        # Its one CPU is the limit: busy at N, the CPU each issue costs, the ceiling, the advice.
        limit = out["limit"]
        assert limit["kind"] == "target_cpu", limit
        at_n = limit["figures"]["at_n"]
        assert at_n["cpus"] == 1 and at_n["busy_share"] >= 0.8, at_n
        assert at_n["ceiling_rps"] == pytest.approx(out["outcome"]["n"] / at_n["share_of_ceiling"], rel=0.05)
        assert "per token issue" in limit["paragraph"] and "one worker process per CPU" in limit["paragraph"]
        html = Path(out["report"]).read_text()
        assert "What limits N" in html and "ceiling near" in html
        # profiled by default (redline started it): the raw stacks of the decisive probes are kept
        profiled = [p for p in json.loads((Path(out["run_dir"]) / "run.json").read_text())["probes"] if p["profile"]]
        assert profiled and any(p["profile"]["samples"] > 0 for p in profiled)
        assert "Where the target's time goes" in html and "<svg" in html
        # `redline diagnose` derives the same limit offline and prints it as the terminal summary does
        again = run_redline("diagnose", out["run_dir"], timeout=120)
        assert again.returncode == 0, again.stderr
        assert "what limits it: target CPU" in again.stdout, again.stdout
        rewritten = json.loads((Path(out["run_dir"]) / "run.json").read_text())
        assert rewritten["limit"]["kind"] == "target_cpu"
        assert rewritten["limit"]["figures"]["at_n"] == at_n
    for f in Path(out["run_dir"]).rglob("*"):  # its generated password and tokens stay in memory
        if f.is_file():
            assert b"gAAAAA" not in f.read_bytes(), f


def test_embedded_calibrated_and_bad_combinations(tmp_path):
    # The embedded calibrated target is 4 servers × 10 ms: capacity 400/s, known in advance.
    # A found N is stable and N + 25 % degraded at full length, so 400/1.25 = 320 < N ≤ 400
    # (above --min 300: an N that merely repeats the range's low end fails).
    proc = run_redline(
        "capacity", "--embedded", "calibrated", "--min", "300", "--max", "500", "--resolution", "25%",
        "--cpus", GEN, "--results", str(tmp_path), "--json", timeout=240,
    )  # fmt: skip
    assert "Traceback" not in proc.stderr, proc.stderr
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    t = out["target"]
    assert t["kind"] == "calibrated" and t["embedded"] is True and t["capacity_rps"] == 400.0
    assert out["outcome"]["state"] == "found", out["outcome"]
    n = out["outcome"]["n"]
    assert 400 / 1.25 < n <= 400, out["probes"]
    full = [p for p in out["probes"] if p["full"]]
    assert any(p["rate"] == n and p["verdict"] == "stable" for p in full), out["probes"]
    assert any(p["rate"] > n and p["verdict"] == "degraded" for p in full), out["probes"]
    # Overloaded, the queue still answers at its capacity, never more.
    for p in out["probes"]:
        assert p["achieved_rps"] <= 400 * 1.02, p
        if p["verdict"] == "stable":
            assert p["achieved_rps"] == pytest.approx(p["rate"], rel=0.02), p
    for args, words in (
        (("--embedded", "nope"), "--embedded must be one of"),
        (("--embedded", "identity", "--url", "http://127.0.0.1:9/"), "drop --url"),
        (("--embedded", "calibrated", "--scenario", "keystone.issue"), "--scenario needs a Keystone"),
    ):
        assert words in assert_one_line_error(run_redline("capacity", *args, "--results", str(tmp_path)))
