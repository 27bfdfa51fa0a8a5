"""`redline study` end to end on the reference identity service: a lab that does not come up
is a failed cell and the study goes on; a study killed during cell k resumes at cell k;
SIGTERM stops it with 143 and the lab down; nothing it writes holds the lab's password."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import psutil
import pytest

from conftest import GEN_CPUS, TARGET_CPUS, redline_cmd, run_redline

GEN = ",".join(map(str, GEN_CPUS))
TARGET = ",".join(map(str, TARGET_CPUS or GEN_CPUS))
PASSWORD_RE = re.compile(rb"study-[0-9a-f]{24}")


def _study_file(tmp_path: Path, name: str, body: str, duration: float = 2) -> Path:
    f = tmp_path / f"{name}.yaml"
    f.write_text(
        f"study: {name}\ntarget: identity\n"
        f"lab: {{hash-rounds: 4, users: 2, cpus: '{TARGET}'}}\n"
        f"job:\n  command: run\n  options: {{scenario: keystone.issue, rate: 10, duration: {duration}, "
        f"cpus: '{GEN}', profile: false, users: 'bench-{{0..1}}', users-project: bench}}\n" + body
    )
    return f


def _state(folder: Path) -> dict:
    return json.loads((folder / "study.json").read_text())


def _statuses(folder: Path) -> dict[str, tuple[str, int]]:
    return {r["id"]: (r["status"], r["attempts"]) for r in _state(folder)["records"]}


@pytest.fixture(autouse=True)
def labs(tmp_path, monkeypatch) -> Path:
    """The cells' lab state goes under REDLINE_LAB_DIR/study/<name>/<target>: here, the test's."""
    monkeypatch.setenv("REDLINE_LAB_DIR", str(tmp_path / "labs"))
    return tmp_path / "labs"


def _lab_processes(labs: Path) -> list[str]:
    """Processes of the study's labs: their command lines hold their state directory."""
    found = []
    for p in psutil.process_iter(["cmdline"]):
        cmd = " ".join(p.info["cmdline"] or [])
        if str(labs) in cmd:
            found.append(cmd)
    return found


def _wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def _start_study(f: Path, results: Path) -> subprocess.Popen:
    """A study in the background, to be killed or signalled while a cell runs."""
    return subprocess.Popen(
        redline_cmd("study", str(f), "--results", str(results)),
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def _no_secret(folder: Path) -> None:
    for f in folder.rglob("*"):
        if f.is_file():
            assert not PASSWORD_RE.search(f.read_bytes()), f


def test_failed_lab_is_recorded_and_the_study_completes(tmp_path, labs):
    f = _study_file(
        tmp_path, "fails", "matrix: {workers: [1]}\nvariants:\n  - {name: no such cpu, lab: {cpus: '63'}}\n"
    )
    proc = run_redline("study", str(f), "--results", str(tmp_path / "r"), "--json", timeout=240)
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == "redline: error: study complete: 1 of 2 cells done, 1 failed"
    folder = tmp_path / "r" / "fails"
    out = json.loads(proc.stdout)
    done, failed = out["cells"]
    assert done["status"] == "done" and done["metric"] == "p99 ms" and done["value"] > 0
    run = json.loads((folder / done["run_dir"] / "run.json").read_text())  # the figure traces to its run folder
    assert "target" in run["monitor"]["groups"], run["monitor"]["groups"]  # the cell's lab, found by its URL
    assert failed["status"] == "failed" and "lab identity up failed" in failed["limit"]
    assert "CPU list '63' is not within the CPUs available here" in failed["limit"]
    html = (folder / "study.html").read_text()
    assert "no such cpu" in html and "lab identity up failed" in html
    rec = {r["id"]: r for r in _state(folder)["records"]}
    assert rec["01-r1"]["commands"][0][3:6] == ["lab", "identity", "up"] and rec["01-r1"]["lab_state"] is None
    assert str(labs / "study" / "fails" / "identity") in rec["01-r1"]["commands"][0]
    assert (folder / "study.yaml").read_text() == f.read_text()
    assert not _lab_processes(labs)
    _no_secret(folder)
    # Started again: everything is finished, nothing runs, the same table comes back.
    again = run_redline("study", str(f), "--results", str(tmp_path / "r"), "--json", timeout=60)
    assert again.returncode == 1 and "resuming" in again.stderr and "(kept)" in again.stderr
    assert _statuses(folder) == {"01-r1": ("done", 1), "02-r1": ("failed", 1)}


def test_killed_during_cell_k_resumes_at_cell_k(tmp_path, labs):
    f = _study_file(tmp_path, "resume", "matrix: {workers: [1, 2, 3]}\n", duration=5)
    results = tmp_path / "r"
    folder = results / "resume"
    proc = _start_study(f, results)
    try:
        _wait_for(lambda: (folder / "cells" / "02-r1" / "attempt-1" / "job.log").exists(), 180, "cell 2's job")
        time.sleep(1.0)
        assert _statuses(folder)["01-r1"] == ("done", 1)
        assert _statuses(folder)["02-r1"] == ("running", 1)
        proc.kill()  # a crash: no cleanup at all
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    again = run_redline("study", str(f), "--results", str(results), "--json", timeout=240)
    assert again.returncode == 0, again.stderr
    assert "resuming" in again.stderr and "1 of 3 cells finished before" in again.stderr
    assert "attempt 1 was running: running it again" in again.stderr
    assert _statuses(folder) == {"01-r1": ("done", 1), "02-r1": ("done", 2), "03-r1": ("done", 1)}
    assert (folder / "cells" / "02-r1" / "attempt-1").is_dir()  # the killed attempt's folder kept
    state = _state(folder)
    assert len(state["resumed"]) == 1 and all(r["lab_state"] is None for r in state["records"])
    _wait_for(lambda: not _lab_processes(labs), 30, "the killed cell's lab to be down")
    cells = json.loads(again.stdout)["cells"]
    assert [c["status"] for c in cells] == ["done"] * 3 and all(c["value"] for c in cells)
    assert json.loads(again.stdout)["effects"][0]["factor"] == "workers"
    _no_secret(folder)


def test_sigterm_stops_with_143_lab_down_and_resumes(tmp_path, labs):
    f = _study_file(tmp_path, "term", "matrix: {workers: [1, 2]}\n", duration=8)
    results = tmp_path / "r"
    folder = results / "term"
    proc = _start_study(f, results)
    _wait_for(lambda: (folder / "cells" / "01-r1" / "attempt-1" / "job.log").exists(), 120, "cell 1's job")
    time.sleep(3.0)
    os.kill(proc.pid, signal.SIGTERM)
    _out, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err
    assert "Traceback" not in err and "redline: study terminated; started again" in err
    rec = _state(folder)["records"][0]
    assert rec["status"] == "interrupted" and rec["exit_code"] == 143 and rec["lab_state"] is None
    assert rec["run_dir"] and (folder / rec["run_dir"] / "run.json").is_file()  # what was measured, kept
    assert not _lab_processes(labs)
    again = run_redline("study", str(f), "--results", str(results), timeout=240)
    assert again.returncode == 0, again.stderr
    assert _statuses(folder) == {"01-r1": ("done", 2), "02-r1": ("done", 1)}
