"""Storm core without a hypervisor: phase statistics, occupancy, the runner's one shared poll, cleanup."""

from __future__ import annotations

import os
import signal
import threading
import time

import numpy as np
import pytest

from redline.store.npz import read_storm_marks, write_storm_marks
from redline.storm.analysis import STATES, occupancy, phase_table, state_at, summarise
from redline.storm.model import InstanceSpec, StormPlan, StormResult
from redline.storm.probes import SshOutcome
from redline.storm.runner import run_storm

NAN = np.nan


def test_phase_table_min_median_p90_max():
    marks = np.array([
        [0.0, 1.0, 3.0, 4.0, 4.5, 5.0],
        [0.0, 2.0, 5.0, 7.0, 7.1, 9.0],
        [0.0, 3.0, NAN, NAN, 20.0, 21.0],  # never answered ping
    ])  # fmt: skip
    rows = {r.phase: r for r in phase_table(marks)}
    assert rows["create"].count == 3 and rows["create"].min_s == 1.0 and rows["create"].max_s == 3.0
    assert rows["create"].median_s == 2.0
    assert rows["ping"].count == 2 and rows["ping"].min_s == 2.0 and rows["ping"].max_s == 3.0
    assert rows["ssh"].count == 2
    assert rows["delete"].count == 3 and rows["delete"].max_s == pytest.approx(1.9)
    assert rows["requested→ssh"].max_s == 7.0
    assert rows["ping"].p90_s == pytest.approx(2.9)


def test_state_and_occupancy_follow_the_marks():
    marks = np.array([[0.0, 1.0, 2.0, 3.0, 4.0, 5.0], [1.0, 2.0, NAN, NAN, 6.0, 7.0]])
    st = state_at(marks, np.array([0.5, 1.5, 2.5, 6.5, 8.0]))
    names = [[STATES[k] for k in row] for row in st]
    assert names == [["create", "queued"], ["ping", "create"], ["ssh", "ping"], ["done", "delete"], ["done", "done"]]
    occ = occupancy(marks, np.array([0.5, 8.0]))
    assert occ["create"][0] == 0.5 and occ["queued"][0] == 0.5 and occ["done"][1] == 1.0
    total = sum(occ[s] for s in STATES)
    assert np.allclose(total, 1.0)


def test_result_round_trips(tmp_path):
    plan = StormPlan(2, 1)
    r = StormResult("abcd1234", "fake", plan, ("a", "b"), np.arange(12, dtype=float).reshape(2, 6), 123, ("", "boom"),
                    ("1.0 0.5", ""), ("note",), False, 13.0)  # fmt: skip
    write_storm_marks(tmp_path / "p.npz", r)
    back = read_storm_marks(tmp_path / "p.npz")
    assert back.names == r.names and back.errors == r.errors and back.plan == plan
    assert np.array_equal(back.marks_s, r.marks_s) and back.end_s == 13.0
    s = summarise(back)
    assert s.failed == 1 and s.first_active_s == 1.0 and s.last_active_s == 7.0


@pytest.mark.parametrize(
    "kw", [dict(count=0, concurrency=1), dict(count=1, concurrency=0), dict(count=1, concurrency=1, poll_interval_s=0)]
)
def test_plan_rejects_bad_values(kw):
    with pytest.raises(ValueError):
        StormPlan(**kw)


class FakeDriver:
    """A cloud in memory: instances run `boot_s` after launch, answer SSH `ssh_s` later."""

    name = "fake"

    def __init__(self, boot_s=0.2, ssh_s=0.2, fail_launch=(), hang=(), crash=()):
        self.boot_s, self.ssh_s = boot_s, ssh_s
        self.fail_launch, self.hang, self.crash = set(fail_launch), set(hang), set(crash)
        self.launched: dict[str, float] = {}
        self.deleted: set[str] = set()
        self.polls = 0
        self.cleaned = False
        self.in_flight = 0
        self.max_in_flight = 0
        self.lock = threading.Lock()

    def prepare(self, specs):
        return ["fake network"]

    def launch(self, spec):
        with self.lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            time.sleep(0.05)
            if spec.index in self.fail_launch:
                raise RuntimeError("quota exceeded")
            self.launched[spec.name] = time.monotonic()
        finally:
            with self.lock:
                self.in_flight -= 1

    def poll(self):
        self.polls += 1
        now = time.monotonic()
        # A crashing instance runs, then vanishes by itself (a guest kernel panic, destroyed on reboot).
        gone = {
            n
            for n, t in self.launched.items()
            if int(n.rsplit("-", 1)[1]) in self.crash and now - t >= self.boot_s + 0.15
        }
        return {n: ("running" if now - t >= self.boot_s else "building") for n, t in self.launched.items()
                if n not in self.deleted and n not in gone}  # fmt: skip

    def address(self, spec):
        return None if spec.index in self.hang else f"10.0.0.{spec.index}"

    def pinger(self):
        return None

    def ssh(self, spec):
        t = self.launched.get(spec.name, time.monotonic())
        time.sleep(0.01)
        return SshOutcome(time.monotonic() - t >= self.boot_s + self.ssh_s, "ok")

    def delete(self, spec):
        self.deleted.add(spec.name)

    def cleanup(self):
        self.cleaned = True
        left = [n for n in self.launched if n not in self.deleted]
        self.deleted.update(left)
        return [f"removed domain {n}" for n in left]


def _specs(n):
    return [InstanceSpec(i, f"redline-run1-{i}", "run1") for i in range(n)]


def test_runner_one_poll_per_interval_bounded_launches_and_all_phases():
    d = FakeDriver()
    plan = StormPlan(10, 3, poll_interval_s=0.05, ping=False)
    t0 = time.monotonic()
    r = run_storm(d, _specs(10), plan, "run1")
    wall = time.monotonic() - t0
    assert d.max_in_flight <= 3
    # one list call per interval for all ten instances, never one per instance
    assert d.polls <= wall / 0.05 + 2
    assert np.isfinite(r.mark("ssh")).all() and np.isfinite(r.mark("gone")).all()
    assert "ping" in r.skipped and np.isnan(r.mark("ping")).all()
    assert (np.diff(r.marks_s[:, [0, 1, 3, 4, 5]], axis=1) >= 0).all()
    assert d.cleaned and r.errors == ("",) * 10


def test_runner_failures_and_timeouts_end_in_cleanup():
    d = FakeDriver(boot_s=0.1, ssh_s=100.0, fail_launch={1})
    plan = StormPlan(3, 3, poll_interval_s=0.05, instance_timeout_s=0.6, ping=False)
    r = run_storm(d, _specs(3), plan, "run1")
    assert "launch failed: quota exceeded" in r.errors[1]
    assert "timed out" in r.errors[0] and "timed out" in r.errors[2]
    assert d.cleaned and set(d.launched) <= d.deleted


def test_runner_interrupt_cleans_up():
    d = FakeDriver(boot_s=0.1, ssh_s=100.0)
    calls = {"n": 0}

    def progress(p):
        calls["n"] += 1
        if calls["n"] == 4:
            raise KeyboardInterrupt

    r = run_storm(d, _specs(4), StormPlan(4, 4, poll_interval_s=0.05, ping=False), "run1", on_progress=progress)
    assert r.interrupted and d.cleaned and set(d.launched) <= d.deleted


def test_sigint_stops_a_storm_even_when_inherited_ignored():
    # A shell without job control starts background jobs with SIGINT ignored; a storm must
    # still stop on Ctrl-C / kill -INT, or its guests outlive it.
    d = FakeDriver(boot_s=0.1, ssh_s=100.0)
    calls = {"n": 0}

    def progress(p):
        calls["n"] += 1
        if calls["n"] == 4:
            os.kill(os.getpid(), signal.SIGINT)

    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        r = run_storm(
            d,
            _specs(4),
            StormPlan(4, 4, poll_interval_s=0.05, ping=False, instance_timeout_s=5),
            "run1",
            on_progress=progress,
        )
        assert signal.getsignal(signal.SIGINT) == signal.SIG_IGN  # the caller's disposition is restored
    finally:
        signal.signal(signal.SIGINT, previous)
    assert r.interrupted and d.cleaned and set(d.launched) <= d.deleted


def test_an_instance_that_crashes_after_running_fails_at_once():
    d = FakeDriver(boot_s=0.1, ssh_s=100.0, crash={1})
    plan = StormPlan(2, 2, poll_interval_s=0.05, instance_timeout_s=3, ping=False)
    t0 = time.monotonic()
    r = run_storm(d, _specs(2), plan, "run1", on_progress=lambda p: None)
    # instance 0 waits for SSH until its timeout; instance 1 is failed as soon as it vanished
    assert "crashed or vanished after it ran" in r.errors[1] and np.isfinite(r.mark("running")[1])
    assert r.mark("gone")[1] - r.mark("running")[1] < 1.5 and "timed out" in r.errors[0]
    assert time.monotonic() - t0 < 10 and d.cleaned


def test_span_to_ssh_is_first_request_to_last_login_and_needs_every_instance():
    from redline.storm.analysis import span_to_ssh_s

    marks = np.array([[1.0, 2.0, 3.0, 5.0, 5.1, 6.0], [1.5, 2.5, 3.5, 9.0, 9.1, 10.0]])
    assert span_to_ssh_s(marks) == 8.0  # the network set-up before the first request is not counted
    marks[1, 3] = NAN
    assert span_to_ssh_s(marks) is None
