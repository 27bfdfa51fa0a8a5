"""Bad input and failing targets end in one clear line and a non-zero exit, keeping what was measured."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import GEN_CPUS, assert_one_line_error, redline_cmd, run_redline
from redline.model.samples import RequestOutcome
from redline.store.npz import read_samples


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_refused_connection(tmp_path):
    proc = run_redline(
        "run",
        "--url",
        f"http://127.0.0.1:{_closed_port()}/",
        "--rate",
        "10",
        "--duration",
        "1",
        "--results",
        str(tmp_path),
    )
    line = assert_one_line_error(proc)
    assert "refused" in line and proc.returncode == 3


def test_unresolvable_host(tmp_path):
    proc = run_redline(
        "run", "--url", "http://no-such-host.invalid/", "--rate", "10", "--duration", "1", "--results", str(tmp_path)
    )
    assert "cannot resolve" in assert_one_line_error(proc)


@pytest.mark.parametrize(
    "args, words",
    [
        (["--rate", "-5"], "--rate must be positive"),
        (["--rate", "ten"], "--rate"),
        (["--arrival", "zigzag", "--rate", "5"], "--arrival"),
        (["--cpus", "99", "--rate", "5"], "CPU list"),
        (["--rate", "5", "-H", "no colon here"], "bad header"),
        (["--rate", "5", "--body-file", "/nonexistent/body.json"], "cannot read body file"),
        (["--rate", "5", "--warmup", "5", "--duration", "0"], "--duration must be positive"),
        (["--no-such-option"], "No such option"),
    ],
)
def test_bad_options(args, words, tmp_path):
    proc = run_redline("run", "--url", "http://127.0.0.1:9/", "--results", str(tmp_path), *args)
    assert words in assert_one_line_error(proc)


def test_bad_url(tmp_path):
    proc = run_redline("run", "--url", "ftp://127.0.0.1/", "--rate", "1", "--results", str(tmp_path))
    assert "not an http(s) URL" in assert_one_line_error(proc)


def _only_run_dir(results: Path) -> Path:
    dirs = [p for p in results.iterdir() if p.is_dir()]
    assert len(dirs) == 1, dirs
    return dirs[0]


@pytest.mark.slow
def test_target_dying_mid_run_keeps_what_was_measured(calibrated, tmp_path):
    lab = calibrated(servers=4, service_ms=5)
    proc = subprocess.Popen(
        redline_cmd("run", "--url", lab.url + "/", "--rate", "100", "--duration", "15", "--cpus", str(GEN_CPUS[0]), "--results", str(tmp_path)),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    time.sleep(5)
    lab.proc.kill()
    out, err = proc.communicate(timeout=30)
    done = subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
    line = assert_one_line_error(done)
    assert "target stopped accepting connections" in line and done.returncode == 3
    run_dir = _only_run_dir(tmp_path)
    doc = json.loads((run_dir / "run.json").read_text())
    assert doc["status"] == "abandoned"
    s = read_samples(run_dir / "samples.npz")
    assert len(s) == 1500
    ok = s.outcome == RequestOutcome.OK
    assert np.count_nonzero(ok) > 50  # the first seconds were measured and kept
    assert np.count_nonzero(s.outcome == RequestOutcome.UNSENT_ABORTED) > 500
    # every answer precedes every abandoned row: nothing after the death is invented
    assert s.intended_ns[ok].max() < s.intended_ns[s.outcome == RequestOutcome.UNSENT_ABORTED].min()
    assert np.all(s.outcome >= 0)


@pytest.mark.slow
def test_sigint_keeps_what_was_measured_and_marks_the_run_interrupted(calibrated, tmp_path):
    lab = calibrated(servers=4, service_ms=5)
    proc = subprocess.Popen(
        redline_cmd("run", "--url", lab.url + "/", "--rate", "100", "--duration", "30", "--cpus", str(GEN_CPUS[0]), "--results", str(tmp_path)),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    time.sleep(5)
    proc.send_signal(signal.SIGINT)
    _out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "interrupted" in err
    run_dir = _only_run_dir(tmp_path)
    doc = json.loads((run_dir / "run.json").read_text())
    assert doc["status"] == "interrupted"
    s = read_samples(run_dir / "samples.npz")
    assert len(s) == 3000
    ok = np.count_nonzero(s.outcome == RequestOutcome.OK)
    assert 50 < ok < 1000  # about 5 s at 100/s, less the workers' start on a busy machine
    assert np.count_nonzero(s.outcome == RequestOutcome.UNSENT_INTERRUPTED) == 3000 - ok
