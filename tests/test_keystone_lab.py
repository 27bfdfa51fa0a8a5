"""Real Keystone (PyPI) brought up by the lab: SQLite + uWSGI + memcached, bcrypt cost 4.
A quick capacity search for issue and for validate finds N (exit 0, outcome found, N within
the CPU bound of the one core the target was given) and writes the report;
`up` twice and `down` twice say so in one line; `down` leaves no process behind."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from keystoneauth1 import session
from keystoneauth1.identity import v3

from conftest import CPUS, GEN_CPUS, TARGET_CPUS, assert_one_line_error, redline_cmd, run_redline
from identity_helpers import found_search, probe_table
from redline.lab import keystone as lab
from redline.procs import group_members

pytestmark = pytest.mark.slow
PASSWORD = "Keystone-lab-pw-42"
GEN = ",".join(map(str, GEN_CPUS))


@pytest.fixture(scope="module")
def keystone(tmp_path_factory):
    root = tmp_path_factory.mktemp("kslab")
    old = os.environ.get("REDLINE_LAB_DIR")
    os.environ["REDLINE_LAB_DIR"] = str(root)
    state = lab.up(lab.KeystoneLabConfig(root / "keystone", cpus=TARGET_CPUS, cache="memcached"), PASSWORD)
    yield state
    lab.down(root / "keystone")
    for pid in (state.pid, *state.extra_pids):
        assert not group_members(pid)
    if old is None:
        del os.environ["REDLINE_LAB_DIR"]
    else:
        os.environ["REDLINE_LAB_DIR"] = old


def _creds(url: str) -> list[str]:
    return ["--os-auth-url", url, "--os-username", "admin", "--os-password", PASSWORD, "--os-project-name", "admin"]


def test_keystoneauth_against_real_keystone(keystone):
    auth = v3.Password(auth_url=keystone.url, username="bench-0", password=PASSWORD, project_name="bench",
                       user_domain_name="Default", project_domain_name="Default")  # fmt: skip
    token = session.Session(auth=auth).get_token()
    assert token.startswith("gAAAAA")  # a Fernet token


@pytest.mark.parametrize("scenario, start", [("keystone.issue", "30"), ("keystone.validate", "60")])
def test_quick_capacity_on_real_keystone(keystone, tmp_path, scenario, start):
    proc = run_redline(
        "capacity", "--scenario", scenario, *_creds(keystone.url), "--users", "bench-{0..3}", "--users-project", "bench",
        "--protocol", "quick", "--start", start, "--resolution", "40%", "--cpus", GEN,
        "--results", str(tmp_path), "--json", timeout=300,
    )  # fmt: skip
    out, doc = found_search(proc, cores=len(TARGET_CPUS or CPUS))
    print(f"{scenario}: N = {out['outcome']['n']:g}/s\n{probe_table(doc)}")
    assert Path(out["report"]).is_file()
    assert doc["target"]["lab"]["kind"] == "keystone" and doc["target"]["lab"]["cache"] == "memcached"
    assert doc["target"]["scenario"]["password_hash_rounds"] == 4
    for f in Path(out["run_dir"]).rglob("*"):
        if f.is_file():
            assert PASSWORD.encode() not in f.read_bytes() and b"gAAAAA" not in f.read_bytes(), f


def test_up_twice_down_twice(keystone, tmp_path):
    env_dir = ["--state-dir", os.environ["REDLINE_LAB_DIR"] + "/keystone"]
    again = run_redline("lab", "keystone", "up", *env_dir)
    assert "already running" in assert_one_line_error(again)
    other = tmp_path / "none"
    down = run_redline("lab", "keystone", "down", "--state-dir", str(other))
    assert down.returncode == 0 and "nothing to stop" in down.stderr and down.stderr.count("\n") == 1
    status = run_redline("lab", "keystone", "status", *env_dir)
    assert status.returncode == 0 and "running at" in status.stdout and PASSWORD not in status.stdout


def test_bad_credentials_stop_before_the_run(keystone, tmp_path):
    wrong = [
        "--os-auth-url",
        keystone.url,
        "--os-username",
        "admin",
        "--os-password",
        "not-" + PASSWORD,
        "--os-project-name",
        "admin",
    ]
    proc = run_redline("capacity", "--scenario", "keystone.issue", *wrong, "--results", str(tmp_path))
    line = assert_one_line_error(proc)
    assert "401" in line and PASSWORD not in proc.stderr + proc.stdout
    assert not any(tmp_path.iterdir())  # nothing measured, no run folder


def test_keystone_killed_mid_run(keystone, tmp_path):
    """Last in the module: kills the server (the fixture's `down` then stops memcached)."""
    proc = subprocess.Popen(
        redline_cmd("run", "--scenario", "keystone.validate", *_creds(keystone.url), "--token-pool", "5",
                    "--rate", "20", "--duration", "20", "--cpus", GEN, "--results", str(tmp_path)),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        time.sleep(5)
        os.killpg(keystone.pid, signal.SIGKILL)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 3, err
    errors = [l for l in err.splitlines() if l.startswith("redline: error:")]
    assert len(errors) == 1 and "Traceback" not in err, err
    assert not group_members(keystone.pid)
