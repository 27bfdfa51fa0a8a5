"""A background sampler of host and per-process resource use, started around a probe.

A thread, not a process: each tick is a few /proc reads (well under a millisecond of
CPU per process watched), and a thread shares the caller's view of pids and
selectors without any pickling. The generator's workers are separate processes, so
the GIL this thread takes for a moment does not slow them.
"""

from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import psutil

from redline.model.series import MonitorSeries, ProcessInfo
from redline.monitor.selectors import ProcessSelector
from redline.redact import redacted_command_line

# Not disks whose busy time means anything for a service: loop devices, RAM disks,
# compressed swap in RAM, optical and floppy drives.
DEFAULT_DISK_EXCLUDE = r"^(loop|ram|zram|sr|fd|nbd)\d*"


def _whole_disks(names: list[str], exclude: str) -> list[str]:
    """Whole block devices only: partitions would count the same busy time twice."""
    rx = re.compile(exclude)
    out = []
    for n in sorted(names):
        if rx.match(n):
            continue
        if Path("/sys/block").is_dir() and not Path("/sys/block", n).exists():
            continue  # a partition (sda1) or a device-mapper alias
        out.append(n)
    return out


@dataclass
class _Proc:
    """Bookkeeping for one watched process, keyed by (pid, create time) against pid reuse."""

    handle: psutil.Process
    column: int
    last_cpu_s: float | None
    name: str
    cmdline: str
    threads: int
    groups: set[str]
    cpus: tuple[int, ...]


class Monitor:
    """Sample every `interval_s` seconds until `stop()`; use as a context manager.

        with Monitor(groups={"target": PidTree(server.pid)}) as mon:
            ... run a probe ...
        series = mon.series()

    Groups can be added while running (the generator's pids are known only once its
    workers have started): `mon.add_group("generator", PidList(pids))`.
    """

    def __init__(
        self,
        interval_s: float = 1.0,
        groups: dict[str, ProcessSelector] | None = None,
        disk_exclude: str = DEFAULT_DISK_EXCLUDE,
    ) -> None:
        if interval_s <= 0:
            raise ValueError("interval_s must be positive")
        self.interval_s = interval_s
        self._selectors: dict[str, ProcessSelector] = dict(groups or {})
        self._lock = threading.Lock()  # guards the selectors
        self._data = threading.Lock()  # guards the columns: series() may run mid-probe
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._disk_exclude = disk_exclude
        self._error: BaseException | None = None
        # Columns, appended once per tick (Python lists: a few hundred rows per probe).
        self._t: list[int] = []
        self._cpu: list[np.ndarray] = []
        self._disk: list[np.ndarray] = []
        self._mem_used: list[int] = []
        self._mem_avail: list[int] = []
        self._net: list[tuple[float, float]] = []
        self._group_rows: list[dict[str, float]] = []
        self._proc_rows: list[dict[int, float]] = []
        self._dstate_rows: list[dict[int, float]] = []
        self._iowait: list[float] = []
        self._swap: list[tuple[float, float]] = []
        self._procs: dict[tuple[int, float], _Proc] = {}

    # -- control --

    def add_group(self, label: str, selector: ProcessSelector) -> None:
        with self._lock:
            self._selectors[label] = selector

    def start(self) -> Monitor:
        if self._thread is not None:
            raise RuntimeError("monitor already started")
        self._baseline()
        self._thread = threading.Thread(target=self._run, name="redline-monitor", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> MonitorSeries:
        """Stop sampling (taking one last sample) and return what was recorded."""
        if self._thread is not None and self._thread.is_alive():
            self._stop.set()
            self._thread.join(timeout=max(5.0, 3 * self.interval_s))
        if self._error is not None:
            raise RuntimeError(f"monitor failed: {self._error}") from self._error
        return self.series()

    def __enter__(self) -> Monitor:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- sampling --

    def _baseline(self) -> None:
        self._cpu_prev = psutil.cpu_times(percpu=True)
        disks = psutil.disk_io_counters(perdisk=True) or {}
        self._disk_names = _whole_disks(list(disks), self._disk_exclude)
        self._disk_prev = {n: disks[n].busy_time for n in self._disk_names if hasattr(disks[n], "busy_time")}
        net = psutil.net_io_counters()
        self._net_prev = (net.bytes_sent, net.bytes_recv)
        self._mem_total = psutil.virtual_memory().total
        self._swap_prev = _swap_bytes()
        self._t_prev = self._start_ns = time.monotonic_ns()
        # Birth times are compared on the since-boot clock: psutil's create_time adds a
        # boot time rounded to whole seconds, so against time.time() it can be off by 1 s.
        self._boot_s = psutil.boot_time()
        self._uptime_prev = time.clock_gettime(time.CLOCK_BOOTTIME)
        self._scan_processes(self._t_prev, baseline=True)

    def _run(self) -> None:
        t0 = time.monotonic()
        k = 1
        try:
            while True:
                # Ticks on a fixed grid, so that a slow tick does not shift all later ones.
                delay = t0 + k * self.interval_s - time.monotonic()
                stopping = self._stop.wait(max(0.0, delay))
                self._tick()
                if stopping:
                    return
                k = max(k + 1, int((time.monotonic() - t0) / self.interval_s) + 1)
        except BaseException as exc:  # noqa: BLE001 — reported by stop(), never lost
            self._error = exc

    def _tick(self) -> None:
        with self._data:
            self._tick_locked()

    def _tick_locked(self) -> None:
        now = time.monotonic_ns()
        uptime = time.clock_gettime(time.CLOCK_BOOTTIME)
        dt = (now - self._t_prev) / 1e9
        if dt <= 0:
            return
        cpu_now = psutil.cpu_times(percpu=True)
        self._cpu.append(np.array([_busy_pct(a, b) for a, b in zip(self._cpu_prev, cpu_now)], np.float32))
        self._iowait.append(sum(_iowait_share(a, b) for a, b in zip(self._cpu_prev, cpu_now)))
        self._cpu_prev = cpu_now
        swap = _swap_bytes()
        self._swap.append(((swap[0] - self._swap_prev[0]) / dt, (swap[1] - self._swap_prev[1]) / dt))
        self._swap_prev = swap

        disks = psutil.disk_io_counters(perdisk=True) or {}
        row = np.full(len(self._disk_names), np.nan, np.float32)
        for i, name in enumerate(self._disk_names):
            if name in disks and name in self._disk_prev:
                busy_ms = disks[name].busy_time - self._disk_prev[name]
                row[i] = min(100.0, max(0.0, busy_ms / (dt * 1e3) * 100))
                self._disk_prev[name] = disks[name].busy_time
        self._disk.append(row)

        mem = psutil.virtual_memory()
        self._mem_used.append(int(mem.used))
        self._mem_avail.append(int(mem.available))
        net = psutil.net_io_counters()
        sent, recv = net.bytes_sent, net.bytes_recv
        self._net.append(((sent - self._net_prev[0]) / dt, (recv - self._net_prev[1]) / dt))
        self._net_prev = (sent, recv)

        self._scan_processes(now, baseline=False, dt=dt)
        self._t.append(now)
        self._t_prev = now
        self._uptime_prev = uptime

    def _scan_processes(self, now_ns: int, baseline: bool, dt: float = 0.0) -> None:
        with self._lock:
            selectors = dict(self._selectors)
        # Re-resolved every tick: workers respawn, pools grow, a PID tree gains children.
        members: dict[int, set[str]] = {}
        for label, sel in selectors.items():
            for pid in sel.resolve():
                members.setdefault(pid, set()).add(label)
        per_proc: dict[int, float] = {}
        dstate: dict[int, float] = {}
        groups: dict[str, float] = {label: np.nan for label in selectors}
        for pid, labels in members.items():
            pct = self._sample_process(pid, labels, dt, baseline)
            if pct is None:
                continue
            column, value, waiting = pct
            per_proc[column] = value
            dstate[column] = waiting
            if np.isfinite(value):
                for label in labels:
                    groups[label] = value if np.isnan(groups[label]) else groups[label] + value
        if not baseline:
            self._proc_rows.append(per_proc)
            self._dstate_rows.append(dstate)
            self._group_rows.append(groups)

    def _sample_process(self, pid: int, labels: set[str], dt: float, baseline: bool) -> tuple[int, float, float] | None:
        try:
            handle = psutil.Process(pid)
            key = (pid, handle.create_time())
            entry = self._procs.get(key)
            if entry is None:
                with handle.oneshot():
                    name = handle.name()
                    try:
                        # Kept in run.json: a password given as an option must not be.
                        cmd = redacted_command_line(handle.cmdline())[:300]
                    except psutil.AccessDenied:
                        cmd = name
                    threads = handle.num_threads()
                    try:
                        cpus = tuple(sorted(handle.cpu_affinity() or ()))
                    except (psutil.AccessDenied, AttributeError):
                        cpus = ()
                entry = _Proc(handle, len(self._procs), None, name, cmd, threads, set(labels), cpus)
                self._procs[key] = entry
                # A process born since the last tick used all its CPU time inside this
                # interval, so it can be counted now (short-lived helpers, like the
                # rootwrap and dnsmasq scripts of seed 000, would otherwise be missed).
                born_s = key[1] - self._boot_s  # since boot, at clock-tick (10 ms) resolution
                if not baseline and born_s >= self._uptime_prev - 0.01:
                    entry.last_cpu_s = 0.0
            entry.groups |= labels
            with handle.oneshot():
                times = handle.cpu_times()
                entry.threads = max(entry.threads, handle.num_threads())
                # One look per tick: a process seen in D at most ticks spends its time on I/O.
                waiting = 1.0 if handle.status() == psutil.STATUS_DISK_SLEEP else 0.0
            cpu_s = times.user + times.system
            prev, entry.last_cpu_s = entry.last_cpu_s, cpu_s
            if baseline:
                return None
            value = np.nan if prev is None else max(0.0, (cpu_s - prev) / dt * 100)
            return entry.column, value, waiting
        except (psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied):
            return None

    # -- result --

    def series(self) -> MonitorSeries:
        """What has been recorded so far (safe to call while running, for live display)."""
        with self._data:
            return self._series_locked()

    def _series_locked(self) -> MonitorSeries:
        n = len(self._t)
        rows = slice(0, n)  # the other columns may already hold one row more than _t
        ncpu = len(self._cpu_prev)
        procs = sorted(self._procs.values(), key=lambda p: p.column)
        proc = np.full((n, len(procs)), np.nan, np.float32)
        for i, row in enumerate(self._proc_rows[rows]):
            for col, v in row.items():
                proc[i, col] = v
        dstate = np.full((n, len(procs)), np.nan, np.float32)
        for i, row in enumerate(self._dstate_rows[rows]):
            for col, v in row.items():
                dstate[i, col] = v
        swap = np.array(self._swap[rows], np.float64).reshape(n, 2)
        labels = list(self._selectors)
        groups = {
            label: np.array([r.get(label, np.nan) for r in self._group_rows[rows]], np.float32) for label in labels
        }
        net = np.array(self._net[rows], np.float64).reshape(n, 2)
        return MonitorSeries(
            interval_s=self.interval_s,
            t_ns=np.array(self._t, np.int64),
            cpu_pct=np.array(self._cpu[rows], np.float32).reshape(n, ncpu),
            disk_names=tuple(self._disk_names),
            disk_busy_pct=np.array(self._disk[rows], np.float32).reshape(n, len(self._disk_names)),
            mem_total_bytes=int(self._mem_total),
            mem_used_bytes=np.array(self._mem_used[rows], np.int64),
            mem_available_bytes=np.array(self._mem_avail[rows], np.int64),
            net_sent_Bps=net[:, 0],
            net_recv_Bps=net[:, 1],
            groups=groups,
            procs=tuple(
                ProcessInfo(p.handle.pid, p.name, p.cmdline, tuple(sorted(p.groups)), p.threads, p.cpus) for p in procs
            ),
            proc_cpu_pct=proc,
            start_ns=self._start_ns,
            proc_dstate=dstate,
            iowait_cores=np.array(self._iowait[rows], np.float32),
            swap_in_Bps=swap[:, 0],
            swap_out_Bps=swap[:, 1],
        )


def _swap_bytes() -> tuple[int, int]:
    """Bytes swapped in and out since boot (0, 0 where the kernel does not say)."""
    try:
        sw = psutil.swap_memory()
        return int(sw.sin), int(sw.sout)
    except (OSError, RuntimeError):
        return 0, 0


def _iowait_share(before: Any, after: Any) -> float:
    """Share of one CPU's interval spent idle with I/O outstanding (0..1)."""
    total = sum(after) - sum(before)
    wait = getattr(after, "iowait", 0.0) - getattr(before, "iowait", 0.0)
    return float(min(1.0, max(0.0, wait / total))) if total > 0 else 0.0


def _busy_pct(before: Any, after: Any) -> float:
    """Busy share of one CPU between two cpu_times readings; iowait counts as idle."""
    idle = (after.idle - before.idle) + (getattr(after, "iowait", 0.0) - getattr(before, "iowait", 0.0))
    total = sum(after) - sum(before)
    # guest time is already inside user on Linux; subtract it so it is not counted twice
    total -= (getattr(after, "guest", 0.0) - getattr(before, "guest", 0.0)) + (
        getattr(after, "guest_nice", 0.0) - getattr(before, "guest_nice", 0.0)
    )
    if total <= 0:
        return 0.0
    return float(min(100.0, max(0.0, (total - idle) / total * 100)))
