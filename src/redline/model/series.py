"""What a monitor recorded: columnar series, one row per tick (stored by redline.store)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

SCHEMA = "redline.monitor/1"


@dataclass(frozen=True)
class ProcessInfo:
    """One process that belonged to a group at some tick (a column of `proc_cpu_pct`)."""

    pid: int
    name: str
    cmdline: str
    groups: tuple[str, ...]
    threads: int  # the most threads seen: 1 means single-threaded by construction
    cpus: tuple[int, ...] = ()  # the CPUs it may run on (its affinity) when first seen; () unknown

    @property
    def label(self) -> str:
        return f"{self.name} (pid {self.pid})"

    def to_dict(self) -> dict[str, Any]:
        return {
            "pid": self.pid,
            "name": self.name,
            "cmdline": self.cmdline,
            "groups": list(self.groups),
            "threads": self.threads,
            "cpus": list(self.cpus),
        }


@dataclass(frozen=True)
class MonitorSeries:
    """Host and per-process samples over a run.

    Row i covers the interval (t_ns[i-1], t_ns[i]] (the first row, the interval since
    the monitor started). CPU figures are percent: per CPU 0–100, per process and per
    group in percent of *one* core (so 250 means two and a half cores).

    t_ns:            CLOCK_MONOTONIC ns at the end of each interval (same clock as Samples);
                     intervals are `interval_s` long except the last (cut short by stop).
    cpu_pct:         (n, cpus) busy share of each CPU (iowait counts as idle).
    disk_busy_pct:   (n, disks) share of the interval each disk had I/O in flight.
    mem_used_bytes, mem_available_bytes: (n,)
    net_sent_Bps, net_recv_Bps: (n,) bytes per second, all interfaces (loopback too:
                     a loopback target's traffic is all there).
    groups:          label -> (n,) CPU of the group's processes, NaN when none existed.
    proc_cpu_pct:    (n, procs) CPU of each process ever in a group, NaN when absent.
    proc_dstate:     (n, procs) 1 where the process was in uninterruptible sleep (D: waiting
                     on I/O) at the tick, 0 otherwise, NaN when absent.
    iowait_cores:    (n,) CPU time spent waiting on I/O, in cores (counted as idle in cpu_pct).
    swap_in_Bps, swap_out_Bps: (n,) bytes swapped per second.
    Folders written before these three existed read back with empty (zero-length) arrays.
    """

    interval_s: float
    t_ns: np.ndarray
    cpu_pct: np.ndarray
    disk_names: tuple[str, ...]
    disk_busy_pct: np.ndarray
    mem_total_bytes: int
    mem_used_bytes: np.ndarray
    mem_available_bytes: np.ndarray
    net_sent_Bps: np.ndarray
    net_recv_Bps: np.ndarray
    groups: dict[str, np.ndarray] = field(default_factory=dict)
    procs: tuple[ProcessInfo, ...] = ()
    proc_cpu_pct: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.float32))
    start_ns: int = 0  # the baseline reading: the first row covers (start_ns, t_ns[0]]
    proc_dstate: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.float32))
    iowait_cores: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    swap_in_Bps: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float64))
    swap_out_Bps: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float64))

    def __len__(self) -> int:
        return int(self.t_ns.shape[0])

    @property
    def cpus(self) -> int:
        return int(self.cpu_pct.shape[1]) if self.cpu_pct.ndim == 2 else 0

    @property
    def dt_s(self) -> np.ndarray:
        """Length of each row's interval; CPU % × dt_s / 100 is CPU seconds."""
        first = self.start_ns if self.start_ns else int(self.t_ns[0]) - int(self.interval_s * 1e9)
        return np.diff(self.t_ns, prepend=first) / 1e9

    def t_seconds(self, origin_ns: int | None = None) -> np.ndarray:
        """Seconds since `origin_ns` (e.g. a probe's measure_from_ns), default the first tick."""
        if origin_ns is None:
            origin_ns = int(self.t_ns[0]) if len(self) else 0
        return (self.t_ns - origin_ns) / 1e9

    def between(self, start_ns: int, end_ns: int) -> MonitorSeries:
        """The ticks inside [start_ns, end_ns], e.g. one probe's measurement window."""
        m = (self.t_ns >= start_ns) & (self.t_ns <= end_ns)
        return MonitorSeries(
            interval_s=self.interval_s,
            t_ns=self.t_ns[m],
            cpu_pct=self.cpu_pct[m],
            disk_names=self.disk_names,
            disk_busy_pct=self.disk_busy_pct[m],
            mem_total_bytes=self.mem_total_bytes,
            mem_used_bytes=self.mem_used_bytes[m],
            mem_available_bytes=self.mem_available_bytes[m],
            net_sent_Bps=self.net_sent_Bps[m],
            net_recv_Bps=self.net_recv_Bps[m],
            groups={k: v[m] for k, v in self.groups.items()},
            procs=self.procs,
            proc_cpu_pct=self.proc_cpu_pct[m],
            start_ns=int(self.t_ns[m][0] - self.interval_s * 1e9) if m.any() else self.start_ns,
            proc_dstate=_rows(self.proc_dstate, m),
            iowait_cores=_rows(self.iowait_cores, m),
            swap_in_Bps=_rows(self.swap_in_Bps, m),
            swap_out_Bps=_rows(self.swap_out_Bps, m),
        )

    def has(self, column: str) -> bool:
        """Whether an optional column was recorded (folders from older versions lack them)."""
        return bool(getattr(self, column).shape[0] == len(self) and len(self) > 0)

    def process(self, pid: int) -> np.ndarray:
        """CPU % series of one pid (NaN where it was absent); KeyError if never seen."""
        for i, p in enumerate(self.procs):
            if p.pid == pid:
                return self.proc_cpu_pct[:, i]
        raise KeyError(pid)

    # -- summary --

    def to_summary(self, top: int = 5) -> dict[str, Any]:
        """JSON-able figures for run.json: means and peaks, the busiest processes."""
        n = len(self)
        out: dict[str, Any] = {
            "schema": SCHEMA,
            "interval_s": self.interval_s,
            "samples": n,
            "duration_s": _num((self.t_ns[-1] - self.t_ns[0]) / 1e9 + self.interval_s) if n else 0.0,
            "cpus": self.cpus,
        }
        if n == 0:
            return out
        total = self.cpu_pct.sum(axis=1)
        out["cpu"] = {
            "mean_busy_cores": _num(total.mean() / 100),
            "max_busy_cores": _num(total.max() / 100),
            "per_cpu_mean_pct": [_num(v) for v in self.cpu_pct.mean(axis=0)],
        }
        out["disk_busy_pct"] = {
            name: {"mean": _num(self.disk_busy_pct[:, i].mean()), "max": _num(self.disk_busy_pct[:, i].max())}
            for i, name in enumerate(self.disk_names)
        }
        out["memory"] = {
            "total_bytes": self.mem_total_bytes,
            "max_used_bytes": int(self.mem_used_bytes.max()),
            "min_available_bytes": int(self.mem_available_bytes.min()),
        }
        out["net_Bps"] = {
            "sent_mean": _num(self.net_sent_Bps.mean()),
            "recv_mean": _num(self.net_recv_Bps.mean()),
        }
        out["groups"] = {label: _pct_summary(v) for label, v in self.groups.items()}
        if self.procs:
            means = np.array([_nanmean(self.proc_cpu_pct[:, i]) for i in range(len(self.procs))])
            order = np.argsort(-np.nan_to_num(means, nan=-1.0))[:top]
            out["top_processes"] = [{**self.procs[i].to_dict(), **_pct_summary(self.proc_cpu_pct[:, i])} for i in order]
        return out


def _rows(column: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The masked rows of an optional column; an absent (empty) column stays empty."""
    return column[mask] if column.shape[0] == mask.shape[0] else column


def _nanmean(v: np.ndarray) -> float:
    finite = v[np.isfinite(v)]
    return float(finite.mean()) if finite.size else float("nan")


def _pct_summary(v: np.ndarray) -> dict[str, Any]:
    finite = v[np.isfinite(v)]
    if finite.size == 0:
        return {"mean_pct": None, "p90_pct": None, "max_pct": None, "samples": 0}
    return {
        "mean_pct": _num(finite.mean()),
        "p90_pct": _num(np.percentile(finite, 90)),
        "max_pct": _num(finite.max()),
        "samples": int(finite.size),
    }


def _num(v: float) -> float | None:
    f = float(v)
    return round(f, 3) if np.isfinite(f) else None
