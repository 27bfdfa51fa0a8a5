"""redline.procs: stopping real processes (TERM first, KILL after the timeout) and waiting."""

from __future__ import annotations

import subprocess
import sys
import time

import psutil
import pytest

from redline import procs
from redline.errors import UserError

IGNORES_TERM = (
    "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('ready', flush=True); time.sleep(60)"
)


def _ignoring_term() -> subprocess.Popen:
    p = subprocess.Popen([sys.executable, "-c", IGNORES_TERM], stdout=subprocess.PIPE, text=True)
    assert p.stdout is not None and p.stdout.readline().strip() == "ready"
    return p


def test_wait_until_returns_the_first_truthy_value_or_none_or_raises():
    calls = iter([None, 0, "found"])
    assert procs.wait_until(lambda: next(calls), 5, 0.001) == "found"
    t0 = time.monotonic()
    assert procs.wait_until(lambda: False, 0.1, 0.01) is None
    assert 0.1 <= time.monotonic() - t0 < 1
    with pytest.raises(UserError, match=r"^x did not happen within 0.1 s$"):
        procs.wait_until(lambda: None, 0.1, 0.01, what="x did not happen")


def test_a_cooperative_process_goes_at_sigterm_and_is_collected():
    p = subprocess.Popen(["sleep", "60"])
    t0 = time.monotonic()
    procs.stop(p.pid, timeout_s=5)
    assert time.monotonic() - t0 < 2
    assert not procs.alive(p.pid) and not psutil.pid_exists(p.pid)  # reaped, not a zombie


def test_sigkill_follows_after_the_timeout():
    p = _ignoring_term()
    t0 = time.monotonic()
    procs.stop(p.pid, timeout_s=0.3)
    assert 0.3 <= time.monotonic() - t0 < 3
    assert not procs.alive(p.pid)


def test_group_stop_kills_members_that_outlive_the_leader():
    # The leader leaves at SIGTERM; its helper in the same group ignores it.
    leader = subprocess.Popen([sys.executable, "-c", f"import subprocess, sys, time; subprocess.Popen([sys.executable, '-c', {IGNORES_TERM!r}]); time.sleep(60)"],
                              start_new_session=True, stdout=subprocess.PIPE, text=True)  # fmt: skip
    assert leader.stdout is not None and leader.stdout.readline().strip() == "ready"
    assert len(procs.group_members(leader.pid)) == 2
    procs.stop(leader.pid, timeout_s=2, group=True)
    assert procs.group_members(leader.pid) == []


def test_children_are_killed_with_their_parent():
    parent = subprocess.Popen(["sh", "-c", "sleep 60 & sleep 61 & wait"])
    kids = procs.wait_until(
        lambda: psutil.Process(parent.pid).children() if len(psutil.Process(parent.pid).children()) == 2 else None, 5
    )
    assert kids
    procs.stop(parent.pid, timeout_s=2, children=True)
    assert not any(k.is_running() and k.status() != psutil.STATUS_ZOMBIE for k in kids)


def test_running_as_checks_the_program_name():
    p = subprocess.Popen(["sleep", "60"])
    try:
        assert procs.running_as(p.pid, "sleep") and not procs.running_as(p.pid, "libvirtd")
    finally:
        procs.stop(p.pid)
    assert not procs.running_as(p.pid, "sleep") and not procs.alive(0) and not procs.alive(-1)
