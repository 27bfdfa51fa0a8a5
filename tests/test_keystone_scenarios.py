"""keystone.* scenarios through `redline run` / `capacity` against the reference identity
service: requests succeed, bad credentials stop before the run with one line, secrets
never reach the run folder, and a target that dies mid-run is named."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from dataclasses import replace
from pathlib import Path

import pytest

from conftest import GEN_CPUS, TARGET_CPUS, assert_one_line_error, redline_cmd, run_redline
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
    state = lab.up(lab.IdentityLabConfig(root / "identity", workers=2, bench_users=4, cpus=TARGET_CPUS), PASSWORD)
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


@pytest.mark.slow
def test_capacity_validate_finds_n(service, tmp_path):
    proc = run_redline(
        "capacity", "--scenario", "keystone.validate", *_creds(service.url), "--min", "50", "--max", "200",
        "--resolution", "25%", "--cpus", GEN, "--results", str(tmp_path), "--json", timeout=200,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["outcome"]["n"] and out["outcome"]["n"] > 0
    assert Path(out["report"]).is_file()
    assert any(p["target_cpu_pct"] is not None for p in out["probes"])  # the lab's processes were monitored
    assert_no_secrets(Path(out["run_dir"]), PASSWORD)
    # compare: one row per capacity run, an HTML page; a plain run folder is refused in one line
    cmp = run_redline("compare", out["run_dir"], "--html", str(tmp_path / "c.html"), "--json")
    assert cmp.returncode == 0, cmp.stderr
    rows = json.loads(cmp.stdout)["rows"]
    assert rows[0]["n"] == out["outcome"]["n"] and rows[0]["scenario"] == "keystone.validate"
    assert rows[0]["p99_ms"] > 0 and rows[0]["target_cpu_ms_per_request"] > 0
    assert rows[0]["config"]["password_hash_rounds"] == 4 and rows[0]["config"]["kind"] == "identity"
    assert "keystone.validate" in (tmp_path / "c.html").read_text()
    assert "not a run folder" in assert_one_line_error(run_redline("compare", str(tmp_path / "nope")))
    # A study folder stands for its done cells' run folders (a failed cell has none).
    study = tmp_path / "study"
    study.mkdir()
    cell = CellPlan("01-r1", "workers=1", "identity", {"workers": 1}, {"workers": 1}, "capacity", {})
    state = StudyState(
        "s", "s.yaml", "0", (cell, replace(cell, id="02-r1")),
        (CellRecord("01-r1", "done", run_dir=out["run_dir"]), CellRecord("02-r1", "failed", reason="lab")),
    )  # fmt: skip
    (study / "study.json").write_text(json.dumps(state.to_json()))
    via = run_redline("compare", str(study), "--json")
    assert via.returncode == 0, via.stderr
    assert [r["n"] for r in json.loads(via.stdout)["rows"]] == [out["outcome"]["n"]]


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
