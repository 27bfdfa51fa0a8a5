"""redline.procs: stopping real processes (TERM first, KILL after the timeout) and waiting.

No assertion here is on how long something took on this (shared) machine: which signals
were sent, in which order, and what became of the process are asserted instead; the
timeout arithmetic is checked on a virtual clock (`VirtualClock`), where it is exact.
"""

from __future__ import annotations

import signal
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


class VirtualClock:
    """Stands in for `procs.time`: `monotonic()` moves only by what `sleep()` was asked for.

    real_sleep: also sleep that long for real (a real process needs the time to react).
    """

    def __init__(self, real_sleep: bool = False) -> None:
        self.now = 0.0
        self.real_sleep = real_sleep

    def monotonic(self) -> float:
        return self.now

    def sleep(self, s: float) -> None:
        if self.real_sleep:
            time.sleep(s)
        self.now += s


def _signals_sent(monkeypatch, clock: VirtualClock | None = None) -> list[tuple[int, list[int], float]]:
    """Every call to procs._signal as (signal, pids, virtual time), the real signal still sent."""
    sent: list[tuple[int, list[int], float]] = []
    real = procs._signal

    def spy(targets, sig):
        targets = list(targets)
        sent.append((int(sig), [t.pid for t in targets], clock.now if clock else 0.0))
        real(targets, sig)

    monkeypatch.setattr(procs, "_signal", spy)
    return sent


def test_wait_until_returns_the_first_truthy_value_or_none_or_raises(monkeypatch):
    calls = iter([None, 0, "found"])
    assert procs.wait_until(lambda: next(calls), 5, 0.001) == "found"
    # Asked at once, every interval, and once more at the deadline, then None: on a virtual
    # clock with binary fractions (exact in floating point) that is 0, .125, .25, .375, .5.
    clock = VirtualClock()
    monkeypatch.setattr(procs, "time", clock)
    asked: list[float] = []
    assert procs.wait_until(lambda: asked.append(clock.now), 0.5, 0.125) is None
    assert asked == [0.0, 0.125, 0.25, 0.375, 0.5]
    with pytest.raises(UserError, match=r"^x did not happen within 0.1 s$"):
        procs.wait_until(lambda: None, 0.1, 0.01, what="x did not happen")


def test_a_cooperative_process_goes_at_sigterm_and_is_collected(monkeypatch):
    p = subprocess.Popen(["sleep", "60"])
    sent = _signals_sent(monkeypatch)
    # A timeout far longer than any busy moment of this machine: `sleep` dies of the
    # SIGTERM itself, so no SIGKILL may be sent to it, however slow the host is.
    procs.stop(p.pid, timeout_s=60)
    assert [(sig, pids) for sig, pids, _ in sent] == [(signal.SIGTERM, [p.pid]), (signal.SIGKILL, [])]
    assert not procs.alive(p.pid) and not psutil.pid_exists(p.pid)  # reaped, not a zombie


def test_sigkill_follows_after_the_timeout(monkeypatch):
    p = _ignoring_term()
    clock = VirtualClock(real_sleep=True)
    monkeypatch.setattr(procs, "time", clock)
    sent = _signals_sent(monkeypatch, clock)
    procs.stop(p.pid, timeout_s=0.3)
    (term, term_pids, term_at), (kill, kill_pids, kill_at) = sent
    assert (term, term_pids) == (signal.SIGTERM, [p.pid]) and (kill, kill_pids) == (signal.SIGKILL, [p.pid])
    # It ignored SIGTERM, so SIGKILL came only once the whole timeout had passed on stop's clock.
    assert term_at == 0.0 and kill_at >= 0.3
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
