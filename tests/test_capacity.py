"""`redline capacity` against real calibrated targets (the issue's Done-when cases)."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import GEN_CPUS, assert_one_line_error, redline_cmd, run_redline
from redline.procs import wait_until
from redline.store import RunFolder

pytestmark = pytest.mark.slow
GEN = ",".join(map(str, GEN_CPUS))


def _capacity(lab, tmp_path: Path, *args: str, timeout: float = 400) -> tuple[int, dict, dict]:
    proc = run_redline(
        "capacity", "--url", lab.url + "/", "--cpus", GEN, "--target-pid", str(lab.pid),
        "--results", str(tmp_path), "--json", *args, timeout=timeout,
    )  # fmt: skip
    assert "Traceback" not in proc.stderr, proc.stderr
    out = json.loads(proc.stdout)
    doc = json.loads((Path(out["run_dir"]) / "run.json").read_text())
    return proc.returncode, out, doc


# The two ends of the range; C = 400 (and three runs of each) are measured by
# benchmarks/capacity_accuracy.py, which keeps the suite under its time budget.
@pytest.mark.parametrize("servers, capacity", [(1, 100), (15, 1500)])
def test_quick_protocol_finds_the_calibrated_capacity(calibrated, tmp_path, servers, capacity):
    lab = calibrated(servers=servers, service_ms=10)
    rc, out, doc = _capacity(lab, tmp_path)
    assert rc == 0, out
    n = out["outcome"]["n"]
    assert out["outcome"]["state"] == "found"
    assert 0.9 * capacity <= n <= capacity, out["probes"]
    # N passed at full length and one step more failed at full length
    full = [p for p in doc["probes"] if p["full"]]
    assert any(p["rate"] == n and p["verdict"]["state"] == "stable" for p in full)
    assert any(p["rate"] > n and p["verdict"]["state"] == "degraded" for p in full)
    for p in doc["probes"]:
        assert p["verdict"]["reasons"] and p["summary"]["latency_ms"]["p50"] > 0
        assert (Path(out["run_dir"]) / p["dir"] / "samples.npz").is_file()
    assert doc["status"] == "complete" and doc["time_taken_s"] > 0
    assert any(p["target_cpu_pct"] is not None for p in doc["probes"])
    assert (Path(out["run_dir"]) / "monitor.npz").is_file()
    assert out["report"] and Path(out["report"]).is_file()
    # K servers sleeping 10 ms: the CPU idles, so what limits N is the pool, ~K in flight at N.
    limit = doc["limit"]
    assert limit["kind"] == "latency_bound", limit
    assert not any(f["id"] == "target.cpu_saturated" for f in doc["findings"])
    assert 0.8 * servers <= limit["figures"]["concurrency_at_n"] <= 1.2 * servers, limit
    assert "requests served at once at N" in limit["headline"] and "one request alone takes" in limit["paragraph"]
    assert "What limits N" in Path(out["report"]).read_text()


def test_errors_above_a_rate_bound_n_and_are_named(calibrated, tmp_path):
    # Capacity 400/s, but 503 at once to requests beyond 250 admitted in the last second: the
    # robust criterion degrades on any error, so every rate above 250/s degrades and every rate
    # below it is served. N is stable and N + 10 % degraded at full length: 250/1.1 < N ≤ 250.
    lab = calibrated(servers=4, service_ms=10, shed_above=250)
    rc, out, doc = _capacity(lab, tmp_path, "--resolution", "10%")  # N's place, not its last 2 %
    assert rc == 0 and out["outcome"]["state"] == "found", out["outcome"]
    n = out["outcome"]["n"]
    assert 250 / 1.1 < n <= 250, out["probes"]
    failed = re.compile(r"^\d+ of \d+ requests failed \(\d+\.\d\d%, limit 0\.00%\): http 503 ×\d+$")
    run_dir = Path(out["run_dir"])
    above = [p for p in doc["probes"] if p["rate"] > 255]
    assert above, out["probes"]
    for p in above:
        v = p["verdict"]
        assert v["state"] == "degraded", p
        assert v["figures"]["errors"] > 0 and v["figures"]["errors_by_kind"] == {"http 503": v["figures"]["errors"]}
        assert any(failed.match(r) for r in v["reasons"]) or any(
            r.startswith("stopped early: ") and "errors already (http 503 ×" in r for r in v["reasons"]
        ), v["reasons"]
        # Only the requests beyond 250/s are shed: in the second second of the warm-up (the
        # last second's count is full by then) (r − 250)/r of the answers are 503s.
        rows = RunFolder.open(run_dir).read_samples(p["dir"])
        t = (rows.intended_ns - rows.start_ns) / 1e9
        second = rows.completed & (t >= 1) & (t < 2)
        shed = np.count_nonzero(rows.status[second] == 503) / np.count_nonzero(second)
        assert shed == pytest.approx((p["rate"] - 250) / p["rate"], abs=0.02), (p["rate"], shed)
    for p in doc["probes"]:
        if p["rate"] < 245:
            assert p["verdict"]["state"] == "stable" and p["summary"]["errors"] == 0, p


def _hog(cpu: int, seconds: int) -> subprocess.Popen | None:
    """A real-time busy loop on `cpu`: it takes the CPU whenever it wants it."""
    if not shutil.which("chrt"):
        return None
    code = f"import time\nend = time.time() + {seconds}\nwhile time.time() < end: pass\n"
    hog = subprocess.Popen(["chrt", "-f", "10", "taskset", "-c", str(cpu), sys.executable, "-c", code])
    time.sleep(0.5)
    if hog.poll() is not None:
        return None
    return hog


def test_a_starved_generator_is_inconclusive_not_the_targets_limit(calibrated, tmp_path):
    if len(GEN_CPUS) and len(os.sched_getaffinity(0)) < 2:
        pytest.skip("needs two CPUs: one for the target, one for the starved generator")
    lab = calibrated(servers=15, service_ms=10)  # capacity 1500: the target is never the limit here
    hog = _hog(GEN_CPUS[0], 120)
    if hog is None:
        pytest.skip("cannot run a real-time CPU hog here (chrt refused)")
    try:
        rc, out, doc = _capacity(lab, tmp_path, "--start", "400", timeout=300)
    finally:
        hog.kill()
        hog.wait()
    states = [p["verdict"]["state"] for p in doc["probes"]]
    assert "inconclusive" in states, out["probes"]
    assert "degraded" not in states, out["probes"]
    assert out["outcome"]["state"] == "inconclusive" and rc == 5
    bound = [p for p in doc["probes"] if p["verdict"]["state"] == "inconclusive"]
    assert all(p["health"]["generator_bound"] and p["health"]["reasons"] for p in bound)
    # The diagnosis blames the generator, not the target (which idles at capacity 1500).
    assert doc["limit"]["kind"] == "generator", doc["limit"]
    assert all(p["findings"][0]["id"] == "generator.bound" for p in bound)
    assert not any(f["id"].startswith("target.cpu") for p in doc["probes"] for f in p["findings"])


def _plain_hog(cpu: int, seconds: int) -> subprocess.Popen:
    """A busy loop at normal priority on `cpu`: it takes all the CPU the generator leaves."""
    code = f"import time\nend = time.time() + {seconds}\nwhile time.time() < end: pass\n"
    return subprocess.Popen(["taskset", "-c", str(cpu), sys.executable, "-c", code])


def test_a_generator_sharing_its_core_with_a_hog_that_keeps_the_schedule_gives_a_valid_verdict(calibrated, tmp_path):
    if len(GEN_CPUS) and len(os.sched_getaffinity(0)) < 2:
        pytest.skip("needs two CPUs: one for the target, one for the generator and the hog")
    import psutil

    lab = calibrated(servers=1, service_ms=10)  # C = 100
    hog = _plain_hog(GEN_CPUS[0], 300)
    try:
        rc, out, doc = _capacity(lab, tmp_path, timeout=400)
        hog_cpu_s = sum(psutil.Process(hog.pid).cpu_times()[:2])
    finally:
        hog.kill()
        hog.wait()
    # The hog really shared the core: it ran most of the search's time.
    assert hog_cpu_s > 0.5 * doc["time_taken_s"], (hog_cpu_s, doc["time_taken_s"])
    # The generator was woken in time for every request, so it is not judged the limit ...
    assert not any(p["health"]["generator_bound"] for p in doc["probes"]), [p["health"] for p in doc["probes"]]
    # ... and the search finds the calibrated capacity, as on an idle core.
    assert rc == 0 and out["outcome"]["state"] == "found", out
    assert 90 <= out["outcome"]["n"] <= 100, out["probes"]


def _probes_recorded(results: Path) -> int:
    """How many probes the one run folder's run.json holds (0 before it exists)."""
    for folder in results.iterdir():
        try:
            return len(json.loads((folder / "run.json").read_text())["probes"])
        except (FileNotFoundError, NotADirectoryError, json.JSONDecodeError):
            continue
    return 0


def test_sigint_during_a_search_keeps_the_probes(calibrated, tmp_path):
    lab = calibrated(servers=4, service_ms=10)
    proc = subprocess.Popen(
        redline_cmd("capacity", "--url", lab.url + "/", "--cpus", GEN, "--results", str(tmp_path)),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    try:
        # run.json is rewritten after every probe: wait until it holds one (the first probe
        # takes 2 + 8 s; 120 s is a generous limit), then interrupt the second.
        seen = wait_until(lambda: _probes_recorded(tmp_path), 120)
        assert seen, "no probe recorded in run.json within 120 s"
        assert proc.poll() is None, proc.communicate()
        proc.send_signal(signal.SIGINT)
        _out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130 and "Traceback" not in err
    run_dir = next(p for p in tmp_path.iterdir() if p.is_dir())
    doc = json.loads((run_dir / "run.json").read_text())
    assert doc["status"] == "interrupted" and doc["outcome"]["state"] == "interrupted"
    assert len(doc["probes"]) >= seen  # every finished probe kept
    # the first probe, 100/s on a target of capacity 400/s, was stable
    assert doc["probes"][0]["rate"] == 100 and doc["probes"][0]["verdict"]["state"] == "stable"
    assert f"redline: capacity interrupted; what was measured is in {run_dir}" in err, err
    assert (run_dir / "report.html").is_file()


@pytest.mark.parametrize(
    "args, words",
    [
        (["--protocol", "nope"], "--protocol must be one of"),
        (["--resolution", "abc"], "bad resolution"),
        (["--min", "10"], "--min needs --max"),
        (["--min", "50", "--max", "10"], "min rate < max rate"),
        (["--criterion", "vibes"], "unknown criterion"),
    ],
)
def test_bad_options(args, words, tmp_path):
    proc = run_redline("capacity", "--url", "http://127.0.0.1:9/", "--results", str(tmp_path), *args)
    assert words in assert_one_line_error(proc)


@pytest.mark.skipif(not os.environ.get("REDLINE_PAPER"), reason="about 10 minutes: set REDLINE_PAPER=1 to run")
def test_paper_protocol_reproduces_the_study_on_capacity_100(calibrated, tmp_path):
    lab = calibrated(servers=1, service_ms=10)
    started = time.monotonic()
    rc, out, doc = _capacity(lab, tmp_path, "--protocol", "paper", timeout=3600)
    print(f"paper protocol took {time.monotonic() - started:.0f} s")
    assert rc == 0 and 90 <= out["outcome"]["n"] <= 100
    for p in doc["probes"]:  # probes stopped in their warm-up still show what they did
        if p["summary"]["window_s"] == 0:
            assert p["warmup_summary"]["achieved_rps"] > 0, p
