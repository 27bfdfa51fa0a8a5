"""Bad input and failing targets end in one clear line and a non-zero exit, keeping what was measured."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import GEN_CPUS, assert_one_line_error, redline_cmd, run_redline
from redline.model.samples import RequestOutcome
from redline.store import RunFolder


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
        (["--rate", "5", "--slack", "5000"], "the dispatch slack must be between 0 and 1000 µs"),
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
    s = RunFolder.open(run_dir).read_samples()
    assert len(s) == 1500
    ok = s.outcome == RequestOutcome.OK
    assert np.count_nonzero(ok) > 50  # the first seconds were measured and kept
    assert np.count_nonzero(s.outcome == RequestOutcome.UNSENT_ABORTED) > 500
    # every answer precedes every abandoned row: nothing after the death is invented
    assert s.intended_ns[ok].max() < s.intended_ns[s.outcome == RequestOutcome.UNSENT_ABORTED].min()
    assert np.all(s.outcome >= 0)


@pytest.mark.slow
@pytest.mark.parametrize(
    "sig, code, word",
    [(signal.SIGINT, 130, "interrupted"), (signal.SIGTERM, 143, "terminated")],  # 128 + the signal number
)
def test_a_signal_keeps_what_was_measured_and_marks_the_run_interrupted(calibrated, tmp_path, sig, code, word):
    lab = calibrated(servers=4, service_ms=5)
    proc = subprocess.Popen(
        redline_cmd("run", "--url", lab.url + "/", "--rate", "100", "--duration", "30", "--cpus", str(GEN_CPUS[0]), "--results", str(tmp_path)),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    time.sleep(5)
    proc.send_signal(sig)
    _out, err = proc.communicate(timeout=30)
    assert proc.returncode == code, err
    assert "Traceback" not in err and f"redline: run {word}; what was measured is in " in err
    run_dir = _only_run_dir(tmp_path)
    doc = json.loads((run_dir / "run.json").read_text())
    assert doc["status"] == "interrupted"
    s = RunFolder.open(run_dir).read_samples()
    assert len(s) == 3000
    ok = np.count_nonzero(s.outcome == RequestOutcome.OK)
    assert 50 < ok < 1000  # about 5 s at 100/s, less the workers' start on a busy machine
    assert np.count_nonzero(s.outcome == RequestOutcome.UNSENT_INTERRUPTED) == 3000 - ok


@pytest.mark.slow
def test_a_run_killed_outright_leaves_its_parts_readable_by_the_report(calibrated, tmp_path):
    lab = calibrated(servers=4, service_ms=5)
    proc = subprocess.Popen(
        redline_cmd("run", "--url", lab.url + "/", "--rate", "200", "--duration", "60", "--cpus", str(GEN_CPUS[0]), "--results", str(tmp_path)),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60  # a bound on the wait, not a measurement
        while not list(tmp_path.glob("*/samples/w*.npz")) and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(1.0)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the parent and its workers, no chance to clean up
        proc.wait(timeout=10)
    run_dir = _only_run_dir(tmp_path)
    assert json.loads((run_dir / "run.json").read_text())["status"] == "running"
    s = RunFolder.open(run_dir).read_samples()
    assert 200 <= len(s) < 12_000  # at least one whole part (5 s of the run), never the whole schedule
    assert np.all(s.outcome >= 0) and np.all(s.done_ns[s.outcome == RequestOutcome.OK] > 0)  # only finished rows
    assert np.all(np.diff(s.intended_ns) > 0)  # the first rows of the schedule, each once
    assert np.count_nonzero(s.outcome == RequestOutcome.OK) >= 0.99 * len(s)
    report = run_redline("report", str(run_dir), timeout=120)
    assert report.returncode == 0, report.stderr
    html = (run_dir / "report.html").read_text()
    assert "samples/ is missing" not in html and "could not be read" not in html


class _OneShotServer:
    """A real TCP server on 127.0.0.1 answering every connection with `reply`, then closing it."""

    def __init__(self, reply: bytes) -> None:
        import threading

        self.reply = reply
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            with conn:
                conn.settimeout(2)
                data = b""
                while b"\r\n\r\n" not in data:
                    chunk = conn.recv(4096)
                    if not chunk:
                        break
                    data += chunk
                if b"\r\n\r\n" not in data:
                    continue  # the engine's preflight connect: no request
                self.connections += 1
                conn.sendall(self.reply)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self.sock.close()


def _run_against(reply: bytes, count: int = 10):
    from redline.load.engine import LoadPlan, run_load
    from redline.load.request import RequestTemplate, Target
    from redline.load.schedule import Schedule

    server = _OneShotServer(reply)
    try:
        plan = LoadPlan(
            target=Target.from_url(f"http://127.0.0.1:{server.port}/"),
            request=RequestTemplate(),
            schedule=Schedule(rate=count / 0.5, duration_s=0.5),
            workers=1,
            cpus=GEN_CPUS,
            read_timeout_s=3,
        )
        return run_load(plan).samples, server.connections
    finally:
        server.close()


@pytest.mark.parametrize(
    "reply",
    [
        b"HTTP/1.0 200 OK\r\n\r\nbody",
        b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Type: text/plain\r\n\r\nbody ends at close",
    ],
    ids=["http1.0", "http1.1-close"],
)
def test_body_delimited_by_close_is_a_complete_response(reply):
    samples, connections = _run_against(reply)
    assert len(samples) == 10
    assert np.all(samples.outcome == RequestOutcome.OK), samples.outcome
    assert np.all(samples.status == 200)
    assert np.all(samples.bytes_in == len(reply))
    assert connections == 10  # never reused: each request had its own connection


@pytest.mark.parametrize(
    "reply",
    [
        b"HTTP/1.1 200 OK\r\nContent-Le",  # closed mid-headers
        b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort",  # framed body cut short
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab",  # chunked body cut short
    ],
    ids=["mid-headers", "short-length", "short-chunked"],
)
def test_connection_closed_mid_response_is_still_reset(reply):
    samples, _ = _run_against(reply)
    assert len(samples) == 10
    assert np.all(samples.outcome == RequestOutcome.RESET), samples.outcome
    assert np.all(samples.status == 0)
