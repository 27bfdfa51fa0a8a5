"""Storm core without a hypervisor: phase statistics, occupancy, the runner's one shared poll, cleanup."""

from __future__ import annotations

import os
import signal
import threading
import time

import numpy as np
import pytest

from redline import interrupts
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
        self.poll_times: list[float] = []
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
        self.poll_times.append(now)
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
    iterations = []
    r = run_storm(d, _specs(10), plan, "run1", on_progress=iterations.append)
    assert d.max_in_flight == 3  # bounded by the concurrency, and reached with 10 to launch
    # one list call per loop iteration for all ten instances, never one per instance ...
    assert d.polls == len(iterations) == r.polls
    # ... and iterations paced by the interval: consecutive polls are at least one interval
    # apart (a lower bound: a loaded machine only makes the gaps longer)
    assert min(b - a for a, b in zip(d.poll_times, d.poll_times[1:])) >= 0.05 * 0.95
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


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_stops_a_storm_even_when_inherited_ignored(sig):
    # A shell without job control starts background jobs with SIGINT ignored; a storm must
    # still stop on Ctrl-C / kill -INT, or its guests outlive it. SIGTERM stops it the same
    # way, and is recorded so that redline exits 143 rather than Ctrl-C's 130.
    d = FakeDriver(boot_s=0.1, ssh_s=100.0)
    calls = {"n": 0}

    def progress(p):
        calls["n"] += 1
        if calls["n"] == 4:
            os.kill(os.getpid(), sig)

    interrupts.reset()
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
    assert interrupts.stopped_by() == sig
    assert interrupts.exit_status() == ((143, "terminated") if sig == signal.SIGTERM else (130, "interrupted"))
    interrupts.reset()


def test_an_instance_that_crashes_after_running_fails_at_once():
    d = FakeDriver(boot_s=0.1, ssh_s=100.0, crash={1})
    plan = StormPlan(2, 2, poll_interval_s=0.05, instance_timeout_s=3, ping=False)
    r = run_storm(d, _specs(2), plan, "run1", on_progress=lambda p: None)
    # instance 0 waits for SSH until its timeout; instance 1 is failed as soon as it vanished:
    # its delete was requested before instance 0's timeout made the runner delete that one
    assert "crashed or vanished after it ran" in r.errors[1] and np.isfinite(r.mark("running")[1])
    assert "timed out after 3 s" in r.errors[0]
    assert r.mark("delete_requested")[1] < r.mark("delete_requested")[0]
    assert r.mark("delete_requested")[0] >= 3.0  # instance 0 was deleted at its timeout, not before
    assert d.cleaned


def test_span_to_ssh_is_first_request_to_last_login_and_needs_every_instance():
    from redline.storm.analysis import span_to_ssh_s

    marks = np.array([[1.0, 2.0, 3.0, 5.0, 5.1, 6.0], [1.5, 2.5, 3.5, 9.0, 9.1, 10.0]])
    assert span_to_ssh_s(marks) == 8.0  # the network set-up before the first request is not counted
    marks[1, 3] = NAN
    assert span_to_ssh_s(marks) is None


def test_task_state_rows_run_to_the_next_state_seen_and_count_who_was_seen():
    from redline.storm.model import TaskMarks

    marks = np.array([
        [0.0, 5.0, NAN, 6.0, 7.0, 9.0],
        [0.0, 6.0, NAN, 7.0, 8.0, 8.5],
        [0.0, NAN, NAN, NAN, 30.0, 31.0],  # stuck in scheduling until the timeout deleted it
    ])  # fmt: skip
    names = ("scheduling", "block_device_mapping", "networking", "spawning", "deleting")
    tasks = TaskMarks(names, ("create",) * 4 + ("delete",), np.array([
        [1.0, NAN, 2.5, 3.0, 7.5],  # bdm fell between two polls: scheduling runs to networking
        [0.5, 1.0, 2.0, 4.0, NAN],  # deleting not seen: gone at the next poll
        [1.0, NAN, NAN, NAN, 30.5],
    ]))  # fmt: skip
    rows = {r.phase: r for r in phase_table(marks, ("ping",), tasks=tasks)}
    assert list(rows) == ["create", *(f"create: {n}" for n in names[:4]), "ssh", "delete", "delete: deleting",
                          "requested→ssh"]  # fmt: skip
    sched = rows["create: scheduling"]
    assert (sched.seen, sched.count, sched.min_s, sched.max_s) == (3, 2, 0.5, 1.5)  # the stuck one has no end
    assert (rows["create: block_device_mapping"].seen, rows["create: block_device_mapping"].max_s) == (1, 1.0)
    assert rows["create: spawning"].min_s == 2.0 and rows["create: spawning"].max_s == 2.0  # → ACTIVE
    assert (rows["delete: deleting"].seen, rows["delete: deleting"].max_s) == (2, 1.5)
    assert rows["create"].seen is None and rows["create"].count == 2
    # ping skipped: ssh runs from running to the ssh mark instead of being NaN for everyone
    assert rows["ssh"].count == 2 and rows["ssh"].min_s == 1.0
    labelled = {r.phase: r.title for r in phase_table(marks, ("ping",), {"ssh": "guest up (console marker X)"})}
    assert labelled["ssh"] == "guest up (console marker X)" and labelled["create"] == "create"
    assert labelled["requested→ssh"] == "requested→guest up (console marker X)"
    assert "requested→ssh" not in {r.phase for r in phase_table(marks, ("ping", "ssh"))}  # nothing to reach


def test_occupancy_with_ping_skipped_shows_the_next_observed_phase():
    marks = np.array([[0.0, 1.0, NAN, 3.0, 4.0, 5.0]])
    st = state_at(marks, np.array([0.5, 2.0, 3.5]), skipped=("ping",))
    assert [STATES[k] for k in st[:, 0]] == ["create", "ssh", "pre-delete"]
    both = state_at(marks, np.array([2.0]), skipped=("ping", "ssh"))
    assert STATES[both[0, 0]] == "pre-delete"


def test_a_failing_status_poll_is_retried_then_ends_the_storm_with_one_reason():
    class Flaky(FakeDriver):
        def __init__(self, fail_from, fail_until=None):
            super().__init__(boot_s=0.05, ssh_s=0.05)
            self.fail_from, self.fail_until = fail_from, fail_until

        def poll(self):
            if self.fail_from <= self.polls < (self.fail_until or 10**9):
                self.polls += 1
                raise ConnectionError("libvirtd went away")
            return super().poll()

    # a blip: two failed polls, then the storm goes on and completes
    d = Flaky(fail_from=2, fail_until=4)
    r = run_storm(d, _specs(2), StormPlan(2, 2, poll_interval_s=0.05, ping=False), "run1", poll_give_up_s=5)
    assert r.errors == ("", "") and not r.stopped and r.polls == d.polls
    assert any(n.startswith("status poll failed at") for n in r.notes)
    assert any(n.startswith("status poll answered again after") for n in r.notes)
    # dead for good: stopped after poll_give_up_s, every instance failed with the reason, cleanup ran
    d = Flaky(fail_from=3)
    r = run_storm(d, _specs(2), StormPlan(2, 2, poll_interval_s=0.05, ping=False), "run1", poll_give_up_s=0.3)
    assert d.cleaned and not any("--timeout" in n for n in r.notes)  # ended by the give-up, not the storm's bound
    assert r.stopped.startswith("the status poll failed for") and "libvirtd went away" in r.stopped
    assert all(e == "storm stopped: the status poll failed" for e in r.errors)


def test_a_create_request_that_hangs_is_bounded_by_the_instance_timeout():
    class Hanging(FakeDriver):
        def launch(self, spec):
            if spec.index == 1:  # nova-api blocked on a dead RabbitMQ, until the request's own timeout
                time.sleep(1.0)
                raise RuntimeError("timed out")
            super().launch(spec)

    d = Hanging(boot_s=0.05, ssh_s=100.0)
    r = run_storm(d, _specs(2), StormPlan(2, 2, poll_interval_s=0.05, instance_timeout_s=0.3, ping=False), "run1")
    assert d.cleaned
    assert r.errors[1] == "timed out after 0.3 s waiting for the create request to return"
    assert r.errors[0].startswith("timed out after 0.3 s waiting for ssh")
