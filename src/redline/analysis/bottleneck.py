"""Findings from a monitor's series: which process is the bottleneck, and why it matters.

Pure functions over a `MonitorSeries`; no sampling, no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from redline.model.finding import Evidence, Finding, Severity
from redline.model.series import MonitorSeries

SEED_000 = "seed 000 (parallel VM boot in OpenStack): Keystone diagnosis and 'Run N keystone Processes'"


@dataclass(frozen=True)
class BottleneckConfig:
    """What "pinned to one core while the machine idles" means in numbers.

    pinned_pct:     a sample counts as pinned at >= this % of one core ...
    multi_core_pct: ... and below this: a process above 1.5 cores is not bound to one.
    min_share:      pinned in at least this share of the samples it was alive for.
    min_samples:    and alive for at least this many samples (one busy second is no pattern).
    min_idle_cores: during the pinned samples the host had at least this much idle CPU
                    (median, in cores): otherwise the host is saturated, not the thread.
    generator_groups: labels of the load generator's groups: a pinned generator is
                    reported separately, since its remedy differs.
    """

    pinned_pct: float = 90.0
    multi_core_pct: float = 150.0
    min_share: float = 0.6
    min_samples: int = 3
    min_idle_cores: float = 0.5
    generator_groups: tuple[str, ...] = ("generator",)


_WHY = (
    "A process that keeps one core fully busy while other cores are idle cannot go faster "
    "with more load or more hardware: its work is serialised on one thread (or one "
    "interpreter lock), so requests queue behind it and latency climbs while the host "
    "looks half idle. Seed 000 found exactly this in OpenStack Grizzly: Keystone was "
    "CPU-bound with a single thread, could not keep up with the token checks that every "
    "API request triggers, and so limited how fast the whole cloud booted VMs; only "
    "running several Keystone processes (and keeping tokens in memcached rather than a "
    "growing SQL table) removed the limit."
)

_FIX_TARGET = (
    "Give this service more worker processes so its work spreads over cores (Keystone: "
    "more uWSGI/Apache/gunicorn processes — seed 000 patched Keystone to fork N workers; "
    "nova-api and conductor: more workers), or make each request cheaper (seed 000: tokens "
    "in memcached instead of the SQL token table)."
)

_FIX_GENERATOR = (
    "The load generator itself is pinned: give it more worker processes or CPUs "
    "(--workers, --cpus) before trusting the target's figures."
)


def single_threaded_bottlenecks(
    series: MonitorSeries, config: BottleneckConfig = BottleneckConfig()
) -> tuple[Finding, ...]:
    """One finding per process pinned near 100 % of one core while the host had idle CPU."""
    if len(series) == 0 or not series.procs:
        return ()
    cpus = series.cpus
    idle_cores = (cpus * 100.0 - series.cpu_pct.astype(np.float64).sum(axis=1)) / 100.0
    findings: list[Finding] = []
    for i, proc in enumerate(series.procs):
        if len(proc.cpus) == 1:
            continue  # pinned to one CPU by its affinity: that CPU saturated, not its threading
        pct = series.proc_cpu_pct[:, i].astype(np.float64)
        alive = np.isfinite(pct)
        n_alive = int(alive.sum())
        if n_alive < config.min_samples:
            continue
        pinned = alive & (pct >= config.pinned_pct) & (pct < config.multi_core_pct)
        n_pinned = int(pinned.sum())
        share = n_pinned / n_alive
        if share < config.min_share:
            continue
        # Idle where it could have run: CPUs outside its affinity are no use to it.
        usable = [c for c in proc.cpus if c < cpus] or list(range(cpus))
        idle_usable = (len(usable) * 100.0 - series.cpu_pct[:, usable].astype(np.float64).sum(axis=1)) / 100.0
        idle = float(np.median(idle_usable[pinned])) if proc.cpus else float(np.median(idle_cores[pinned]))
        if idle < config.min_idle_cores:
            continue
        median_pct = float(np.median(pct[pinned]))
        is_generator = any(g in config.generator_groups for g in proc.groups)
        groups = ", ".join(proc.groups) or "no group"
        threads = "a single thread" if proc.threads == 1 else f"{proc.threads} threads, yet no more than one core"
        evidence = (
            f"{proc.label} [{groups}] used ≥ {config.pinned_pct:.0f} % of one core in {n_pinned} of "
            f"{n_alive} samples (median {median_pct:.1f} %), with {threads}",
            f"meanwhile the host had a median of {idle:.2f} of its {cpus} CPUs idle",
            f"command: {proc.cmdline}",
        )
        findings.append(
            Finding(
                id="bottleneck.single_thread.generator" if is_generator else "bottleneck.single_thread",
                title=f"single-threaded bottleneck: {proc.name} (pid {proc.pid})",
                severity=Severity.HIGH,
                evidence=tuple(Evidence.say(e) for e in evidence),
                why=_WHY,
                fix=_FIX_GENERATOR if is_generator else _FIX_TARGET,
                source=SEED_000,
                figures={
                    "pid": proc.pid,
                    "name": proc.name,
                    "groups": list(proc.groups),
                    "threads": proc.threads,
                    "pinned_samples": n_pinned,
                    "alive_samples": n_alive,
                    "pinned_share": round(share, 4),
                    "median_pct": round(median_pct, 2),
                    "median_idle_cores": round(idle, 3),
                    "cpus": cpus,
                },
            )
        )
    return tuple(findings)
