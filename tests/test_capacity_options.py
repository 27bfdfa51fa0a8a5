"""`redline capacity` options against calibrated targets of known capacity (docs/capacity.md):
`--slo-p99` and exit code 4, `--criterion paper`, `--protocol thorough`. Each asserts the exit
code, the outcome's state and N against what the queue implies by hand (capacity = servers /
service time), with short trials and small ranges."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

import pytest

from conftest import GEN_CPUS, redline_cmd, run_redline
from redline.procs import wait_until

pytestmark = pytest.mark.slow
GEN = ",".join(map(str, GEN_CPUS))


def _capacity(lab, tmp_path: Path, *args: str, timeout: float = 400) -> tuple[int, dict, dict]:
    proc = run_redline(
        "capacity", "--url", lab.url + "/", "--cpus", GEN, "--target-pid", str(lab.pid), "--no-profile",
        "--results", str(tmp_path), "--json", *args, timeout=timeout,
    )  # fmt: skip
    assert "Traceback" not in proc.stderr, proc.stderr
    out = json.loads(proc.stdout)
    doc = json.loads((Path(out["run_dir"]) / "run.json").read_text())
    return proc.returncode, out, doc


def test_a_p99_slo_below_the_service_time_is_never_stable_exit_4(calibrated, tmp_path):
    # Every answer of a 4 × 10 ms queue takes at least 10 ms, so p99 ≥ 10 ms at any rate and a
    # 5 ms SLO fails everywhere: even the lowest rate (--min 20, 5 % of its 400/s) degrades, on
    # the SLO alone. docs: exit 4, "never stable: even the lowest rate tried degraded".
    lab = calibrated(servers=4, service_ms=10)
    rc, out, doc = _capacity(lab, tmp_path, "--slo-p99", "5", "--min", "20", "--max", "60", "--resolution", "100%")
    assert rc == 4, out["outcome"]
    assert out["outcome"]["state"] == "never_stable" and out["outcome"]["n"] is None
    assert out["outcome"]["reason"].startswith("even 20/s degraded"), out["outcome"]
    assert min(p["rate"] for p in doc["probes"]) == 20
    for p in doc["probes"]:
        v = p["verdict"]
        assert v["state"] == "degraded", p
        p99 = v["figures"]["latency_ms"]["p99"]
        assert p99 >= 10.0 and v["figures"]["slo_p99_ms"] == 5
        assert f"p99 latency {p99:.1f} ms breaks the SLO of 5 ms" in v["reasons"], v["reasons"]
        failed = {k for k, state in v["figures"]["checks"].items() if state == "fail"}
        assert failed == {"slo"}, v["figures"]["checks"]  # nothing but the SLO degraded it


def test_paper_criterion_finds_the_calibrated_capacity(calibrated, tmp_path):
    # 1 server × 10 ms: capacity 100/s. The study's rule degrades on a latency slope
    # a ≥ 0.01 s/s; offered r > C, latency climbs at a = (r − C)/C. A found N is stable and
    # N + 10 % degraded at full length: 100/1.1 < N ≤ 100.
    lab = calibrated(servers=1, service_ms=10)
    rc, out, doc = _capacity(
        lab, tmp_path, "--criterion", "paper", "--min", "80", "--max", "120", "--resolution", "10%"
    )
    assert rc == 0 and out["outcome"]["state"] == "found", out["outcome"]
    n = out["outcome"]["n"]
    assert 100 / 1.1 < n <= 100, out["probes"]
    assert doc["criterion"] == "paper" and doc["protocol"]["name"] == "quick"
    for p in doc["probes"]:
        v = p["verdict"]
        assert v["criterion"] == "paper", v
        if v["state"] == "stable":
            assert any(r.startswith("no errors in ") for r in v["reasons"]) and any(
                r.endswith("a < 0.01") for r in v["reasons"]
            )
    full = {p["rate"]: p for p in doc["probes"] if p["full"]}
    assert full[n]["verdict"]["state"] == "stable"
    above = [p for r, p in full.items() if r > n]
    assert above and all(p["verdict"]["state"] == "degraded" for p in above), out["probes"]
    for p in above:
        fit = p["verdict"]["figures"].get("fit") or {}
        if p["rate"] > 101 and (fit.get("points") or 0) >= 50:  # enough of a window to fit
            expected = (p["rate"] - 100) / 100
            assert 0.5 * expected <= fit["a_s_per_s"] <= 2 * expected, (p["rate"], fit)


def _first_probe(results: Path) -> dict | None:
    for folder in results.iterdir():
        try:
            probes = json.loads((folder / "run.json").read_text())["probes"]
        except (FileNotFoundError, NotADirectoryError, json.JSONDecodeError):
            continue
        return probes[0] if probes else None
    return None


def test_thorough_protocol_trials_are_10_plus_30_s_at_1_percent(calibrated, tmp_path):
    # A whole thorough search takes ~10 minutes (see the opt-in test below); its first probe
    # shows the protocol's short trial for real: 10 s warm-up, 30 s window, 30 × rate requests.
    lab = calibrated(servers=4, service_ms=10)  # capacity 400/s
    proc = subprocess.Popen(
        redline_cmd("capacity", "--url", lab.url + "/", "--protocol", "thorough", "--start", "200", "--cpus", GEN,
                    "--no-profile", "--results", str(tmp_path)),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    try:
        first = wait_until(lambda: _first_probe(tmp_path), 180)  # the probe takes 40 s; 180 s is generous
        assert first is not None, "no probe recorded in run.json within 180 s"
        proc.send_signal(signal.SIGINT)
        _out, err = proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130 and "Traceback" not in err, err
    (folder,) = [p for p in tmp_path.iterdir() if (p / "run.json").is_file()]
    doc = json.loads((folder / "run.json").read_text())
    assert doc["protocol"] | {"description": None} == {
        "name": "thorough", "short_warmup_s": 10, "short_window_s": 30, "full_warmup_s": 30, "full_window_s": 120,
        "description": None,
    }  # fmt: skip
    assert doc["plan"]["search"]["resolution_rel"] == 0.01 and doc["criterion"] == "robust"
    assert (first["rate"], first["full"], first["warmup_s"], first["window_s"]) == (200, False, 10, 30)
    assert first["summary"]["window_s"] == 30 and first["summary"]["scheduled"] == 6000
    assert first["verdict"]["state"] == "stable"  # half the calibrated capacity
    assert first["summary"]["achieved_rps"] == pytest.approx(200, rel=0.01)


@pytest.mark.skipif(not os.environ.get("REDLINE_THOROUGH"), reason="about 10 minutes: set REDLINE_THOROUGH=1 to run")
def test_thorough_protocol_finds_the_calibrated_capacity_at_1_percent(calibrated, tmp_path):
    # 4 servers × 10 ms: 400/s. N stable, N + 1 % degraded (120 s windows): 400/1.01 < N ≤ 400.
    lab = calibrated(servers=4, service_ms=10)
    rc, out, doc = _capacity(lab, tmp_path, "--protocol", "thorough", "--start", "200", timeout=3600)
    assert rc == 0 and out["outcome"]["state"] == "found", out["outcome"]
    assert 400 / 1.01 < out["outcome"]["n"] <= 400, out["probes"]
    assert all(p["window_s"] == (120 if p["full"] else 30) for p in doc["probes"])
