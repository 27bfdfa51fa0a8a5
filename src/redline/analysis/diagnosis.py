"""Why a probe (or a run) went as it did: findings judged from its own monitor samples.

Pure functions over a `MonitorSeries` cut to one measurement window and the load figures of
that window; no sampling, no I/O. Every window gets at least one finding: when nothing
saturates, saying so (latency-bound, or headroom) is itself the finding.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from redline.analysis.bottleneck import BottleneckConfig, single_threaded_bottlenecks
from redline.model.finding import Evidence, Finding, Severity
from redline.model.health import GeneratorHealth
from redline.model.series import MonitorSeries
from redline.model.summary import RunSummary

# Databases and caches (a lab's are in its target group): when one of them is the hot
# process, the target's own code is not where the time goes.
_DATABASES = ("mariadbd", "mysqld", "postgres")
_CACHES = ("memcached", "redis-server")

SEED_003 = "seed 003 (Keystone capacity study: N by CPU, database and server)"
SEED_000 = "seed 000 (parallel VM boot in OpenStack: per-process CPU diagnosis)"


@dataclass(frozen=True)
class LoadFacts:
    """The load figures of one measurement window that the findings need."""

    offered_rps: float
    achieved_rps: float
    mean_ms: float | None
    p50_ms: float | None
    p99_ms: float | None
    errors: int
    error_ratio: float
    status_codes: dict[str, int]
    generator_bound: bool
    generator_reasons: tuple[str, ...]
    lag_p99_ms: float | None
    generator_cpus: tuple[int, ...]
    degraded: bool | None = None  # a probe's verdict; None for a run (no verdict)

    @classmethod
    def of(cls, summary: RunSummary, health: GeneratorHealth | None, degraded: bool | None = None) -> LoadFacts:
        lat = summary.latency_ms or {}
        cpus = sorted({c for w in (health.workers if health else ()) for c in w.cpus})
        return cls(
            offered_rps=summary.offered_rps,
            achieved_rps=summary.achieved_rps,
            mean_ms=lat.get("mean"),
            p50_ms=lat.get("p50"),
            p99_ms=lat.get("p99"),
            errors=summary.errors,
            error_ratio=summary.error_ratio,
            status_codes=dict(summary.status_codes),
            generator_bound=bool(health and health.generator_bound),
            generator_reasons=tuple(health.reasons) if health else (),
            lag_p99_ms=health.lag_ms.get("p99") if health else None,
            generator_cpus=tuple(cpus),
            degraded=degraded,
        )


@dataclass(frozen=True)
class DiagnosisConfig:
    """Thresholds, in the units the findings quote.

    saturated_share: a group using this share of the CPUs it may run on is CPU-bound.
    busy_host_share: the CPUs the target may use are this busy in total: the CPU is gone,
                     whoever took it.
    io_wait_share:   target processes seen in uninterruptible sleep (D) at this share of ticks.
    disk_busy_pct:   a disk with I/O in flight this much of the time is saturated.
    mem_available:   less than this share of memory available is pressure ...
    swap_Bps:        ... and so is swapping faster than this.
    hot_service_pct: a database or cache using this much of one core is worth naming.
    """

    saturated_share: float = 0.85
    busy_host_share: float = 0.90
    io_wait_share: float = 0.3
    disk_busy_pct: float = 80.0
    iowait_cores: float = 0.3
    mem_available: float = 0.05
    swap_Bps: float = 1e6
    hot_service_pct: float = 30.0
    generator_near_share: float = 0.90


def diagnose_window(
    series: MonitorSeries, load: LoadFacts, config: DiagnosisConfig = DiagnosisConfig()
) -> tuple[Finding, ...]:
    """Findings for one measurement window, most decisive first; never empty."""
    if len(series) == 0:
        return (_no_samples(load),)
    found: list[Finding] = []
    found += _generator(series, load, config)
    found += _memory(series, config)
    found += _single_thread(series)
    found += _target_cpu(series, load, config)
    found += _hot_service(series, load, config)
    found += _io_wait(series, config)
    found += _errors(load)
    if not any(f.id in _SATURATING for f in found):
        found.append(_nothing_saturates(series, load))
    return tuple(sorted(found, key=lambda f: _PRIORITY.get(f.id, 99)))


# What decides which finding is *the* limit when several hold at once: a starved generator
# makes every target figure suspect; memory pressure and a single thread explain CPU figures
# that would otherwise look like plain saturation.
_PRIORITY = {
    "generator.bound": 0,
    "host.memory_pressure": 1,
    "bottleneck.single_thread": 2,
    "target.cpu_saturated": 3,
    "target.database_hot": 4,
    "target.cache_hot": 4,
    "host.cpu_shared": 5,
    "host.io_wait": 6,
    "target.errors": 7,
    "target.latency_bound": 8,
    "target.headroom": 9,
    "generator.near_limit": 10,
    "bottleneck.single_thread.generator": 10,
    "target.unmonitored": 11,
}
_SATURATING = {k for k, v in _PRIORITY.items() if v <= 6} - {"generator.near_limit"}


# -- the target's CPU --


@dataclass(frozen=True)
class _Group:
    """One monitored group in a window: cores used (mean) and the CPUs it may run on."""

    cores: float
    cpus: tuple[int, ...]  # union of its processes' affinities; all host CPUs when unknown
    busy_processes: int  # processes that used at least a tenth of a core
    names: tuple[str, ...]


def _group(series: MonitorSeries, label: str) -> _Group | None:
    v = series.groups.get(label)
    if v is None or not np.isfinite(v).any():
        return None
    cols = [i for i, p in enumerate(series.procs) if label in p.groups]
    affinity = sorted({c for i in cols for c in series.procs[i].cpus})
    cpus = tuple(affinity) if affinity else tuple(range(series.cpus))
    means = [_mean(series.proc_cpu_pct[:, i]) for i in cols]
    busy = [i for i, m in zip(cols, means) if m is not None and m >= 10.0]
    names = tuple(sorted({series.procs[i].name for i in busy}))
    return _Group(float(np.nanmean(v)) / 100.0, cpus, len(busy), names)


def _cpus_busy(series: MonitorSeries, cpus: tuple[int, ...]) -> float:
    """Cores busy (anyone's work) on the given CPUs, mean over the window."""
    cols = [c for c in cpus if c < series.cpus]
    return float(series.cpu_pct[:, cols].astype(np.float64).sum(axis=1).mean()) / 100.0 if cols else 0.0


def cpu_cost(series: MonitorSeries, load: LoadFacts) -> dict[str, float] | None:
    """The target's CPU per successful answer and the rate its CPUs allow at that cost."""
    target = _group(series, "target")
    if target is None or load.achieved_rps <= 0 or target.cores <= 0:
        return None
    ms = target.cores * 1000.0 / load.achieved_rps
    ceiling = len(target.cpus) * 1000.0 / ms
    return {
        "cpu_ms_per_request": round(ms, 4),
        "cpus": len(target.cpus),
        "busy_cores": round(target.cores, 3),
        "busy_share": round(target.cores / len(target.cpus), 4),
        "ceiling_rps": float(f"{ceiling:.4g}"),
        "share_of_ceiling": round(load.achieved_rps / ceiling, 4),
    }


def _target_cpu(series: MonitorSeries, load: LoadFacts, config: DiagnosisConfig) -> list[Finding]:
    target = _group(series, "target")
    if target is None:
        return []
    n_cpus = len(target.cpus)
    share = target.cores / n_cpus
    cost = cpu_cost(series, load)
    cpu_list = ",".join(map(str, target.cpus))
    if share >= config.saturated_share and cost is not None:
        evidence = [
            f"the target used {target.cores:.2f} cores of the {n_cpus} CPU{'s' if n_cpus > 1 else ''} it may run on"
            f" (CPU {cpu_list}): {share:.0%} busy",
            f"{cost['cpu_ms_per_request']:.3g} ms of target CPU per successful answer at {load.achieved_rps:,.1f}/s",
            f"at that cost its CPUs allow ~{cost['ceiling_rps']:,.0f}/s: this window reached"
            f" {cost['share_of_ceiling']:.0%} of it",
            f"{target.busy_processes} busy target process{'es' if target.busy_processes != 1 else ''}"
            f" ({', '.join(target.names) or '—'})",
        ]
        more_workers = target.busy_processes < n_cpus
        fix = (
            "Give the target more CPUs and one worker process per CPU (the lab's --cpus and --workers; "
            "uWSGI processes / gunicorn workers = CPUs), or make each request cheaper — the profile names "
            "the code that costs the CPU."
        )
        if more_workers:
            fix = f"It has {target.busy_processes} busy worker(s) for {n_cpus} CPUs: run one worker per CPU. " + fix
        return [
            Finding(
                id="target.cpu_saturated",
                title=f"target CPU-bound: {share:.0%} of its {n_cpus} CPU{'s' if n_cpus > 1 else ''}",
                severity=Severity.HIGH,
                evidence=tuple(Evidence.say(e) for e in evidence),
                why=(
                    "Every CPU the target may use is busy with its own work: a higher rate can only queue. "
                    "N is the CPU it has divided by the CPU each request costs; seed 003 found Keystone's N "
                    "set by its CPUs in every configuration."
                ),
                fix=fix,
                source=SEED_003,
                figures={**cost, "processes": target.busy_processes},
            )
        ]
    busy = _cpus_busy(series, target.cpus)
    if busy >= config.busy_host_share * n_cpus and share < config.saturated_share:
        others = _others_on(series, target.cpus, exclude="target")
        evidence = [
            f"the CPUs the target may use (CPU {cpu_list}) were {busy / n_cpus:.0%} busy,"
            f" of which the target itself used {target.cores:.2f} cores",
            *(f"{name} used {cores:.2f} cores on the same CPUs" for name, cores in others[:3]),
        ]
        return [
            Finding(
                id="host.cpu_shared",
                title="the target's CPUs were busy with other work",
                severity=Severity.HIGH,
                evidence=tuple(Evidence.say(e) for e in evidence),
                why=(
                    "The target competes for its CPUs: what it can serve depends on what else runs there. "
                    "Seed 003's load generator starved the Flask service it measured this way."
                ),
                fix=(
                    "Pin the target and the load generator apart (the generator's --cpus, taskset or cgroups "
                    "for the target), or stop the competing processes during the measurement."
                ),
                source=SEED_003,
                figures={"busy_cores": round(busy, 3), "target_cores": round(target.cores, 3), "cpus": n_cpus},
            )
        ]
    return []


def _others_on(series: MonitorSeries, cpus: tuple[int, ...], exclude: str) -> list[tuple[str, float]]:
    """Monitored groups other than `exclude` whose processes may run on `cpus`, by cores used."""
    out = []
    for label in series.groups:
        if label == exclude:
            continue
        g = _group(series, label)
        if g is not None and set(g.cpus) & set(cpus) and g.cores > 0.05:
            out.append((label, g.cores))
    return sorted(out, key=lambda x: -x[1])


def _single_thread(series: MonitorSeries) -> list[Finding]:
    """A target process pinned at one core while CPUs it could use idle (seed 000's Keystone)."""
    return [
        f for f in single_threaded_bottlenecks(series, BottleneckConfig(generator_groups=("generator",))) if f.figures
    ]


# -- the generator --


def _generator(series: MonitorSeries, load: LoadFacts, config: DiagnosisConfig) -> list[Finding]:
    gen = _group(series, "generator")
    cpus = load.generator_cpus or (gen.cpus if gen else ())
    if load.generator_bound:
        evidence = [*load.generator_reasons]
        if gen is not None:
            evidence.append(f"the generator used {gen.cores:.2f} cores of its {len(cpus) or '?'} CPU(s)")
            busy = _cpus_busy(series, cpus) if cpus else 0.0
            if cpus and busy > gen.cores + 0.3:
                evidence.append(
                    f"its CPUs were {busy / len(cpus):.0%} busy: other processes took"
                    f" {busy - gen.cores:.2f} cores of them"
                )
        return [
            Finding(
                id="generator.bound",
                title="the load generator could not keep its schedule",
                severity=Severity.HIGH,
                evidence=tuple(Evidence.say(e) for e in evidence),
                why=(
                    "Requests left later than planned: the figures of this window describe the generator's "
                    "limit, not the target's, so redline does not blame the target for them."
                ),
                fix=(
                    "Give the generator more CPUs or worker processes (--cpus, --workers), keep other work off "
                    "its CPUs, or move it to another machine."
                ),
                source=SEED_003,
                figures={"cores": round(gen.cores, 3) if gen else None, "cpus": len(cpus)},
            )
        ]
    if gen is not None and cpus and gen.cores >= config.generator_near_share * len(cpus):
        return [
            Finding(
                id="generator.near_limit",
                title="the load generator was near its CPU limit",
                severity=Severity.LOW,
                evidence=(
                    Evidence.say(
                        f"the generator used {gen.cores:.2f} cores of its {len(cpus)} CPU(s), yet kept its schedule"
                        f" (lag p99 {load.lag_p99_ms if load.lag_p99_ms is not None else float('nan'):.2f} ms)"
                    ),
                ),
                why="It kept the schedule, so the figures stand; a higher rate may not.",
                fix="For higher rates give the generator more CPUs (--cpus) or workers (--workers).",
                figures={"cores": round(gen.cores, 3), "cpus": len(cpus)},
            )
        ]
    return []


# -- helpers the target depends on --


def _hot_service(series: MonitorSeries, load: LoadFacts, config: DiagnosisConfig) -> list[Finding]:
    """A database or cache process is the busiest process the target depends on."""
    best: tuple[float, int] | None = None
    for i, p in enumerate(series.procs):
        m = _mean(series.proc_cpu_pct[:, i])
        if m is None or "generator" in p.groups:
            continue
        if best is None or m > best[0]:
            best = (m, i)
    if best is None or best[0] < config.hot_service_pct:
        return []
    pct, i = best
    proc = series.procs[i]
    if proc.name not in _DATABASES + _CACHES:
        return []
    is_db = proc.name in _DATABASES
    per_request = pct / 100.0 * 1000.0 / load.achieved_rps if load.achieved_rps > 0 else None
    evidence = [f"{proc.label} was the busiest process the target used: {pct:.0f} % of one core (mean)"]
    if per_request is not None:
        evidence.append(f"{per_request:.3g} ms of its CPU per successful answer")
    return [
        Finding(
            id="target.database_hot" if is_db else "target.cache_hot",
            title=f"the {'database' if is_db else 'cache'} is the hot process: {proc.name}",
            severity=Severity.HIGH if pct >= 80 else Severity.MEDIUM,
            evidence=tuple(Evidence.say(e) for e in evidence),
            why=(
                "The time goes to queries, not the service's own code: more service workers only add load on "
                "the same database."
                if is_db
                else "Every request goes through the cache: its CPU is part of each request's cost."
            ),
            fix=(
                "Cut the queries per request (Keystone: [cache] enabled with memcached, so a validation does "
                "not repeat ~450 role-assignment queries), give the database its own CPU, or tune it "
                "(buffer pool, tmpfs for a lab: seed 003)."
                if is_db
                else "Give the cache its own CPU or more threads (memcached -t)."
            ),
            source=SEED_003,
            figures={"pid": proc.pid, "name": proc.name, "mean_pct": round(pct, 2), "cpu_ms_per_request": per_request},
        )
    ]


def _io_wait(series: MonitorSeries, config: DiagnosisConfig) -> list[Finding]:
    evidence: list[str] = []
    figures: dict[str, float] = {}
    if series.has("proc_dstate"):
        cols = [i for i, p in enumerate(series.procs) if "target" in p.groups]
        if cols:
            d = series.proc_dstate[:, cols]
            any_d = np.nanmax(np.nan_to_num(d, nan=0.0), axis=1)
            share = float(any_d.mean())
            if share >= config.io_wait_share:
                evidence.append(f"a target process was waiting on I/O (state D) at {share:.0%} of the samples")
                figures["dstate_share"] = round(share, 3)
    for j, name in enumerate(series.disk_names):
        busy = float(np.nanmean(series.disk_busy_pct[:, j])) if len(series) else 0.0
        if busy >= config.disk_busy_pct:
            evidence.append(f"disk {name} had I/O in flight {busy:.0f} % of the time")
            figures[f"disk_{name}_busy_pct"] = round(busy, 1)
    if series.has("iowait_cores"):
        wait = float(series.iowait_cores.mean())
        if wait >= config.iowait_cores:
            evidence.append(f"the CPUs spent {wait:.2f} cores waiting on I/O")
            figures["iowait_cores"] = round(wait, 3)
    if not evidence:
        return []
    return [
        Finding(
            id="host.io_wait",
            title="I/O-bound: processes wait on the disk",
            severity=Severity.HIGH,
            evidence=tuple(Evidence.say(e) for e in evidence),
            why=(
                "Requests wait for the disk (database commits, logs, a token table): more CPU does not help. "
                "Seed 003 measured Keystone's N on HDD, SSD and tmpfs for this reason."
            ),
            fix=(
                "Move the database to faster storage (tmpfs for a lab, SSD), relax fsync-per-commit "
                "(innodb_flush_log_at_trx_commit = 2), or cut the writes per request (fernet tokens are not stored)."
            ),
            source=SEED_003,
            figures=figures,
        )
    ]


def _memory(series: MonitorSeries, config: DiagnosisConfig) -> list[Finding]:
    evidence: list[str] = []
    low = float(series.mem_available_bytes.min()) / series.mem_total_bytes if series.mem_total_bytes else 1.0
    if low < config.mem_available:
        evidence.append(f"memory available fell to {low:.1%} of {series.mem_total_bytes / 2**30:.1f} GiB")
    if series.has("swap_in_Bps"):
        swap = float(series.swap_in_Bps.mean() + series.swap_out_Bps.mean())
        if swap >= config.swap_Bps:
            evidence.append(f"the host swapped {swap / 1e6:.1f} MB/s on average")
    if not evidence:
        return []
    return [
        Finding(
            id="host.memory_pressure",
            title="memory pressure: the host is short of memory or swapping",
            severity=Severity.HIGH,
            evidence=tuple(Evidence.say(e) for e in evidence),
            why="Swapping turns memory accesses into disk I/O: every figure of this window is slowed by it.",
            fix="Give the host more memory, or run fewer worker processes (each holds its own copy).",
            figures={"min_available_share": round(low, 4)},
        )
    ]


def _errors(load: LoadFacts) -> list[Finding]:
    if load.errors == 0 or load.error_ratio < 0.01:
        return []
    codes = ", ".join(f"{k} × {v:,}" for k, v in sorted(load.status_codes.items()) if not k.startswith(("2", "3")))
    return [
        Finding(
            id="target.errors",
            title=f"the target answered with errors ({load.error_ratio:.1%})",
            severity=Severity.HIGH,
            evidence=(Evidence.say(f"{load.errors:,} errors ({load.error_ratio:.1%}){': ' + codes if codes else ''}"),),
            why="A target that sheds load (503, timeouts, resets) has reached a limit of its own: a queue bound, "
            "a worker pool, a connection limit.",
            fix="Read the target's log for the refusals; raise the bound that refuses (listen backlog, worker "
            "pool, max connections) if the resources behind it have room.",
            figures={"errors": load.errors, "error_ratio": load.error_ratio, "status_codes": load.status_codes},
        )
    ]


def _nothing_saturates(series: MonitorSeries, load: LoadFacts) -> Finding:
    """No resource is exhausted: either the target waits (a degraded window), or there is room."""
    target = _group(series, "target")
    in_flight = load.achieved_rps * load.mean_ms / 1000.0 if load.mean_ms is not None else None
    cost = cpu_cost(series, load)
    evidence: list[str] = []
    if target is not None:
        evidence.append(
            f"the target used {target.cores:.2f} cores of the {len(target.cpus)} CPU(s) it may run on"
            f" ({target.cores / len(target.cpus):.0%})"
        )
    else:
        evidence.append("the target's processes were not monitored (give --target-pid or --target-process)")
    host_idle = series.cpus - float(series.cpu_pct.astype(np.float64).sum(axis=1).mean()) / 100.0
    evidence.append(f"the host had {host_idle:.2f} of its {series.cpus} CPUs idle")
    if in_flight is not None and load.mean_ms is not None:
        evidence.append(
            f"{in_flight:.1f} requests in flight on average (Little's law: {load.achieved_rps:,.1f}/s ×"
            f" {load.mean_ms:.1f} ms mean latency)"
        )
    if cost is not None and load.mean_ms:
        waits = max(0.0, 1 - cost["cpu_ms_per_request"] / load.mean_ms)
        evidence.append(
            f"each request took {load.mean_ms:.1f} ms, of which {cost['cpu_ms_per_request']:.2f} ms target CPU:"
            f" it waits {waits:.0%} of the time"
        )
    k = round(in_flight) if in_flight is not None else None
    if load.degraded:
        return Finding(
            id="target.latency_bound",
            title="latency-bound: the target waits, nothing saturates"
            + (f" (~{k} requests in flight)" if k is not None else ""),
            severity=Severity.MEDIUM,
            evidence=tuple(Evidence.say(e) for e in evidence),
            why=(
                "Neither CPU, disk, memory nor the generator was exhausted, yet the window degraded: the "
                "target waits — on locks, sleeps, remote calls or a fixed pool of workers or connections. "
                "Throughput is then the pool's size divided by the time each request holds it."
            ),
            fix=(
                "Raise the target's concurrency (worker processes, threads, database pool size, max "
                "connections), or shorten what each request waits for; a profile with idle samples shows "
                "where it waits."
            ),
            figures={
                "in_flight": None if in_flight is None else round(in_flight, 2),
                "mean_ms": load.mean_ms,
                **(cost or {}),
            },
        )
    return Finding(
        id="target.headroom",
        title="nothing saturated at this rate",
        severity=Severity.INFO,
        evidence=tuple(Evidence.say(e) for e in evidence)
        + (
            (
                Evidence.say(
                    f"at {cost['cpu_ms_per_request']:.3g} ms per request its CPUs allow ~{cost['ceiling_rps']:,.0f}/s"
                ),
            )
            if cost
            else ()
        ),
        why="The target kept up with room to spare: a capacity search finds how far it goes.",
        fix="Run `redline capacity` against it to find N and what then limits it.",
        figures={"in_flight": None if in_flight is None else round(in_flight, 2), **(cost or {})},
    )


def _no_samples(load: LoadFacts) -> Finding:
    return Finding(
        id="target.unmonitored",
        title="no monitor samples in this window",
        severity=Severity.INFO,
        evidence=(Evidence.say(f"the window was too short for a 1 s monitor tick ({load.achieved_rps:,.1f}/s)"),),
        why="Without samples nothing can be said about the resources.",
        fix="Use longer probes (--protocol thorough).",
    )


def _mean(v: np.ndarray) -> float | None:
    finite = v[np.isfinite(v)]
    return float(finite.mean()) if finite.size else None
