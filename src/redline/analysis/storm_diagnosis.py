"""Where a storm's time goes: who used the host during each phase, and which phase grows with N.

Pure functions over the storm's marks (one row per instance, one column per mark, seconds
since the storm started), its `MonitorSeries` and a scale run's points; no sampling, no I/O.
The mark and phase names are passed in (`redline.storm.model.MARKS`, `PHASES`): analysis
reads the model only.

Every monitored phase gets at least one finding: when nothing saturates, saying the phase
waited (latency-bound) is itself the finding.
"""

from __future__ import annotations

import math
import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from redline.analysis.bottleneck import BottleneckConfig, single_threaded_bottlenecks
from redline.model.finding import Evidence, Finding, Severity
from redline.model.series import MonitorSeries
from redline.model.storm import ScalePoint, ScaleResult
from redline.model.storm_diagnosis import OTHER, PhaseCpu

SEED_000 = "seed 000 (parallel VM boot in OpenStack: Boosting OpenStack's Parallel Performance)"


@dataclass(frozen=True)
class StormDiagnosisConfig:
    """Thresholds, in the units the findings quote.

    saturated_pct: a monitor row whose CPUs are, on average, this busy is saturated ...
    saturated_share: ... and a phase is, when such rows cover this share of its window (or
                   the whole window averages saturated_pct): most of a phase at 100 % with
                   its tail at 70 % is a saturated phase, not a latency-bound one.
    guest_groups:  monitor groups of the guests themselves (a pinned one is a busy vCPU,
                   not a serialising daemon).
    driver_groups: redline's own processes: they only keep what no other group claims,
                   and a pinned one makes the storm's figures redline's.
    bottleneck:    "pinned at one core" (analysis.bottleneck); two samples suffice, as a
                   storm's create phase often lasts two or three seconds.
    """

    saturated_pct: float = 90.0
    saturated_share: float = 0.5
    guest_groups: tuple[str, ...] = ("qemu",)
    driver_groups: tuple[str, ...] = ("driver",)
    bottleneck: BottleneckConfig = field(
        default_factory=lambda: BottleneckConfig(min_samples=2, generator_groups=("driver",))
    )


@dataclass(frozen=True)
class PhaseWindow:
    """From the first instance entering a phase to the last one leaving it, seconds since the
    storm started; `mean_waiting`: instances in the phase, averaged over the window."""

    phase: str
    start_s: float
    end_s: float
    entered: int
    mean_waiting: float
    label: str = ""  # the driver's name for the phase, when it differs (StormResult.labels)


@dataclass(frozen=True)
class StormDiagnosis:
    phase_cpu: tuple[PhaseCpu, ...]
    findings: tuple[Finding, ...]


# -- phase windows --


def observed_phases(phases: Sequence[tuple[str, str, str]], skipped: Collection[str]) -> list[tuple[str, str, str]]:
    """(name, start mark, end mark) of the phases a driver observed: a skipped phase has none,
    and the phase after it starts where the skipped one would have (ping skipped: "ssh" runs
    from running to the ssh mark)."""
    out: list[tuple[str, str, str]] = []
    carry: tuple[str, str] | None = None  # (the skipped phase's end mark, its start mark)
    for name, a, b in phases:
        if carry is not None and a == carry[0]:
            a = carry[1]
        carry = None
        if name in skipped:
            carry = (b, a)
            continue
        out.append((name, a, b))
    return out


def phase_windows(
    marks_s: np.ndarray,
    marks: Sequence[str],
    phases: Sequence[tuple[str, str, str]],
    end_s: float = math.nan,
    skipped: Collection[str] = (),
    labels: Mapping[str, str] | None = None,
) -> tuple[PhaseWindow, ...]:
    """The window of each phase that any instance entered and that lasted some time.

    An instance leaves a phase at its end mark; one that never reached it (failed, timed
    out) leaves at the next mark it did reach (delete requested by cleanup, gone), else at
    `end_s` — as the occupancy chart counts it (storm.analysis.state_at): it was waiting in
    that phase all along. A phase the driver could not observe (`skipped`: ping without a
    ping socket) has no window: the phase after it starts where it would have started
    (SSH attempts begin once the instance runs).
    """
    m = np.asarray(marks_s, np.float64)
    out: list[PhaseWindow] = []
    for name, a, b in observed_phases(phases, skipped):
        entry = m[:, marks.index(a)]
        leave = np.full(m.shape[0], np.nan)
        for j in range(marks.index(b), len(marks)):
            leave = np.where(np.isnan(leave), m[:, j], leave)
        leave = np.where(np.isnan(leave), end_s, leave)
        ok = np.isfinite(entry) & np.isfinite(leave) & (leave >= entry)
        if not ok.any():
            continue
        start, end = float(entry[ok].min()), float(leave[ok].max())
        if end <= start:
            continue  # took no time: nothing to diagnose
        waiting = float((leave[ok] - entry[ok]).sum()) / (end - start)
        label = (labels or {}).get(name, "")
        out.append(PhaseWindow(name, start, end, int(ok.sum()), waiting, label if label != name else ""))
    return tuple(out)


# -- CPU by group over a window --


def _group_order(series: MonitorSeries, config: StormDiagnosisConfig) -> list[str]:
    """Which group a process in several counts in: guests first (libvirtd forks each qemu,
    so a qemu process can carry the libvirtd label too), redline's own tree last."""
    labels = list(series.groups)
    guests = [g for g in labels if g in config.guest_groups]
    drivers = [g for g in labels if g in config.driver_groups]
    return guests + [g for g in labels if g not in guests and g not in drivers] + drivers


def _row_overlap_s(series: MonitorSeries, start_ns: int, end_ns: int) -> np.ndarray:
    """Seconds of each monitor row's interval inside [start_ns, end_ns]: a phase of two
    seconds is weighted by what it covers, not by whole ticks."""
    hi = series.t_ns.astype(np.float64)
    lo = hi - series.dt_s * 1e9
    overlap: np.ndarray = np.clip(np.minimum(hi, end_ns) - np.maximum(lo, start_ns), 0.0, None) / 1e9
    return overlap


def group_cores(series: MonitorSeries, config: StormDiagnosisConfig = StormDiagnosisConfig()) -> dict[str, np.ndarray]:
    """Per row, the cores each group used, every process counted once (`_group_order`);
    NaN (no such process then) counts as zero."""
    order = _group_order(series, config)
    n = len(series)
    out = {g: np.zeros(n) for g in series.groups}
    if series.procs and series.proc_cpu_pct.shape == (n, len(series.procs)):
        for i, p in enumerate(series.procs):
            owner = next((g for g in order if g in p.groups), None)
            if owner is not None:
                out[owner] += np.nan_to_num(series.proc_cpu_pct[:, i].astype(np.float64), nan=0.0) / 100.0
    else:  # no per-process columns: the group series as recorded (overlaps counted twice)
        for g, v in series.groups.items():
            out[g] = np.nan_to_num(v.astype(np.float64), nan=0.0) / 100.0
    return out


def phase_cpu(
    series: MonitorSeries,
    window: PhaseWindow,
    storm_start_ns: int,
    config: StormDiagnosisConfig = StormDiagnosisConfig(),
) -> PhaseCpu | None:
    """Mean cores of each group, "other" and idle over the window; None without samples in it."""
    if len(series) == 0:
        return None
    w = _row_overlap_s(series, storm_start_ns + int(window.start_s * 1e9), storm_start_ns + int(window.end_s * 1e9))
    total = float(w.sum())
    if total <= 0:
        return None
    row_busy = series.cpu_pct.astype(np.float64).sum(axis=1) / 100.0
    busy = float((row_busy * w).sum() / total)
    full = row_busy >= config.saturated_pct / 100.0 * series.cpus
    saturated = float(w[full].sum() / total)
    groups = {g: float((v * w).sum() / total) for g, v in group_cores(series, config).items()}
    # Clipped: the host's and the processes' counters are read a few ms apart.
    groups[OTHER] = max(0.0, busy - sum(groups.values()))
    busiest = max(groups, key=lambda g: groups[g])
    return PhaseCpu(
        phase=window.phase,
        start_s=round(window.start_s, 3),
        end_s=round(window.end_s, 3),
        groups={g: round(v, 3) for g, v in groups.items()},
        idle_cores=round(max(0.0, series.cpus - busy), 3),
        busiest=busiest,
        cpus=series.cpus,
        mean_waiting=round(window.mean_waiting, 2),
        saturated_share=round(saturated, 3),
        label=window.label,
    )


def _cut(series: MonitorSeries, window: PhaseWindow, storm_start_ns: int) -> MonitorSeries:
    """The monitor rows whose interval's middle lies inside the window (whole samples, for
    the pinned-core detector)."""
    half = int(series.interval_s * 1e9 / 2)
    a = storm_start_ns + int(window.start_s * 1e9) + half
    b = storm_start_ns + int(window.end_s * 1e9) + half
    return series.between(a, b)


# -- the findings of one phase --


def diagnose_storm(
    series: MonitorSeries | None,
    marks_s: np.ndarray,
    storm_start_ns: int,
    marks: Sequence[str],
    phases: Sequence[tuple[str, str, str]],
    *,
    end_s: float = math.nan,
    skipped: Collection[str] = (),
    virt_type: str | None = None,
    config: StormDiagnosisConfig = StormDiagnosisConfig(),
    labels: Mapping[str, str] | None = None,
) -> StormDiagnosis:
    """The host's CPU by group in each phase, and per phase its findings (never none).

    `end_s` and `skipped` as for `phase_windows`. `virt_type` is the hypervisor's ("qemu" =
    TCG, "kvm"), when known: it decides whether "use KVM" is advice or already done.
    `labels`: the driver's names for phases (StormResult.labels), used in every sentence;
    figures keep the phase's key.
    """
    windows = phase_windows(marks_s, marks, phases, end_s, skipped, labels)
    if series is None or len(series) == 0:
        return StormDiagnosis((), (_unmonitored(windows),))
    table: list[PhaseCpu] = []
    found: list[Finding] = []
    for w in windows:
        pc = phase_cpu(series, w, storm_start_ns, config)
        if pc is None:
            found.append(_unmonitored((w,)))
            continue
        table.append(pc)
        found += _phase_findings(_cut(series, w, storm_start_ns), pc, virt_type, config)
    return StormDiagnosis(tuple(table), tuple(found))


def _phase_findings(
    cut: MonitorSeries, pc: PhaseCpu, virt_type: str | None, config: StormDiagnosisConfig
) -> list[Finding]:
    pinned = single_threaded_bottlenecks(cut, config.bottleneck) if len(cut) else ()
    guests: list[Finding] = []
    drivers: list[Finding] = []
    daemons: list[Finding] = []
    for f in pinned:
        groups = set(f.figures.get("groups", ()))
        if groups & set(config.guest_groups) or str(f.figures.get("name", "")).startswith("qemu"):
            guests.append(f)
        elif f.id.endswith(".generator") or groups & set(config.driver_groups):
            drivers.append(f)
        else:
            daemons.append(f)
    out = [_serialising(pc, f, config) for f in daemons] + [_driver_bound(pc, f) for f in drivers]
    busy_pct = 100.0 * pc.busy_cores / pc.cpus if pc.cpus else 0.0
    if busy_pct >= config.saturated_pct or pc.saturated_share >= config.saturated_share:
        out.append(_saturated(pc, busy_pct, virt_type, config))
    elif guests:
        out.append(_guests_bound(pc, guests, cut, virt_type, config))
    if not out:
        out.append(_latency_bound(pc, busy_pct, config))
    return out


def _window(pc: PhaseCpu) -> str:
    return f"during {pc.title} ({pc.start_s:.1f}–{pc.end_s:.1f} s after the start, {pc.duration_s:.1f} s)"


def _by_group(pc: PhaseCpu) -> str:
    ranked = sorted(pc.groups.items(), key=lambda kv: -kv[1])
    return ", ".join(f"{g} {v:.2f}" for g, v in ranked) + f" cores; idle {pc.idle_cores:.2f}"


def _waiting(pc: PhaseCpu) -> str:
    return f"on average {pc.mean_waiting:.1f} instances were waiting in {pc.title}"


def _figures(pc: PhaseCpu) -> dict[str, object]:
    return {
        "phase": pc.phase,
        "start_s": pc.start_s,
        "end_s": pc.end_s,
        "cores": dict(pc.groups),
        "idle_cores": pc.idle_cores,
        "cpus": pc.cpus,
        "mean_waiting": pc.mean_waiting,
    }


# What to change when a daemon serialises the storm, by the daemon's name (or command line).
_DAEMON_FIX = (
    (
        re.compile(r"libvirtd|virtqemud|virt\w*d\b"),
        "Raise libvirtd's worker pool and per-client limit (libvirtd.conf max_workers, min_workers, "
        "max_client_requests; `redline lab hypervisor up --max-workers N --max-client-requests N`), so the "
        "storm's concurrent calls run in parallel; if one call is slow by itself (starting a domain with a "
        "security driver or cgroups), make that call cheaper.",
    ),
    (
        re.compile(r"nova-conductor"),
        "Run more nova-conductor workers (nova.conf [conductor] workers): every build's scheduling request and "
        "database writes pass through conductor; seed 000 found nova's services serialising on blocking database "
        "calls.",
    ),
    (
        re.compile(r"nova-scheduler"),
        "Run more nova-scheduler workers (nova.conf [scheduler] workers) and ask Placement for fewer candidates "
        "([scheduler] max_placement_results), so that scheduling decisions do not queue behind one process.",
    ),
    (
        re.compile(r"nova-api|osapi"),
        "Run more nova-api workers (nova.conf osapi_compute_workers, or more uWSGI processes): seed 000 found one "
        "nova-api process serialising its blocking database calls.",
    ),
    (
        re.compile(r"nova-compute"),
        "nova-compute builds every instance of its host in one process: keep [DEFAULT] max_concurrent_builds "
        "within what the host's CPUs can run, keep its periodic tasks out of the storm, or spread the builds "
        "over more compute hosts.",
    ),
    (
        re.compile(r"nova-"),
        "Run more nova API and conductor workers (nova.conf osapi_compute_workers, [conductor] workers): "
        "seed 000 found one nova-api process serialising its blocking database calls.",
    ),
    (
        re.compile(r"placement"),
        "Run more Placement API processes (its uWSGI processes): every scheduling asks Placement for allocation "
        "candidates and claims them.",
    ),
    (
        re.compile(r"glance"),
        "Run more Glance API workers ([DEFAULT] workers), and keep the image cached on the compute host "
        "(nova's image cache) so that each build does not download it again.",
    ),
    (
        re.compile(r"neutron"),
        "Run more neutron-server API and RPC workers (api_workers, rpc_workers): every build asks Neutron for "
        "its ports (none here with networks none: then it is Nova's network calls that wait).",
    ),
    (
        re.compile(r"mariadb|mysqld"),
        "The database serialises the storm: look for slow or locking queries (slow_query_log), give InnoDB a "
        "buffer pool that holds the data (innodb_buffer_pool_size) and, in a lab, relax "
        "innodb_flush_log_at_trx_commit; seed 000's nova-api waited on such blocking database calls.",
    ),
    (
        re.compile(r"rabbitmq|beam"),
        "RabbitMQ carries every build's RPC: give its Erlang VM more scheduler threads (+S in "
        "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS) and cut the messages per build (notifications off: "
        "[notifications] notification_format, oslo_messaging_notifications driver noop).",
    ),
    (
        re.compile(r"keystone|uwsgi|httpd|apache2|gunicorn"),
        "Run several Keystone worker processes (uWSGI/Apache processes) and keep tokens out of a growing SQL "
        "table (seed 000: memcached), so token checks spread over cores.",
    ),
    (
        re.compile(r"dnsmasq"),
        "dnsmasq is single-threaded by design: give the guests several networks (one dnsmasq each), and turn "
        "off per-lease logging (log-dhcp) if it is on.",
    ),
)
_FIX_PROCESS = "Give this process more workers so its work spreads over cores, or make each request it serves cheaper."


# Where a daemon's CPU per instance goes when it fills a host (not: more workers, which need idle CPUs).
_COST_HINT = (
    (re.compile(r"libvirtd|virtqemud"), "no security-driver relabelling, fewer cgroup controllers."),
    (
        re.compile(r"keystone"),
        "token validation without a cache costs hundreds of SQL queries per API call "
        "(keystone.conf [cache] on memcached; keystonemiddleware's memcached_servers).",
    ),
    (
        re.compile(r"nova-api|osapi"),
        "every API call validates its token and serialises the instance; fewer "
        "status polls and console reads (each storm poll and console read is one; --poll-interval).",
    ),
    (re.compile(r"mariadb|mysqld"), "look for the heaviest queries (slow_query_log with long_query_time=0)."),
)


def _cost_hint(group: str) -> str:
    for pattern, hint in _COST_HINT:
        if pattern.search(group):
            return hint
    return f"profile {group} (py-spy record --pid PID for a Python service) and make its hottest path cheaper."


def _daemon_fix(group: str, name: str, cmdline: str) -> str:
    # The group first: a uWSGI process is Placement's or Keystone's by its group, not its name.
    for text in (group, name, cmdline):
        for pattern, fix in _DAEMON_FIX:
            if text and pattern.search(text):
                return fix
    return _FIX_PROCESS


def _service(pinned: Finding, config: StormDiagnosisConfig) -> str:
    """The monitor group a pinned process belongs to (nova-conductor, mariadb, libvirtd): its
    own name can be "python3" or "beam.smp"; "" when it is in none but redline's."""
    groups = [str(g) for g in pinned.figures.get("groups", ()) or ()]
    return next((g for g in groups if g not in config.driver_groups), "")


def _serialising(pc: PhaseCpu, pinned: Finding, config: StormDiagnosisConfig) -> Finding:
    name = str(pinned.figures.get("name", "?"))
    group = _service(pinned, config)
    # The service's name first (what one configures), the process's beside it when it differs.
    who = name if not group or group == name else f"{group} ({name})"
    cmd = next((e.value[len("command: ") :] for e in pinned.evidence if e.value.startswith("command: ")), "")
    idle = float(pinned.figures.get("median_idle_cores", pc.idle_cores))  # while it was pinned, as its evidence says
    return Finding(
        id="storm.serialising_daemon",
        title=f"{who} serialises {pc.title}: one core busy while {idle:.1f} of {pc.cpus} CPUs idle",
        severity=Severity.HIGH,
        evidence=(
            Evidence.say(f"{_window(pc)}: {_waiting(pc)}"),
            *pinned.evidence,
            Evidence.say(f"host CPU by group: {_by_group(pc)}"),
        ),
        why=(
            f"Every instance of the storm passes through {group or name}. While it keeps one core busy and other CPUs "
            "idle, the instances' requests queue behind one thread: the phase lasts as long as that queue, "
            "not as long as the hardware needs, and grows with the number of instances. Seed 000 found this "
            "three times in a storm of 20 VMs: nova-api blocked on database calls, Keystone single-threaded, "
            "libvirtd's worker limits."
        ),
        fix=_daemon_fix(group, name, cmd),
        source=SEED_000,
        figures={**_figures(pc), **pinned.figures, "service": group or name},
    )


def _driver_bound(pc: PhaseCpu, pinned: Finding) -> Finding:
    return Finding(
        id="storm.driver_cpu_bound",
        title=f"redline itself was pinned at one core during {pc.title}",
        severity=Severity.HIGH,
        evidence=(Evidence.say(f"{_window(pc)}: {_waiting(pc)}"), *pinned.evidence),
        why=(
            "redline's process (the shared status poll, the ping socket, SSH attempts, the monitor) kept one "
            "core busy: marks are taken late, so this phase's times include redline's own queueing."
        ),
        fix="Give redline a CPU the guests do not use, or raise --poll-interval.",
        source=SEED_000,
        figures={**_figures(pc), **pinned.figures},
    )


def _saturated(pc: PhaseCpu, busy_pct: float, virt_type: str | None, config: StormDiagnosisConfig) -> Finding:
    top = pc.busiest
    cores = pc.groups.get(top, 0.0)
    evidence = [
        f"{_window(pc)} the host's {pc.cpus} CPUs were {busy_pct:.0f} % busy on average "
        f"({pc.busy_cores:.2f} cores busy, {pc.idle_cores:.2f} idle), and ≥ {config.saturated_pct:.0f} % busy "
        f"for {pc.saturated_share:.0%} of the phase",
        f"by group: {_by_group(pc)}",
        _waiting(pc),
    ]
    tcg = virt_type == "qemu"
    if virt_type:
        evidence.append(f"virt type {virt_type}" + (" (TCG: every guest instruction emulated)" if tcg else ""))
    if top in config.guest_groups:
        why = (
            f"The guests themselves use the CPUs ({top} {cores:.2f} cores): {pc.mean_waiting:.1f} guests at "
            f"once share {pc.cpus} CPUs, so each boots at a fraction of a core's speed and the phase stretches "
            "with the number of guests. This is the hardware limit seed 000 reached once its software locks "
            "were gone." + (" Under TCG each guest instruction is emulated, several times KVM's cost." if tcg else "")
        )
        fix = (
            "Use KVM instead of TCG (hardware or nested virtualisation), " if virt_type != "kvm" else ""
        ) + "boot fewer guests per core (a smaller --count, or more cores), or lighter guests (a shorter boot)."
    elif top == OTHER:
        why = (
            f"Processes outside the storm used the most CPU ({cores:.2f} cores that no monitored group accounts "
            "for: another benchmark, a build): the storm competed with them, and this phase's time measures "
            "that contention, not the hypervisor."
        )
        fix = "Run the storm on a quiet host (stop other benchmarks), or keep the other load off the guests' CPUs."
    elif top in config.driver_groups:
        why = (
            f"redline itself used the most CPU ({cores:.2f} cores): its polls, pings and SSH attempts compete "
            "with the guests it measures."
        )
        fix = "Give redline a CPU the guests do not use, or raise --poll-interval."
    else:
        daemons = {g: c for g, c in pc.groups.items()
                   if g not in config.guest_groups and g not in config.driver_groups and g != OTHER and c > 0}  # fmt: skip
        total = sum(daemons.values())
        shares = ", ".join(f"{g} {c:.2f}" for g, c in sorted(daemons.items(), key=lambda kv: -kv[1])[:5])
        why = (
            f"The management daemons together used {total:.2f} of the {pc.busy_cores:.2f} busy cores ({shares}): "
            "their work per instance, times the number of instances, fills the host, and the guests and the "
            "other daemons wait for CPU behind it. More workers cannot help while every CPU is busy."
        )
        fix = (
            "Give the control plane CPUs of its own (apart from the guests) or more cores, and cut its CPU per "
            f"instance: {_cost_hint(top)}"
        )
    return Finding(
        id="storm.host_cpu_saturated",
        title=f"host CPU saturated during {pc.title}: {busy_pct:.0f} % busy on average, most by {top} "
        f"({cores:.2f} cores)",
        severity=Severity.HIGH,
        evidence=tuple(Evidence.say(e) for e in evidence),
        why=why,
        fix=fix,
        source=SEED_000,
        figures={
            **_figures(pc),
            "busy_pct": round(busy_pct, 1),
            "saturated_share": pc.saturated_share,
            "busiest": top,
            "virt_type": virt_type,
        },
    )


def _guests_bound(
    pc: PhaseCpu, pinned: list[Finding], cut: MonitorSeries, virt_type: str | None, config: StormDiagnosisConfig
) -> Finding:
    seen = sum(
        1
        for i, p in enumerate(cut.procs)
        if set(p.groups) & set(config.guest_groups) and np.isfinite(cut.proc_cpu_pct[:, i]).any()
    )
    medians = [float(f.figures.get("median_pct", 0.0)) for f in pinned]
    idle = min(float(f.figures.get("median_idle_cores", 0.0)) for f in pinned)
    tcg = virt_type == "qemu"
    evidence = (
        f"{_window(pc)}: {_waiting(pc)}",
        f"{len(pinned)} of {seen} guest processes kept one core busy in most of their samples "
        f"(median {np.median(medians):.0f} % of one core), e.g. {pinned[0].title.split(': ', 1)[-1]}",
        f"the host still had at least {idle:.2f} of its {pc.cpus} CPUs idle (median over those samples)",
        f"host CPU by group: {_by_group(pc)}",
    )
    return Finding(
        id="storm.guests_cpu_bound",
        title=f"guests CPU-bound during {pc.title}: {len(pinned)} guest(s) at one core each, the host not saturated",
        severity=Severity.MEDIUM,
        evidence=tuple(Evidence.say(e) for e in evidence),
        why=(
            "Each guest's virtual CPU runs on one host thread: a guest keeping that thread at 100 % boots as fast "
            "as one virtual CPU allows, and idle host CPUs cannot help it."
            + (" Under TCG that CPU is emulated, several times slower than KVM." if tcg else "")
        ),
        fix=("Use KVM instead of TCG, " if virt_type != "kvm" else "")
        + "give the guests a lighter boot (fewer services, a smaller kernel), or a second vCPU if their boot runs "
        "in parallel.",
        source=SEED_000,
        figures={**_figures(pc), "pinned_guests": len(pinned), "guests": seen, "virt_type": virt_type},
    )


# What a phase waits for when nothing on the host is busy, and what shortens it.
_WAITS = {
    "create": "the management side's own steps (API calls, libvirtd defining and starting each domain, "
    "storage and network set-up) and the status poll's interval",
    "ping": "the guests' own boot (firmware, kernel, timers, DHCP)",
    "ssh": "sshd starting in each guest, the login's round trips and SSH retries",
    "delete": "the hypervisor tearing each domain down (QEMU's exit, cleanup) and the status poll's interval",
}
_SHORTEN = {
    "create": "fewer round trips per instance, a lighter domain definition",
    "ping": "a smaller image, fewer boot services, no DHCP retries",
    "ssh": "sshd started early, host keys made at build time",
    "delete": "destroy rather than a graceful shutdown",
}


def _phase_text(texts: Mapping[str, str], pc: PhaseCpu, otherwise: str) -> str:
    """The text for the phase's key, unless the driver observes that phase another way (then
    "sshd starting" would be wrong: the phase is whatever its label says)."""
    return texts.get(pc.phase, otherwise) if not pc.label else otherwise


def _latency_bound(pc: PhaseCpu, busy_pct: float, config: StormDiagnosisConfig) -> Finding:
    return Finding(
        id="storm.latency_bound",
        title=f"{pc.title} is latency-bound: nothing on the host saturated ({pc.idle_cores:.1f} of {pc.cpus} CPUs idle)",
        severity=Severity.INFO,
        evidence=(
            Evidence.say(
                f"{_window(pc)} the host was {busy_pct:.0f} % busy on average, ≥ {config.saturated_pct:.0f} % for "
                f"{pc.saturated_share:.0%} of it: {_by_group(pc)}"
            ),
            Evidence.say(f"no monitored process kept one core busy; {_waiting(pc)}"),
        ),
        why=(
            "Neither the host's CPUs nor a single thread were exhausted, yet the instances waited: the time "
            f"went to waiting — on {_phase_text(_WAITS, pc, 'timers, timeouts and retries')}; with a cloud "
            "driver, on services on other hosts."
        ),
        fix=(
            f"Nothing on this host to add CPU to for {pc.title}: shorten what the instances wait for "
            f"({_phase_text(_SHORTEN, pc, 'timeouts, retries')}), lower --poll-interval if the phase lasts a few "
            "polls, or look at the cloud's own services."
        ),
        source=SEED_000,
        figures={**_figures(pc), "busy_pct": round(busy_pct, 1)},
    )


def _unmonitored(windows: Sequence[PhaseWindow]) -> Finding:
    names = ", ".join(w.phase for w in windows) or "every phase"
    return Finding(
        id="storm.unmonitored",
        title=f"no host samples for {names}",
        severity=Severity.INFO,
        evidence=(Evidence.say("the monitor recorded no sample inside these phases' windows"),),
        why="Without samples nothing can be said about who used the host.",
        fix="Keep monitor.npz in the run folder; storms shorter than a monitor tick cannot be diagnosed.",
        source=SEED_000,
        figures={"phases": [w.phase for w in windows]},
    )


# -- scale: which phase grows fastest with the number of instances --


_PHASE_WHY = {
    "create": "create is the management side's work per instance (API, scheduler, libvirtd defining and "
    "starting the domain): when it grows with N, the instances queue for a daemon (seed 000: nova-api blocking "
    "on the database, libvirtd's worker limits).",
    "ping": "ping is each guest's boot (kernel, init, DHCP): it grows with N when the guests share too few "
    "CPUs (TCG on few cores), or when the DHCP server serialises the leases.",
    "ssh": "ssh is sshd's start and the login's key exchange, CPU work inside each guest: it grows with N as "
    "the guests share the host's CPUs.",
    "delete": "delete is the management side destroying each domain: when it grows with N, the deletes queue "
    "for a daemon.",
}
_PHASE_FIX = {
    "create": "Raise libvirtd's max_workers / max_client_requests (`redline lab hypervisor up --max-workers N "
    "--max-client-requests N`), and on a cloud run more nova-api and conductor workers.",
    "ping": "Use KVM instead of TCG, boot fewer guests per core, or lighten the guests' boot.",
    "ssh": "Use KVM instead of TCG, fewer guests per core, or a lighter sshd (pre-generated host keys).",
    "delete": "Raise libvirtd's max_workers / max_client_requests, or delete in smaller batches.",
}


def _times(ratio: float) -> str:
    return f"{ratio:.1f}×" if math.isfinite(ratio) else "from zero"


def _median_by_n(points: Sequence[ScalePoint], phase: str) -> dict[int, float]:
    by_n: dict[int, list[float]] = {}
    for p in points:
        v = p.phase_median_s.get(phase)
        if v is not None and math.isfinite(v):
            by_n.setdefault(p.n, []).append(v)
    return {n: float(np.median(v)) for n, v in sorted(by_n.items())}


@dataclass(frozen=True)
class PhaseGrowth:
    """How one phase's median duration grows from the smallest storm to the largest.

    ratio:      duration at n_hi / duration at n_lo (medians over the rounds).
    serial:     ratio / (n_hi / n_lo): 1 = each instance waits for all the others (fully
                serial), 1 / (n_hi / n_lo) = flat (fully parallel).
    slope_s:    least-squares seconds added per extra instance, over every storm: what the
                phase adds to the storm's time as N grows (the ranking).
    """

    phase: str
    n_lo: int
    n_hi: int
    lo_s: float
    hi_s: float
    ratio: float
    serial: float
    slope_s: float


def phase_growth(points: Sequence[ScalePoint]) -> list[PhaseGrowth]:
    """Every phase measured at two sizes or more, fastest-growing (seconds per instance) first."""
    phases = list(dict.fromkeys(k for p in points for k in p.phase_median_s))
    out: list[PhaseGrowth] = []
    for ph in phases:
        by_n = _median_by_n(points, ph)
        if len(by_n) < 2:
            continue
        n_lo, n_hi = min(by_n), max(by_n)
        lo, hi = by_n[n_lo], by_n[n_hi]
        ratio = hi / lo if lo > 0 else math.inf
        xs = np.array([p.n for p in points if math.isfinite(p.phase_median_s.get(ph, math.nan))], float)
        ys = np.array([p.phase_median_s[ph] for p in points if math.isfinite(p.phase_median_s.get(ph, math.nan))])
        slope = float(np.polyfit(xs, ys, 1)[0]) if np.ptp(xs) > 0 else 0.0
        out.append(PhaseGrowth(ph, n_lo, n_hi, lo, hi, ratio, ratio / (n_hi / n_lo), slope))
    return sorted(out, key=lambda g: -g.slope_s)


def fastest_growing_phase(result: ScaleResult, largest_storm: Sequence[PhaseCpu] = ()) -> Finding | None:
    """The phase whose median duration grows fastest with the instance count, as a finding;
    None when fewer than two sizes have phase durations.

    `largest_storm`: the phase CPU table of the largest storm, when known: the host's CPU
    in that phase is the growth's likely cause, and is quoted. The storms' names for their
    phases (`result.labels`: a console marker for "ssh") are used in every sentence, and a
    relabelled phase gets no sshd-specific advice.
    """
    growth = phase_growth(result.points)
    if not growth:
        return None
    top = growth[0]
    labels = result.labels

    def lab(phase: str) -> str:
        return labels.get(phase, phase)

    relabelled = top.phase in labels
    # Less than a tenth longer from the smallest storm to the largest is a flat phase (the
    # noise of one storm is larger than that), whatever the fitted slope's sign.
    grows = top.slope_s > 0 and top.ratio >= 1.1
    others = ", ".join(f"{lab(g.phase)} {_times(g.ratio)}" for g in growth[1:])
    evidence = [
        f"{lab(top.phase)} grew {_times(top.ratio)} from {top.n_lo} to {top.n_hi} instances "
        f"({top.lo_s:.2f} s → {top.hi_s:.2f} s median; fully serial would be {top.n_hi / top.n_lo:.0f}×)"
        + (f" while {others}" if others else ""),
        f"{lab(top.phase)} adds {top.slope_s:.2f} s per extra instance"
        + "".join(f"; {lab(g.phase)} {g.slope_s:.2f} s" for g in growth[1:]),
    ]
    ts = [(p.n, p.t_s) for p in result.points if math.isfinite(p.t_s)]
    t_slope = None
    if len({n for n, _ in ts}) >= 2:
        t_slope = float(np.polyfit([n for n, _ in ts], [t for _, t in ts], 1)[0])
        if t_slope > 0 and top.phase != "delete":
            evidence.append(
                f"the storm's time (first request → last {result.goal_label}) adds {t_slope:.2f} s per extra "
                f"instance: {lab(top.phase)} accounts for {min(1.0, top.slope_s / t_slope):.0%} of that"
            )
    pc = next((c for c in largest_storm if c.phase == top.phase), None)
    fix = "Look at this phase's host CPU table in the largest storm's report."
    fix = fix if relabelled else _PHASE_FIX.get(top.phase, fix)
    if pc is not None:
        busy = 100.0 * pc.busy_cores / pc.cpus if pc.cpus else 0.0
        evidence.append(
            f"in the storm of {top.n_hi}, during {pc.title} the host's {pc.cpus} CPUs were {busy:.0f} % busy: "
            f"{_by_group(pc)}"
        )
        if busy >= 90.0 and pc.busiest == "qemu":
            fix = "The guests eat the host: use KVM instead of TCG, boot fewer guests per core, or lighter guests."
        elif busy >= 90.0 and pc.busiest == OTHER:
            fix = "Other processes took the host's CPU: run the sweep on a quiet host. " + fix
    if not grows:
        severity = Severity.INFO
    elif top.serial >= 0.5:
        severity = Severity.HIGH
    elif top.serial >= 0.25:
        severity = Severity.MEDIUM
    else:
        severity = Severity.LOW
    shape = (
        "no phase grows with the number of instances"
        if not grows
        else f"{lab(top.phase)} grows fastest with the storm's size: {_times(top.ratio)} from {top.n_lo} to {top.n_hi}"
    )
    return Finding(
        id="scale.fastest_growing_phase",
        title=shape,
        severity=severity,
        evidence=tuple(Evidence.say(e) for e in evidence),
        why=("" if relabelled else _PHASE_WHY.get(top.phase, ""))
        + (
            f" Here it grew {top.serial:.0%} as fast as fully serial would (100 %: each instance waits for all the"
            " others)."
            if math.isfinite(top.serial)
            else ""
        ),
        fix=fix,
        source=SEED_000,
        figures={
            "phase": top.phase,
            "t_slope_s": None if t_slope is None else round(t_slope, 4),
            "phases": [
                {
                    "phase": g.phase,
                    "n_lo": g.n_lo,
                    "n_hi": g.n_hi,
                    "lo_s": round(g.lo_s, 3),
                    "hi_s": round(g.hi_s, 3),
                    "ratio": round(g.ratio, 3) if math.isfinite(g.ratio) else None,
                    "serial": round(g.serial, 3) if math.isfinite(g.serial) else None,
                    "slope_s": round(g.slope_s, 4),
                }
                for g in growth
            ],
        },
    )
