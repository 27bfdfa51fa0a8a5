"""Stopping processes and waiting for conditions: one way, on psutil, for the lab and the
identity service alike.

A zombie counts as gone throughout: the daemons the lab starts are reparented to this
machine's init, which does not always reap them, and a zombie still answers kill(0).
Signals go through psutil, which refuses to signal a pid that was reused by another
process since it was looked up.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Callable, Iterable
from typing import TypeVar, overload

import psutil

from redline.errors import UserError

T = TypeVar("T")

STOP_TIMEOUT_S = 10.0
KILL_WAIT_S = 5.0  # SIGKILL cannot be refused; only a process stuck in the kernel takes longer
POLL_S = 0.05


@overload
def wait_until(
    predicate: Callable[[], T], timeout_s: float, interval_s: float = POLL_S, what: None = None
) -> T | None: ...
@overload
def wait_until(predicate: Callable[[], T], timeout_s: float, interval_s: float = POLL_S, *, what: str) -> T: ...
def wait_until(
    predicate: Callable[[], T], timeout_s: float, interval_s: float = POLL_S, what: str | None = None
) -> T | None:
    """The predicate's first truthy value, asked every `interval_s` until `timeout_s` has passed.

    It is asked at least once, and once more at the deadline. On timeout: None, or, given
    `what` (what did not happen, e.g. "memcached did not listen on …"), a UserError
    "<what> within <timeout> s". The predicate may raise to give up early.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        got = predicate()
        if got:
            return got
        if time.monotonic() >= deadline:
            break
        time.sleep(interval_s)
    if what is None:
        return None
    raise UserError(f"{what} within {timeout_s:g} s")


def alive(pid: int) -> bool:
    """Whether `pid` runs (a zombie does not)."""
    if pid <= 0:
        return False
    try:
        running: bool = psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
        return running
    except psutil.NoSuchProcess:
        return False
    except psutil.AccessDenied:
        return True


def running_as(pid: int, name: str) -> bool:
    """Whether `pid` runs and still is the program `name`, not another that got the pid later."""
    try:
        return alive(pid) and psutil.Process(pid).name() == name
    except psutil.Error:
        return False


def group_members(pgid: int) -> list[int]:
    """Live processes whose process group is `pgid`."""
    out = []
    for p in psutil.process_iter(["status"]):
        if p.info["status"] == psutil.STATUS_ZOMBIE:
            continue
        try:
            if os.getpgid(p.pid) == pgid:
                out.append(p.pid)
        except OSError:
            continue
    return out


def stop(
    *pids: int,
    timeout_s: float = STOP_TIMEOUT_S,
    sig: int = signal.SIGTERM,
    children: bool = False,
    group: bool = False,
) -> None:
    """Send `sig` to each pid, wait up to `timeout_s` for them to go, then SIGKILL what is left.

    children: its direct children are SIGKILLed at the end as well, even when the process
    itself went in time (PostgreSQL's backends run in their own sessions, outside its group).
    group: each pid leads its own process group, and the whole group is SIGKILLed at the
    end (helpers it started would otherwise outlive it), even when the leader is gone.
    Returns once everything signalled is gone, or KILL_WAIT_S after the SIGKILL.
    """
    procs = [p for p in map(_process, pids) if p is not None]
    kids = [c for p in procs for c in _children(p)] if children else []
    _signal(procs, sig)
    victims = _wait_gone(procs, timeout_s)
    if children:
        victims += kids + [c for p in victims for c in _children(p)]
    _signal(victims, signal.SIGKILL)
    if group:
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)

    def settled() -> bool:
        return all(_gone(p) for p in victims) and not (group and any(group_members(pid) for pid in pids))

    wait_until(settled, KILL_WAIT_S)


def _process(pid: int) -> psutil.Process | None:
    try:
        return psutil.Process(pid) if pid > 0 else None
    except psutil.NoSuchProcess:
        return None


def _children(proc: psutil.Process) -> list[psutil.Process]:
    try:
        children: list[psutil.Process] = proc.children()
        return children
    except psutil.NoSuchProcess:
        return []


def _signal(procs: Iterable[psutil.Process], sig: int) -> None:
    for p in procs:
        with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
            p.send_signal(sig)


def _gone(proc: psutil.Process) -> bool:
    """Exited (a zombie included, reaped here when it is our own child) or replaced by a pid reuse."""
    try:
        if not proc.is_running():
            return True
        if proc.status() != psutil.STATUS_ZOMBIE:
            return False
    except psutil.NoSuchProcess:
        return True
    with contextlib.suppress(psutil.TimeoutExpired, psutil.NoSuchProcess, ChildProcessError):
        proc.wait(0)
    return True


def _wait_gone(procs: list[psutil.Process], timeout_s: float) -> list[psutil.Process]:
    """Those of `procs` still running after up to `timeout_s`."""
    left = list(procs)

    def none_left() -> bool:
        left[:] = [p for p in left if not _gone(p)]
        return not left

    wait_until(none_left, timeout_s)
    return left
