"""py-spy on real processes: a busy Python child, a forked worker, and the ways it cannot
profile (not Python, no such pid, no binary) ending as an error sentence, not an exception."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil
import pytest

from redline.analysis.profile_stacks import parse_collapsed, summarise
from redline.profile import PTRACE_NEEDED, Profiler, is_python, pyspy_binary, read_collapsed
from redline.profile.pyspy import NO_BINARY, ptrace_refused

pytestmark = pytest.mark.skipif(
    pyspy_binary() is None or ptrace_refused(), reason="py-spy missing or ptrace not permitted here"
)

BUSY = """\
import os, sys, time

def burn_cpu(n):
    s = 0
    for i in range(n):
        s += i * i
    return s

def forked_worker():
    end = time.monotonic() + 60
    while time.monotonic() < end:
        burn_cpu(20000)

if "fork" in sys.argv and os.fork() == 0:
    forked_worker()
    os._exit(0)
print("ready", flush=True)
end = time.monotonic() + 60  # bounded even if the test forgets it
while time.monotonic() < end:
    burn_cpu(20000)
"""

CPUS = sorted(os.sched_getaffinity(0))


def _busy(tmp_path: Path, *args: str) -> subprocess.Popen[str]:
    script = tmp_path / "busy.py"
    script.write_text(BUSY)
    p = subprocess.Popen([sys.executable, str(script), *args], stdout=subprocess.PIPE, text=True)
    assert p.stdout is not None and p.stdout.readline().strip() == "ready"
    return p


def _kill_tree(p: subprocess.Popen[str]) -> None:
    try:
        kids = psutil.Process(p.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        kids = []
    for k in kids:
        k.kill()
    p.kill()
    p.wait(10)
    psutil.wait_procs(kids, timeout=5)


def test_a_busy_child_is_profiled_and_burn_cpu_is_on_top(tmp_path):
    p = _busy(tmp_path)
    try:
        out = tmp_path / "probes" / "00-10" / "profile.txt.gz"
        profiler = Profiler([p.pid], out, rate_hz=100, cpus=(CPUS[0],)).start()
        time.sleep(1.0)
        # Every thread of py-spy, the sampling ones created after exec included, is pinned.
        spy = profiler._spies[0].proc.pid
        threads = [int(t) for t in os.listdir(f"/proc/{spy}/task")]
        assert threads and all(os.sched_getaffinity(t) == {CPUS[0]} for t in threads)
        time.sleep(1.0)
        run = profiler.stop()
    finally:
        _kill_tree(p)
    assert run.error is None, run
    assert run.path == out and out.is_file() and out.read_bytes()[:2] == b"\x1f\x8b"
    assert not list(out.parent.glob("*.part")) and not list(out.parent.glob("*.tmp"))
    assert run.pids == (p.pid,)
    assert 1.9 < run.seconds < 5
    assert run.cpu_s is not None and 0 < run.cpu_s < run.seconds
    text = read_collapsed(out)
    assert text.startswith(f'process {p.pid}:"')
    stacks = parse_collapsed(text)
    s = summarise(stacks, run.pids, run.rate_hz, run.seconds, "probes/00-10/profile.txt.gz", None, cpu_s=run.cpu_s)
    assert s.samples > 100  # ~200 at 100 Hz for 2 s of a busy process
    top = s.top_self[0]
    assert top.function == "burn_cpu" and top.self_share > 0.5, s.top_self
    assert top.file == str(tmp_path / "busy.py")  # whole paths (--full-filenames)
    assert s.cpu_s == round(run.cpu_s, 3)
    assert profiler.stop() is run  # stopping again changes nothing


def test_forked_workers_are_covered_through_their_parent(tmp_path):
    p = _busy(tmp_path, "fork")
    try:
        tree = [p.pid] + [c.pid for c in psutil.Process(p.pid).children(recursive=True)]
        assert len(tree) == 2
        # The whole tree is given; one py-spy on the parent covers the child (--subprocesses).
        with Profiler(tree, tmp_path / "p.txt.gz") as prof:
            time.sleep(1.5)
        run = prof.run
    finally:
        _kill_tree(p)
    assert run is not None and run.error is None and run.path is not None, run
    assert set(run.pids) == set(tree)
    text = read_collapsed(run.path)
    assert f'process {p.pid}:"' in text and f'process {tree[1]}:"' in text
    stacks = parse_collapsed(text)
    assert any(f.startswith("forked_worker ") for s in stacks for f in s)
    assert not any(f.startswith("process ") for s in stacks for f in s)


def test_a_non_python_process_is_an_error_not_an_exception(tmp_path):
    sleeper = subprocess.Popen(["sleep", "30"])
    try:
        assert not is_python(sleeper.pid)
        run = Profiler([sleeper.pid], tmp_path / "profile.txt.gz").start().stop()
    finally:
        sleeper.kill()
        sleeper.wait()
    assert run.path is None and run.cpu_s is None
    assert run.error is not None and "no Python process" in run.error and "sleep" in run.error
    assert run.skipped == (sleeper.pid,)
    assert not (tmp_path / "profile.txt.gz").exists()


def test_non_python_members_of_a_tree_are_skipped_and_noted(tmp_path):
    p = _busy(tmp_path)
    sleeper = subprocess.Popen(["sleep", "30"])
    try:
        profiler = Profiler([sleeper.pid, p.pid], tmp_path / "profile.txt.gz").start()
        time.sleep(0.5)
        run = profiler.stop()
    finally:
        sleeper.kill()
        sleeper.wait()
        _kill_tree(p)
    assert run.error is None and run.pids == (p.pid,) and run.skipped == (sleeper.pid,)
    assert any("sleep" in n for n in run.notes)


def test_a_pid_that_does_not_exist_is_an_error(tmp_path):
    gone = subprocess.Popen(["true"])
    gone.wait()  # reaped: its pid names no process now
    run = Profiler([gone.pid], tmp_path / "profile.txt.gz").start().stop()
    assert run.path is None and run.error is not None and "not running" in run.error, run


def test_a_target_that_exits_under_py_spy_ends_well(tmp_path):
    p = _busy(tmp_path)
    profiler = Profiler([p.pid], tmp_path / "profile.txt.gz").start()
    time.sleep(0.3)
    _kill_tree(p)
    # stop() must return by itself once its process has gone (py-spy ends with it); it is
    # given a generous 60 s on this shared machine, and what is asserted is that it returned.
    result: list = []
    stopper = threading.Thread(target=lambda: result.append(profiler.stop()), daemon=True)
    stopper.start()
    stopper.join(timeout=60)
    assert not stopper.is_alive() and len(result) == 1, "Profiler.stop() did not return within 60 s"
    (run,) = result
    # py-spy stops by itself when its process goes, and writes what it had
    assert (
        run.error is None and run.path is not None
    ) or run.error == f"process {p.pid} ended before py-spy could read it", run


def test_no_binary_is_an_error(tmp_path, monkeypatch):
    p = _busy(tmp_path)
    try:
        monkeypatch.setattr("redline.profile.pyspy.pyspy_binary", lambda: None)
        none = Profiler([p.pid], tmp_path / "x.txt.gz").start().stop()
        missing = Profiler([p.pid], tmp_path / "x.txt.gz", binary=str(tmp_path / "no-py-spy")).start().stop()
    finally:
        _kill_tree(p)
    assert none.error == NO_BINARY and none.path is None
    assert missing.error is not None and missing.error.startswith("py-spy could not be started:")


def test_the_refusal_sentence_says_what_is_needed():
    assert PTRACE_NEEDED == "py-spy needs root or ptrace permission (CAP_SYS_PTRACE, or kernel.yama.ptrace_scope=0)"


def test_stopped_before_started():
    run = Profiler([os.getpid()], Path("/nonexistent/profile.txt.gz")).stop()
    assert run.error == "the profile was stopped before it started"


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("setpriv") is None, reason="needs root and setpriv")
def test_a_refused_attach_says_what_is_needed(tmp_path):
    # py-spy run as nobody against a root process: the kernel refuses to let it read memory.
    spy_dir = Path(tempfile.mkdtemp(prefix="redline-test-py-spy-"))
    try:
        spy_dir.chmod(0o755)
        copy = spy_dir / "py-spy"
        shutil.copy2(pyspy_binary(), copy)
        wrapper = spy_dir / "as-nobody"
        wrapper.write_text(f'#!/bin/sh\nexec setpriv --reuid=65534 --regid=65534 --clear-groups {copy} "$@"\n')
        wrapper.chmod(0o755)
        p = _busy(tmp_path)
        try:
            run = Profiler([p.pid], tmp_path / "profile.txt.gz", binary=str(wrapper)).start().stop()
        finally:
            _kill_tree(p)
    finally:
        shutil.rmtree(spy_dir, ignore_errors=True)
    assert run.error == PTRACE_NEEDED and run.path is None, run
