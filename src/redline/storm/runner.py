"""Run a storm: launch N instances with bounded concurrency and time each one's phases.

One loop owns all state. Every `poll_interval_s` it makes ONE driver.poll() call for all
instances of the run (never a poller per instance, as in seed 000, so the benchmark does
not load the API it measures), sends one echo request to each instance waiting for ping
over a single socket, and starts at most one SSH attempt per instance waiting for SSH (or
whatever check the driver puts in the "ssh" slot: a console marker). Launches, SSH
attempts and deletes run in bounded thread pools. A driver that reports its cloud's own
states (Nova's task states) gets them recorded as sub-marks from that same poll. Whatever
happens — an error, a timeout, a cloud that stops answering, Ctrl-C, SIGTERM — the
driver's cleanup runs before this returns.
"""

from __future__ import annotations

import math
import signal
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from types import FrameType

import numpy as np

from redline import interrupts
from redline.storm.driver import CountsCalls, ObservesSubStates, StormDriver, driver_labels
from redline.storm.model import MARKS, InstanceSpec, StormPlan, StormResult
from redline.storm.probes import SshOutcome

R, RUN, PING, SSH, DEL, GONE = range(len(MARKS))
# A status poll that has failed this long (and at least three times in a row) ends the
# storm: the cloud's API is down, and waiting for --timeout would only stretch the run.
POLL_GIVE_UP_S = 15.0


@dataclass(frozen=True)
class StormProgress:
    elapsed_s: float
    count: int
    launched: int  # requested so far
    reached: dict[str, int]  # mark -> instances past it
    failed: int


class _Interrupted(KeyboardInterrupt):
    """A signal that ends the storm; like Ctrl-C, no `except Exception` on the way catches it."""


def run_storm(
    driver: StormDriver,
    specs: list[InstanceSpec],
    plan: StormPlan,
    run_id: str,
    on_progress: Callable[[StormProgress], None] | None = None,
    clock: Callable[[], int] = time.monotonic_ns,
    start_ns: int | None = None,
    poll_give_up_s: float | None = None,
) -> StormResult:
    """`poll_give_up_s`: how long the status poll may fail before the storm stops (POLL_GIVE_UP_S)."""
    give_up_s = POLL_GIVE_UP_S if poll_give_up_s is None else poll_give_up_s
    n = len(specs)
    marks = np.full((n, len(MARKS)), np.nan)
    errors = [""] * n
    ssh_out = [""] * n
    notes: list[str] = []
    skipped: list[str] = []
    labels = driver_labels(driver)
    observer = driver if isinstance(driver, ObservesSubStates) else None
    task_names = tuple(t for t, _ in observer.task_marks) if observer is not None else ()
    task_phases = tuple(p for _, p in observer.task_marks) if observer is not None else ()
    tasks = np.full((n, len(task_names)), np.nan)
    last_seen = [""] * n
    polls = 0
    stopped = ""
    removed: list[str] = []
    t0 = start_ns if start_ns is not None else clock()

    def now_s() -> float:
        return (clock() - t0) / 1e9

    def why(i: int, text: str) -> str:
        """An error with where the cloud last saw the instance (nothing to add for libvirt)."""
        return f"{text}; last seen {last_seen[i]}" if last_seen[i] else text

    interrupted = False
    launch_pool = ThreadPoolExecutor(plan.concurrency, thread_name_prefix="storm-launch")
    ssh_pool = ThreadPoolExecutor(min(n, max(plan.concurrency, 4)), thread_name_prefix="storm-ssh")
    delete_pool = ThreadPoolExecutor(plan.concurrency, thread_name_prefix="storm-delete")
    launches: dict[int, Future[None]] = {}
    ssh_tries: dict[int, Future[tuple[SshOutcome, float]]] = {}
    deletes: dict[int, Future[None]] = {}
    pinger = None
    restore_signals = _install_signal_handlers()
    try:
        notes += driver.prepare(specs)
        can_ping = plan.ping
        if can_ping:
            try:
                pinger = driver.pinger()
            except Exception as exc:  # noqa: BLE001 — a storm without ping is still a storm
                pinger = None
                notes.append(f"ping skipped: {exc}")
            can_ping = pinger is not None
            if not can_ping:
                skipped.append("ping")
        if not plan.ping:
            skipped.append("ping")
        if not plan.ssh:
            skipped.append("ssh")
        addresses = {s.index: driver.address(s) for s in specs}
        if addresses and all(a is None for a in addresses.values()):
            skipped += [p for p in ("ping", "ssh") if p not in skipped]
        if any(a is None for a in addresses.values()):
            notes.append("some instances have no address reachable from here: their ping and ssh phases are skipped")

        def launch(spec: InstanceSpec) -> None:
            marks[spec.index, R] = now_s()
            driver.launch(spec)

        def delete(spec: InstanceSpec) -> None:
            marks[spec.index, DEL] = now_s()
            driver.delete(spec)

        def want_delete(i: int, error: str = "") -> None:
            if error and not errors[i]:
                errors[i] = why(i, error)
            if i not in deletes:
                deletes[i] = delete_pool.submit(delete, specs[i])

        def finished(i: int, t: float) -> bool:
            """Nothing more to wait for: gone, or its delete failed or never completes (the
            final cleanup deletes it again and says what was left)."""
            if not math.isnan(marks[i, GONE]):
                return True
            d = deletes.get(i)
            if d is None:  # a create request that never returned: the cleanup deletes what it made
                return bool(errors[i]) and not launches[i].done()
            if not d.done():
                return False
            return d.exception() is not None or t - marks[i, DEL] > plan.instance_timeout_s

        def observe(t_poll: float) -> None:
            """Sub-marks: the first poll that showed each task state, and the last words."""
            if observer is None:
                return
            seen = observer.observed()
            for s in specs:
                o = seen.get(s.name)
                if o is None:
                    continue
                if not errors[s.index]:  # a failed one keeps where it stuck, not its delete's states
                    last_seen[s.index] = o.text
                if o.task_state in task_names:
                    j = task_names.index(o.task_state)
                    if math.isnan(tasks[s.index, j]):
                        tasks[s.index, j] = t_poll

        def step(s: InstanceSpec, states: dict[str, str], answered: set[str], t_poll: float) -> None:
            """One instance, after the shared poll: take its marks, start its next check."""
            i = s.index
            f = launches[i]
            if not f.done():
                # A hung create (nova-api waiting on a dead RabbitMQ) is bounded like any other wait;
                # one still queued behind --concurrency has no request time yet and is not.
                if not errors[i] and t_poll - marks[i, R] > plan.instance_timeout_s:
                    errors[i] = (
                        f"timed out after {plan.instance_timeout_s:g} s waiting for the create request to return"
                    )
                return
            if f.exception() is not None and i not in deletes:
                want_delete(i, f"launch failed: {f.exception()}")
                return
            state = states.get(s.name)
            if i in deletes:
                if deletes[i].done() and deletes[i].exception() is not None and not errors[i]:
                    errors[i] = why(i, f"delete failed: {deletes[i].exception()}")
                if math.isnan(marks[i, GONE]) and deletes[i].done():
                    if state is None:
                        marks[i, GONE] = t_poll
                    elif finished(i, t_poll) and not errors[i]:  # still listed, long after its delete
                        errors[i] = why(i, f"not gone {plan.instance_timeout_s:g} s after its delete")
                return
            if math.isnan(marks[i, RUN]):
                if state == "running":
                    marks[i, RUN] = t_poll
                elif state == "error":
                    want_delete(i, "instance went to an error state")
                    return
                elif state is None and t_poll - marks[i, R] > 5 * plan.poll_interval_s + 10:
                    want_delete(i, "instance disappeared before it ran")
                    return
            elif state is None or state == "error":
                # It ran and is now gone or broken without being asked to: a guest that
                # crashed (kernel panic → destroyed) will never answer; waiting for the
                # instance timeout would only stretch the storm.
                want_delete(
                    i,
                    "instance crashed or vanished after it ran" if state is None else "instance went to an error state",
                )
                return
            addr = addresses[i]
            if not math.isnan(marks[i, RUN]):
                if math.isnan(marks[i, PING]):
                    if not can_ping or addr is None:
                        pass  # phase skipped: stays NaN
                    elif addr in answered:
                        marks[i, PING] = t_poll
                    else:
                        pinger.send(addr)  # type: ignore[union-attr]
                ping_done = not math.isnan(marks[i, PING]) or not can_ping or addr is None
                if ping_done and math.isnan(marks[i, SSH]):
                    if not plan.ssh or addr is None:
                        want_delete(i)
                        return
                    tr = ssh_tries.get(i)
                    if tr is not None and tr.done():
                        res, t_done = tr.result()
                        if res.ok:
                            marks[i, SSH] = t_done  # when the login's command (the console call) returned
                            ssh_out[i] = res.output
                            want_delete(i)
                            return
                        ssh_tries.pop(i)
                    # At most one attempt in flight per instance, and none once it is past its
                    # timeout (it is deleted just below): a console call on a deleted server is waste.
                    if i not in ssh_tries and t_poll - marks[i, R] <= plan.instance_timeout_s:
                        ssh_tries[i] = ssh_pool.submit(_timed_ssh, driver, s, now_s, partial(deletes.__contains__, i))
                elif not math.isnan(marks[i, SSH]):
                    want_delete(i)
            if math.isnan(marks[i, SSH]) and i not in deletes and t_poll - marks[i, R] > plan.instance_timeout_s:
                stage = (
                    MARKS[int(np.nanargmax(marks[i, : SSH + 1])) + 1]
                    if np.isfinite(marks[i, : SSH + 1]).any()
                    else "running"
                )
                if stage == "ping" and "ping" in skipped:  # nobody waits for a phase that is not observed
                    stage = "ssh"
                waiting = labels.get(stage, stage)
                want_delete(i, f"timed out after {plan.instance_timeout_s:g} s waiting for {waiting}")

        for s in specs:
            launches[s.index] = launch_pool.submit(launch, s)

        deadline = plan.total_timeout_s
        failing_since: float | None = None  # the status poll has failed since then
        failures = 0
        while True:
            t = now_s()
            polls += 1
            try:
                states: dict[str, str] | None = driver.poll()  # the one status call of this interval
            except Exception as exc:  # noqa: BLE001 — judged below: a blip is retried, a dead API ends the storm
                states = None
                failures += 1
                if failing_since is None:
                    failing_since = t
                    notes.append(f"status poll failed at {t:.1f} s: {exc}")
                if t - failing_since >= give_up_s and failures >= 3:
                    stopped = f"the status poll failed for {t - failing_since:.0f} s ({exc})"
                    notes.append(f"storm stopped: {stopped}")
            else:
                if failing_since is not None:
                    notes.append(f"status poll answered again after {t - failing_since:.1f} s")
                failing_since, failures = None, 0
            t_poll = now_s()
            if states is not None:
                observe(t_poll)
                answered = pinger.answered() if pinger is not None else set()
                for s in specs:
                    step(s, states, answered, t_poll)
            if on_progress is not None:
                on_progress(_progress(t, n, marks, errors))
            if all(finished(i, t_poll) for i in range(n)):
                break
            if stopped or t > deadline:
                if not stopped:
                    notes.append(f"storm stopped after {plan.total_timeout_s:g} s (--timeout)")
                cause = "storm stopped: the status poll failed" if stopped else "storm timed out"
                for i in range(n):
                    if math.isnan(marks[i, GONE]):
                        errors[i] = errors[i] or why(i, cause)
                break
            time.sleep(max(0.0, plan.poll_interval_s - (now_s() - t)))
    except (KeyboardInterrupt, _Interrupted):
        interrupted = True
        notes.append("interrupted: every instance of the run was deleted")
    finally:
        # Stop launching first, then remove whatever exists; cleanup never raises.
        for f in launches.values():
            f.cancel()
        launch_pool.shutdown(wait=True, cancel_futures=True)
        ssh_pool.shutdown(wait=False, cancel_futures=True)
        delete_pool.shutdown(wait=True, cancel_futures=True)
        if pinger is not None:
            pinger.close()
        try:
            removed = driver.cleanup()
        except Exception as exc:  # noqa: BLE001
            removed = [f"cleanup failed: {exc}"]
        leftovers = [r for r in removed if r.startswith("removed domain")]
        if leftovers and not interrupted:
            notes.append(f"cleanup removed {len(leftovers)} leftover domain(s)")
        restore_signals()
    calls = driver.api_calls() if isinstance(driver, CountsCalls) else {}
    return StormResult(
        run_id=run_id, driver=driver.name, plan=plan, names=tuple(s.name for s in specs), marks_s=marks,
        start_ns=t0, errors=tuple(errors), ssh_output=tuple(ssh_out), notes=tuple(notes),
        interrupted=interrupted, end_s=now_s(), skipped=tuple(skipped),
        task_marks=task_names, task_phases=task_phases, task_marks_s=tasks,
        last_seen=tuple(last_seen) if observer is not None else (), labels=labels, polls=polls,
        api_calls=calls, cleanup=tuple(removed), stopped=stopped,
    )  # fmt: skip


def _timed_ssh(
    driver: StormDriver, spec: InstanceSpec, now_s: Callable[[], float], deleted: Callable[[], bool]
) -> tuple[SshOutcome, float]:
    if deleted():  # queued behind busy workers while its instance was deleted
        return SshOutcome(False, "not attempted: deleted"), now_s()
    try:
        out = driver.ssh(spec)
    except Exception as exc:  # noqa: BLE001 — a failed attempt; the next poll tries again
        out = SshOutcome(False, f"{type(exc).__name__}: {exc}")
    return out, now_s()


def _progress(t: float, n: int, marks: np.ndarray, errors: list[str]) -> StormProgress:
    reached = {m: int(np.isfinite(marks[:, j]).sum()) for j, m in enumerate(MARKS)}
    return StormProgress(t, n, reached["requested"], reached, sum(1 for e in errors if e))


def _install_signal_handlers() -> Callable[[], None]:
    """Ctrl-C and SIGTERM end a storm: cleanup runs, what was measured is kept.

    SIGINT is set explicitly: a process started in the background by a shell without job
    control inherits SIGINT ignored, and a storm that cannot be stopped leaves guests behind.
    Only the first signal interrupts: a second Ctrl-C must not cut the cleanup short.
    """
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    fired = False

    def handler(signum: int, frame: FrameType | None) -> None:
        nonlocal fired
        if not fired:
            fired = True
            interrupts.record(signum)
            raise _Interrupted()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}

    def restore() -> None:
        for sig, old in previous.items():
            signal.signal(sig, old)

    return restore
