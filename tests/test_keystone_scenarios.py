"""keystone.* scenarios through `redline run` / `capacity` against the reference identity
service: requests succeed, bad credentials stop before the run with one line, secrets
never reach the run folder, and a target that dies mid-run is named."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from dataclasses import replace
from pathlib import Path

import pytest

from conftest import CPUS, GEN_CPUS, TARGET_CPUS, assert_one_line_error, redline_cmd, run_redline
from identity_helpers import probe_table
from redline.lab import identity as lab
from redline.model.study import CellPlan, CellRecord, StudyState
from redline.procs import group_members

PASSWORD = "s3cret-Pa55-for-tests"
GEN = ",".join(map(str, GEN_CPUS))


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    root = tmp_path_factory.mktemp("labroot")
    old = os.environ.get("REDLINE_LAB_DIR")
    os.environ["REDLINE_LAB_DIR"] = str(root)
    config = lab.IdentityLabConfig(
        root / "identity", workers=2, bench_users=4, cpus=TARGET_CPUS, timing_log=root / "timing.log"
    )
    state = lab.up(config, PASSWORD)
    yield state
    lab.down(root / "identity")
    if old is None:
        del os.environ["REDLINE_LAB_DIR"]
    else:
        os.environ["REDLINE_LAB_DIR"] = old


def _creds(url: str, password: str = PASSWORD) -> list[str]:
    return ["--os-auth-url", url, "--os-username", "admin", "--os-password", password, "--os-project-name", "admin"]


def assert_no_secrets(folder: Path, password: str) -> None:
    for f in folder.rglob("*"):
        if f.is_file():
            data = f.read_bytes()
            assert password.encode() not in data, f
            assert b"gAAAAA" not in data, f"a Fernet token in {f}"


@pytest.mark.parametrize("scenario", ["keystone.issue", "keystone.validate", "keystone.mix"])
def test_scenario_run(service, tmp_path, scenario):
    proc = run_redline(
        "run", "--scenario", scenario, *_creds(service.url), "--users", "bench-{0..3}", "--users-project", "bench",
        "--token-pool", "20", "--rate", "100", "--duration", "2", "--cpus", GEN, "--results", str(tmp_path), "--json",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["summary"]["errors"] == 0 and out["summary"]["achieved_rps"] > 90
    doc = json.loads((Path(out["run_dir"]) / "run.json").read_text())
    sc = doc["target"]["scenario"]
    assert sc["name"] == scenario and sc["password_hash_rounds"] == 4
    assert doc["target"]["lab"]["kind"] == "identity"
    assert "<redacted>" in doc["command_line"]
    assert_no_secrets(Path(out["run_dir"]), PASSWORD)


def test_bad_credentials_stop_before_the_run(service, tmp_path):
    proc = run_redline(
        "run", "--scenario", "keystone.issue", *_creds(service.url, "wrong"), "--rate", "10", "--results", str(tmp_path)
    )
    assert "401" in assert_one_line_error(proc)
    assert not any(tmp_path.iterdir())  # nothing measured, no run folder
    bad_path = service.url.replace("/v3", "/nothing/v3")
    proc = run_redline("capacity", "--scenario", "keystone.validate", *_creds(bad_path), "--results", str(tmp_path))
    assert "404" in assert_one_line_error(proc)
    proc = run_redline("run", "--scenario", "keystone.nope", *_creds(service.url), "--rate", "10")
    assert "--scenario must be one of" in assert_one_line_error(proc)


def _requests(log: Path, t0_ns: int, t1_ns: int) -> list[tuple[int, str, str]]:
    """(recv_ns, status, method) of each token request the service logged in [t0, t1]."""
    out = []
    for line in log.read_text().splitlines():
        recv, _sent, status, method, path = line.split(" ", 4)
        if t0_ns <= int(recv) <= t1_ns and path.endswith("/auth/tokens"):
            out.append((int(recv), status, method))
    return out


def _search(url: str, results: Path, *extra: str, lab_dir: Path | None = None):
    """A coarse validate search, 50..200/s at 25 %: the reference service validates ~1200/s
    on one core, so it ends at the upper bound after 3 probes (~40 s). `lab_dir`: where the
    lab's state is (REDLINE_LAB_DIR), so that the run records and monitors it. Returns the
    process and the wall-clock ns before and after."""
    t0 = time.time_ns()
    proc = subprocess.run(
        redline_cmd(
            "capacity", "--scenario", "keystone.validate", *_creds(url), "--min", "50", "--max", "200",
            "--resolution", "25%", "--cpus", GEN, "--results", str(results), "--json", *extra,
        ),
        capture_output=True, text=True, timeout=200, stdin=subprocess.DEVNULL,
        env=os.environ | ({"REDLINE_LAB_DIR": str(lab_dir)} if lab_dir else {}),
    )  # fmt: skip
    return proc, t0, time.time_ns()


def _at_upper_bound(proc: subprocess.CompletedProcess) -> tuple[dict, dict]:
    """Exit 0, outcome at_upper_bound at 200/s; N within what the target's one core served:
    200/s × the cheapest CPU per request of a stable probe fits in the cores it was given,
    and the costliest leaves the CPU bound above 200/s (it was not the limit: the bound was)."""
    assert "Traceback" not in proc.stderr, proc.stderr
    assert proc.returncode == 0, (proc.returncode, proc.stderr[-2000:])
    out = json.loads(proc.stdout)
    assert out["outcome"]["state"] == "at_upper_bound" and out["outcome"]["n"] == 200, out["outcome"]
    doc = json.loads((Path(out["run_dir"]) / "run.json").read_text())
    cores = len(TARGET_CPUS or CPUS)
    cpu_s = [
        p["target_cpu_pct"] / 100 / p["summary"]["achieved_rps"]
        for p in doc["probes"]
        if p["verdict"]["state"] == "stable" and p["target_cpu_pct"]
    ]
    assert cpu_s and 200 * min(cpu_s) <= cores * 1.1 and cores / max(cpu_s) > 200, (cpu_s, probe_table(doc))
    return out, doc


@pytest.fixture(scope="module")
def validate_search(service, tmp_path_factory):
    return _search(service.url, tmp_path_factory.mktemp("validate"))


@pytest.mark.slow
def test_capacity_validate_finds_n(service, validate_search):
    proc, t0, t1 = validate_search
    out, doc = _at_upper_bound(proc)
    assert Path(out["report"]).is_file()
    assert any(p["target_cpu_pct"] is not None for p in out["probes"])  # the lab's processes were monitored
    assert_no_secrets(Path(out["run_dir"]), PASSWORD)
    # Tokens that live an hour are issued once: the service saw the pool's 100 issues (plus the
    # caller's own token) and every probe's validations after the last of them.
    seen = _requests(Path(service.config["timing_log"]), t0, t1)
    posts = [t for t, st, m in seen if m == "POST" and st == "201"]
    after = sum(1 for t, st, m in seen if m == "GET" and st == "200" and t > max(posts))
    answered = sum(p["summary"]["responses"] for p in doc["probes"])
    assert 100 <= len(posts) <= 102 and after >= answered, (len(posts), after, answered, len(doc["probes"]))


TTL_S = 75  # a probe needs 10 s (14 s to confirm) plus the 60 s margin: every probe re-issues


@pytest.fixture(scope="module")
def short_ttl(tmp_path_factory):
    d = tmp_path_factory.mktemp("ttl")
    config = lab.IdentityLabConfig(
        d / "identity", workers=1, bench_users=0, token_ttl_s=TTL_S, cpus=TARGET_CPUS, timing_log=d / "timing.log"
    )
    state = lab.up(config, PASSWORD)
    yield state
    lab.down(d / "identity")


@pytest.fixture(scope="module")
def reissue_search(short_ttl, tmp_path_factory):
    lab_dir = Path(short_ttl.config["timing_log"]).parent
    return _search(short_ttl.url, tmp_path_factory.mktemp("reissue"), "--token-pool", "20", lab_dir=lab_dir)


@pytest.mark.slow
def test_token_pool_reissued_before_each_probe(short_ttl, reissue_search):
    """Tokens that would expire within a probe plus 60 s are issued again before it: with a
    75 s lifetime that is before every probe. The service's own log counts the issues: a
    fresh pool of 20 (each 201) between any two probes, and every validation answered 200."""
    proc, t0, t1 = reissue_search
    _, doc = _at_upper_bound(proc)
    assert doc["target"]["scenario"]["token_ttl_s"] in (TTL_S - 1, TTL_S)
    probes = doc["probes"]
    assert len(probes) >= 3 and all(p["summary"]["errors"] == 0 for p in probes), probe_table(doc)
    seen = sorted(_requests(Path(short_ttl.config["timing_log"]), t0, t1))
    assert {st for _, st, m in seen if m == "GET"} == {"200"}, "a validation the service refused"
    assert {st for _, st, m in seen if m == "POST"} == {"201"}
    # Split the log at each burst of issues: every probe's validations follow one.
    bursts, run = [], 0
    for _, _, method in seen:
        if method == "POST":
            run += 1
        elif run:
            bursts.append(run)
            run = 0
    assert len(bursts) >= len(probes) and all(b >= 20 for b in bursts[-len(probes) :]), (bursts, len(probes))


def test_short_token_lifetime_is_refused(short_ttl, tmp_path):
    """A run of 20 s needs tokens that live 20 + 60 s: 75 s tokens are refused in one line."""
    proc = run_redline(
        "run", "--scenario", "keystone.validate", *_creds(short_ttl.url), "--token-pool", "5", "--rate", "10",
        "--duration", "20", "--cpus", GEN, "--results", str(tmp_path),
    )  # fmt: skip
    line = assert_one_line_error(proc)
    assert proc.returncode == 2
    assert re.search(
        rf"tokens from {re.escape(short_ttl.url)} live 7[45] s, less than a run of 20 s plus 60 s: "
        r"raise \[token\] expiration or shorten the run",
        line,
    ), line
    assert not any(tmp_path.iterdir())  # nothing measured, no run folder


def _probe_at_n(doc: dict) -> dict | None:
    """By hand from run.json: the stable probe at N, the full-length one (latest) first."""
    n = doc["outcome"]["n"]
    at = [p for p in doc["probes"] if p["rate"] == n and p["verdict"]["state"] == "stable"]
    return max(at, key=lambda p: (p["full"], p["index"])) if at else None


def _interrupted_search(url: str, results: Path) -> Path:
    """A capacity search stopped by SIGINT in its first probe: a run folder, status interrupted."""
    proc = subprocess.Popen(
        redline_cmd("capacity", "--scenario", "keystone.validate", *_creds(url), "--min", "50", "--max", "200",
                    "--cpus", GEN, "--results", str(results)),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        for _ in range(600):  # up to 60 s for the first probe to start
            if any(results.glob("*/run.json")) or proc.poll() is not None:
                break
            time.sleep(0.1)
        time.sleep(3)  # into the first probe (2 s warm-up)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    (run_json,) = results.glob("*/run.json")
    return run_json.parent


@pytest.mark.slow
def test_compare_several_runs(service, validate_search, reissue_search, tmp_path):
    """Three capacity runs (two searches at their upper bound, one interrupted) in one table:
    every run in the order given, each figure the one its run.json holds (computed here by
    hand: N, the outcome, p50/p99 and CPU ms per answer of the stable probe at N)."""
    runs = [Path(json.loads(p.stdout)["run_dir"]) for p, _, _ in (validate_search, reissue_search)]
    runs.append(_interrupted_search(service.url, tmp_path / "int"))
    docs = [json.loads((r / "run.json").read_text()) for r in runs]
    assert docs[2]["status"] == "interrupted" and docs[2]["outcome"]["n"] is None
    expected = []
    for run, doc in zip(runs, docs):
        p = _probe_at_n(doc) if doc["outcome"]["n"] is not None else None
        expected.append({
            "run": run.name, "scenario": "keystone.validate", "outcome": doc["outcome"]["state"],
            "n": doc["outcome"]["n"],
            "p50_ms": p and p["summary"]["latency_ms"]["p50"], "p99_ms": p and p["summary"]["latency_ms"]["p99"],
            "target_cpu_ms_per_request": p and p["target_cpu_pct"] / 100 * 1000 / p["summary"]["achieved_rps"],
        })  # fmt: skip
    assert [e["outcome"] for e in expected] == ["at_upper_bound", "at_upper_bound", "interrupted"]
    cmp = run_redline("compare", *map(str, runs), "--html", str(tmp_path / "c.html"), "--json")
    assert cmp.returncode == 0, cmp.stderr
    rows = json.loads(cmp.stdout)["rows"]
    assert len(rows) == 3
    for r, e in zip(rows, expected):
        assert {k: r[k] for k in e} == pytest.approx(e)
    assert rows[0]["config"]["password_hash_rounds"] == 4 and rows[0]["config"]["kind"] == "identity"
    assert rows[1]["config"]["token_ttl_s"] == TTL_S and rows[1]["config"]["workers"] == 1
    html = (tmp_path / "c.html").read_text()
    assert all(r.name in html for r in runs)
    # The terminal table: one row per run, in order, with the same figures as printed numbers.
    table = run_redline("compare", *map(str, runs), "--html", str(tmp_path / "t.html"))
    assert table.returncode == 0, table.stderr
    starts = [
        [c.strip() for c in line.split("│")[1:-1]]
        for line in table.stdout.splitlines()
        if line.startswith("│") and line.split("│")[1].strip()
    ]
    assert len(starts) == 3, table.stdout
    for cells, e in zip(starts, expected):
        _, _, n, outcome, p50, p99, cpu, run = cells
        assert run.rstrip("…") and e["run"].startswith(run.rstrip("…")), (run, e["run"])
        assert outcome == e["outcome"] and n == ("—" if e["n"] is None else f"{e['n']:g}")
        assert (p50, p99, cpu) == (
            ("—", "—", "—")
            if e["n"] is None
            else (f"{e['p50_ms']:.1f}", f"{e['p99_ms']:.1f}", f"{e['target_cpu_ms_per_request']:.2f}")
        ), cells
    # A study folder stands for its done cells' run folders (a failed cell has none).
    study = tmp_path / "study"
    study.mkdir()
    cell = CellPlan("01-r1", "workers=1", "identity", {"workers": 1}, {"workers": 1}, "capacity", {})
    state = StudyState(
        "s", "s.yaml", "0", (cell, replace(cell, id="02-r1")),
        (CellRecord("01-r1", "done", run_dir=str(runs[0])), CellRecord("02-r1", "failed", reason="lab")),
    )  # fmt: skip
    (study / "study.json").write_text(json.dumps(state.to_json()))
    via = run_redline("compare", str(study), "--json")
    assert via.returncode == 0, via.stderr
    assert [r["n"] for r in json.loads(via.stdout)["rows"]] == [200]


def test_compare_refuses_what_is_not_a_capacity_run(service, tmp_path):
    """A plain run folder (a real `redline run`), a folder without run.json and a missing
    folder: each refused in one line, exit 2."""
    proc = run_redline(
        "run", "--scenario", "keystone.validate", *_creds(service.url), "--token-pool", "5", "--rate", "20",
        "--duration", "1", "--cpus", GEN, "--results", str(tmp_path / "r"), "--json",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    plain = json.loads(proc.stdout)["run_dir"]
    assert json.loads((Path(plain) / "run.json").read_text())["command"] == "run"
    refused = run_redline("compare", plain)
    assert f"{plain} is a 'run' run, not a capacity run" in assert_one_line_error(refused)
    assert refused.returncode == 2
    (tmp_path / "empty").mkdir()
    for folder, why in [(tmp_path / "empty", "(no run.json)"), (tmp_path / "nope", "(not a directory)")]:
        refused = run_redline("compare", str(folder))
        assert f"{folder} is not a run folder {why}" in assert_one_line_error(refused)
        assert refused.returncode == 2
    assert not (tmp_path / "compare.html").exists()


def test_target_killed_mid_run_is_named(tmp_path):
    d = tmp_path / "lab"
    state = lab.up(lab.IdentityLabConfig(d, workers=1, bench_users=0, cpus=TARGET_CPUS), PASSWORD)
    proc = subprocess.Popen(
        redline_cmd("run", "--scenario", "keystone.validate", *_creds(state.url), "--token-pool", "5", "--rate", "50",
                    "--duration", "20", "--cpus", GEN, "--results", str(tmp_path / "r")),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        time.sleep(4)
        os.killpg(state.pid, signal.SIGKILL)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
        lab.down(d)
    assert proc.returncode == 3, err
    assert "Traceback" not in err
    errors = [l for l in err.splitlines() if l.startswith("redline: error:")]
    assert len(errors) == 1 and "measured" in errors[0], err
    assert not group_members(state.pid)
