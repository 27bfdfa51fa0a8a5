"""Kernel and device settings of a KVM host (seed 002), read from sysfs and procfs."""

from __future__ import annotations

import re

from redline.audit.facts import guest_pins, has_kernel_view, numa_nodes, online_cpus
from redline.audit.parse import bracketed, format_cpuset, parse_cpuset, parse_interrupts
from redline.audit.registry import AuditParams, CheckOutcome, bad, check, ev, ok, skip
from redline.audit.snapshot import Snapshot
from redline.model.finding import Change, Severity

SEED002 = "seed 002 (Nova/KVM tuning)"
RHEL_TUNING = "RHEL Virtualization Tuning and Optimization Guide"
KSM = "/sys/kernel/mm/ksm"
NO_KERNEL_VIEW = "the snapshot holds no /proc or /sys, so device presence cannot be judged"
THP = "/sys/kernel/mm/transparent_hugepage"


def _int(s: Snapshot, path: str) -> int | None:
    v = s.value(path)
    try:
        return int(v) if v is not None else None
    except ValueError:
        return None


@check("host.ksm", "KSM page merging", SEED002 + "; " + RHEL_TUNING)
def ksm(s: Snapshot, p: AuditParams) -> CheckOutcome:
    run = s.value(f"{KSM}/run")
    if run is None:
        return skip("kernel without KSM (no /sys/kernel/mm/ksm)")
    sharing = _int(s, f"{KSM}/pages_sharing") or 0
    evidence = [ev(f"{KSM}/run", run), ev(f"{KSM}/pages_sharing", sharing)]
    nodes = len(numa_nodes(s))
    why = (
        "KSM scans guest memory to merge identical pages; the scan costs CPU, merged pages "
        "break huge pages, and on NUMA hosts a page merged across nodes is remote for some "
        "guests (seed 002 measured higher access latency)."
    )
    if run == "1" or sharing > 0:
        return bad(
            Severity.MEDIUM if nodes > 1 else Severity.LOW,
            why,
            "Stop KSM host-wide (`echo 2 > /sys/kernel/mm/ksm/run` also unmerges shared pages; "
            "disable ksmtuned), or per guest with <memoryBacking><nosharepages/>.",
            *evidence,
            changes=(Change("write", f"{KSM}/run", "2" if sharing else "0"),),
        )
    return ok(why, *evidence)


@check("host.thp", "transparent huge pages", SEED002)
def thp(s: Snapshot, p: AuditParams) -> CheckOutcome:
    raw = s.value(f"{THP}/enabled")
    if raw is None:
        return skip("kernel without transparent huge pages")
    mode = bracketed(raw)
    why = (
        "Guest RAM backed by huge pages cuts TLB misses. QEMU marks guest RAM with "
        "madvise(MADV_HUGEPAGE), so 'madvise' or 'always' both give guests THP; 'never' does not."
    )
    if mode == "never":
        return bad(
            Severity.LOW,
            why,
            "echo madvise > /sys/kernel/mm/transparent_hugepage/enabled (or always), or give guests static huge pages.",
            ev(f"{THP}/enabled", raw),
            changes=(Change("write", f"{THP}/enabled", "madvise"),),
        )
    return ok(why, ev(f"{THP}/enabled", raw))


@check("host.thp_defrag", "THP defragmentation on fault", SEED002)
def thp_defrag(s: Snapshot, p: AuditParams) -> CheckOutcome:
    raw = s.value(f"{THP}/defrag")
    if raw is None:
        return skip("kernel without transparent huge pages")
    mode = bracketed(raw)
    why = (
        "With defrag 'always' a page fault may stall while the kernel compacts memory to build "
        "a huge page; the guest sees that as latency spikes. Seed 002 sets defrag to never."
    )
    if mode == "always":
        return bad(
            Severity.LOW,
            why,
            "echo madvise > /sys/kernel/mm/transparent_hugepage/defrag (or never/defer).",
            ev(f"{THP}/defrag", raw),
            changes=(Change("write", f"{THP}/defrag", "madvise"),),
        )
    return ok(why, ev(f"{THP}/defrag", raw))


@check("host.hugepages", "huge pages reserved per NUMA node", SEED002 + "; libvirt memoryBacking docs")
def hugepages(s: Snapshot, p: AuditParams) -> CheckOutcome:
    paths = s.glob("/sys/devices/system/node/node*/hugepages/hugepages-*/nr_hugepages")
    if not paths:
        return skip("no per-node huge page counters (no NUMA sysfs)")
    per_node: dict[str, int] = {}
    evidence = []
    for path in paths:
        m = re.search(r"/(node\d+)/hugepages/hugepages-(\d+kB)/", path)
        if not m:
            continue
        n = _int(s, path) or 0
        per_node[m.group(1)] = per_node.get(m.group(1), 0) + n
        evidence.append(ev(path, n))
    why = (
        "A guest with <hugepages/> only starts if its NUMA node has enough free huge pages of "
        "the size it asks for; pages reserved on one node do not serve a guest pinned to another."
    )
    empty = sorted(node for node, n in per_node.items() if n == 0)
    if not empty:
        return ok(why, *evidence)
    severity = Severity.LOW if len(empty) == len(per_node) else Severity.MEDIUM
    return bad(
        severity,
        why + (" No node has any reserved." if len(empty) == len(per_node) else f" Nodes without: {', '.join(empty)}."),
        "Reserve huge pages on every node that hosts guests, at boot (hugepagesz=1G hugepages=N "
        "or default_hugepagesz) or per node via /sys/devices/system/node/nodeN/hugepages/*/nr_hugepages.",
        *evidence,
    )


@check("host.numa_balancing", "automatic NUMA balancing", SEED002 + "; " + RHEL_TUNING)
def numa_balancing(s: Snapshot, p: AuditParams) -> CheckOutcome:
    path = "/proc/sys/kernel/numa_balancing"
    v = s.value(path)
    nodes = numa_nodes(s)
    if v is None:
        return skip("kernel without automatic NUMA balancing")
    why = (
        "Automatic NUMA balancing unmaps pages to sample accesses and migrates them; for guests "
        "pinned to one node (what seed 002 prescribes) it only adds faults and migrations."
    )
    if len(nodes) <= 1:
        return skip("single NUMA node: balancing has nothing to move", ev(path, v))
    pinned = guest_pins(s)
    if v != "0" and pinned:
        return bad(
            Severity.LOW,
            why,
            "sysctl -w kernel.numa_balancing=0 (persist in /etc/sysctl.d) when guests are pinned.",
            ev(path, v),
            *(ev(k, f"guest pinned to {format_cpuset(c)}") for k, c in pinned.items()),
            changes=(Change("write", path, "0", persist="kernel.numa_balancing"),),
        )
    return ok(why + (" No pinned guests found, so balancing is harmless here." if v != "0" else ""), ev(path, v))


@check("host.cpufreq_governor", "CPU frequency governor", RHEL_TUNING + "; tuned virtual-host profile")
def cpufreq_governor(s: Snapshot, p: AuditParams) -> CheckOutcome:
    paths = s.glob("/sys/devices/system/cpu/cpu*/cpufreq/scaling_governor")
    if not paths:
        return skip("no cpufreq (frequency scaling not exposed, e.g. inside a VM)")
    govs: dict[str, list[str]] = {}
    for path in paths:
        cpu = path.split("/")[5]
        govs.setdefault(s.value(path) or "?", []).append(cpu)
    evidence = [
        ev("/sys/devices/system/cpu/cpu*/cpufreq/scaling_governor", f"{g}: {len(c)} CPUs")
        for g, c in sorted(govs.items())
    ]
    why = (
        "Power-saving governors ramp frequency up only after load is seen, so bursty guest work "
        "(boot storms, request spikes) runs at low clock first."
    )
    slow = {g: c for g, c in govs.items() if g not in ("performance",)}
    if not slow:
        return ok(why, *evidence)
    return bad(
        Severity.LOW,
        why,
        "Use the performance governor (tuned-adm profile virtual-host, or cpupower frequency-set -g performance).",
        *evidence,
        changes=tuple(Change("write", path, "performance") for path in paths if (s.value(path) or "") != "performance"),
    )


@check(
    "host.vhost_net_device", "/dev/vhost-net present", SEED002 + " (vhost_net: lower latency, ~8x virtio throughput)"
)
def vhost_net_device(s: Snapshot, p: AuditParams) -> CheckOutcome:
    why = (
        "Without /dev/vhost-net, virtio-net packets are processed in QEMU's userspace thread "
        "instead of the in-kernel vhost worker: higher latency and far lower throughput."
    )
    if not has_kernel_view(s):
        return skip(NO_KERNEL_VIEW)
    if s.exists("/dev/vhost-net"):
        return ok(why, ev("/dev/vhost-net", "present"))
    return bad(
        Severity.MEDIUM, why, "modprobe vhost_net (and add it to /etc/modules-load.d).", ev("/dev/vhost-net", "absent")
    )


@check("host.vhost_net_module", "vhost_net module loaded", SEED002)
def vhost_net_module(s: Snapshot, p: AuditParams) -> CheckOutcome:
    why = "The vhost_net module provides the in-kernel virtio-net backend that multi-queue interfaces use."
    if not has_kernel_view(s):
        return skip(NO_KERNEL_VIEW)
    if s.exists("/sys/module/vhost_net"):
        return ok(why, ev("/sys/module/vhost_net", "loaded"))
    return bad(
        Severity.MEDIUM,
        why,
        "modprobe vhost_net; echo vhost_net > /etc/modules-load.d/vhost_net.conf",
        ev("/sys/module/vhost_net", "not loaded"),
    )


@check("host.kvm", "/dev/kvm usable", "libvirt virt-host-validate; " + SEED002)
def kvm(s: Snapshot, p: AuditParams) -> CheckOutcome:
    if not has_kernel_view(s):
        return skip(NO_KERNEL_VIEW)
    state = s.probes.get("kvm", "missing")
    why = "Without a usable /dev/kvm, QEMU falls back to TCG emulation, tens of times slower."
    if state == "usable":
        return ok(why + " The device opens and answers KVM_GET_API_VERSION.", ev("/dev/kvm", state))
    return bad(
        Severity.HIGH,
        why,
        "Enable virtualisation in firmware, load kvm_intel/kvm_amd, and let the QEMU user open /dev/kvm.",
        ev("/dev/kvm", state),
    )


SCHEDULER_ADVICE = {
    True: {"mq-deadline", "bfq", "deadline", "cfq", "kyber"},
    False: {"none", "noop", "mq-deadline", "deadline", "kyber"},
}


@check("host.io_scheduler", "I/O scheduler per disk", SEED002 + " (noop/deadline/cfq)")
def io_scheduler(s: Snapshot, p: AuditParams) -> CheckOutcome:
    paths = [
        x for x in s.glob("/sys/block/*/queue/scheduler") if not re.match(r"/sys/block/(loop|ram|zram|dm-|md|sr)", x)
    ]
    if not paths:
        return skip("no physical block devices with a scheduler")
    evidence = []
    wrong = []
    changes = []
    for path in paths:
        disk = path.split("/")[3]
        rot_raw = s.value(f"/sys/block/{disk}/queue/rotational")
        rotational = rot_raw == "1"
        current = bracketed(s.value(path) or "") or "?"
        evidence.append(ev(path, f"{s.value(path)} (rotational={rot_raw})"))
        if current not in SCHEDULER_ADVICE[rotational]:
            wrong.append(disk)
            want = "mq-deadline" if rotational else "none"
            if want in (s.value(path) or ""):
                changes.append(Change("write", path, want))
    why = (
        "A rotating disk shared by many guests needs a scheduler that orders and bounds "
        "requests (mq-deadline, or bfq for fairness: the successor of the seed's cfq); on flash "
        "and virtual disks reordering only costs CPU, so 'none' (the seed's noop) is right."
    )
    if not wrong:
        return ok(why, *evidence)
    return bad(
        Severity.LOW,
        why,
        f"Change the scheduler of {', '.join(wrong)} (echo mq-deadline|none > /sys/block/DISK/queue/scheduler; persist with a udev rule).",
        *evidence,
        changes=tuple(changes),
    )


def _irq_cpus(s: Snapshot) -> dict[int, frozenset[int]]:
    """Device IRQs that have fired, and the CPUs that serve them (effective affinity if known)."""
    text = s.text("/proc/interrupts")
    if text is None:
        return {}
    out: dict[int, frozenset[int]] = {}
    for line in parse_interrupts(text):
        if not line.is_device or sum(line.counts) == 0:
            continue
        irq = int(line.irq)
        aff = s.value(f"/proc/irq/{irq}/effective_affinity_list") or s.value(f"/proc/irq/{irq}/smp_affinity_list")
        if aff:
            out[irq] = parse_cpuset(aff)
        else:
            out[irq] = frozenset(i for i, c in enumerate(line.counts) if c > 0)
    return out


@check(
    "host.irq_on_guest_cpus",
    "device interrupts on CPUs guests are pinned to",
    SEED002 + " (IRQ tuning: keep guests off NIC IRQ CPUs)",
)
def irq_on_guest_cpus(s: Snapshot, p: AuditParams) -> CheckOutcome:
    pins = guest_pins(s)
    if not pins:
        return skip("no pinned guests (no vcpupin in libvirt domains, no nova cpu_dedicated_set/cpu_shared_set)")
    guest = frozenset().union(*pins.values())
    irqs = _irq_cpus(s)
    if not irqs:
        return skip("/proc/interrupts not readable")
    hits = {irq: cpus & guest for irq, cpus in irqs.items() if cpus & guest}
    evidence = [ev(k, format_cpuset(v)) for k, v in pins.items()]
    why = (
        "A CPU that services device interrupts (NIC queues above all) steals time from the vCPU "
        "pinned to it: jitter inside the guest and slower interrupt handling for everyone."
    )
    if not hits:
        return ok(
            why,
            *evidence,
            ev("/proc/irq/*/effective_affinity_list", f"{len(irqs)} active device IRQs, none on guest CPUs"),
        )
    shown = ", ".join(f"{irq}->{format_cpuset(c)}" for irq, c in sorted(hits.items())[:12])
    return bad(
        Severity.MEDIUM,
        why,
        "Pin device IRQs to housekeeping CPUs outside the guest set (echo CPUS > /proc/irq/N/smp_affinity_list; "
        "set IRQBALANCE_BANNED_CPULIST), or move guests off those CPUs.",
        *evidence,
        ev("/proc/irq/*/effective_affinity_list", f"{len(hits)} IRQs on guest CPUs: {shown}"),
        changes=tuple(
            Change("write", f"/proc/irq/{irq}/smp_affinity_list", format_cpuset(online_cpus(s) - guest))
            for irq in sorted(hits)
            if online_cpus(s) - guest
        ),
    )


@check("host.guest_cpu0", "guests kept off CPU0", SEED002 + " (CPU0 handles interrupts; keep it out of guest XML)")
def guest_cpu0(s: Snapshot, p: AuditParams) -> CheckOutcome:
    pins = guest_pins(s)
    if not pins:
        return skip("no pinned guests (no vcpupin in libvirt domains, no nova cpu_dedicated_set/cpu_shared_set)")
    why = "CPU0 takes timer, IPI and unmigratable interrupts; a vCPU on it gets less CPU than its siblings elsewhere."
    users = {k: v for k, v in pins.items() if 0 in v}
    evidence = [ev(k, format_cpuset(v)) for k, v in pins.items()]
    if not users:
        return ok(why, *evidence)
    return bad(
        Severity.LOW,
        why,
        "Remove CPU0 from guest pinning (nova: cpu_dedicated_set/cpu_shared_set without 0).",
        *evidence,
    )


@check("host.swappiness", "vm.swappiness", "tuned virtual-host profile (vm.swappiness=10)")
def swappiness(s: Snapshot, p: AuditParams) -> CheckOutcome:
    path = "/proc/sys/vm/swappiness"
    v = _int(s, path)
    if v is None:
        return skip("vm.swappiness not readable")
    why = (
        "Guest RAM is anonymous memory of QEMU; a high swappiness lets the host swap it out to "
        "keep page cache, and a swapped-out guest page stalls the guest for a disk read."
    )
    if v <= 10:
        return ok(why, ev(path, v))
    return bad(
        Severity.LOW,
        why,
        "sysctl -w vm.swappiness=10 and persist in /etc/sysctl.d.",
        ev(path, v),
        changes=(Change("write", path, "10", persist="vm.swappiness"),),
    )


@check(
    "host.dirty_ratios",
    "vm.dirty_ratio / vm.dirty_background_ratio",
    "tuned virtual-host profile (dirty_background_ratio=5)",
)
def dirty_ratios(s: Snapshot, p: AuditParams) -> CheckOutcome:
    bg_path, hard_path = "/proc/sys/vm/dirty_background_ratio", "/proc/sys/vm/dirty_ratio"
    bg, hard = _int(s, bg_path), _int(s, hard_path)
    if bg is None or hard is None:
        return skip("dirty ratios not readable")
    why = (
        "Background write-back should start early (5% of RAM) so that writes from guests using "
        "host page cache do not pile up until processes hit dirty_ratio and block."
    )
    evidence = (ev(bg_path, bg), ev(hard_path, hard))
    if bg <= 5 and hard > bg:
        return ok(why, *evidence)
    return bad(
        Severity.INFO,
        why,
        "sysctl -w vm.dirty_background_ratio=5 (tuned virtual-host value), keep dirty_ratio above it.",
        *evidence,
        changes=(Change("write", bg_path, "5", persist="vm.dirty_background_ratio"),),
    )


GOOD_PROFILES = {"virtual-host", "cpu-partitioning", "realtime-virtual-host", "cpu-partitioning-powersave"}


@check("host.tuned_profile", "active tuned profile", "tuned(8) virtual-host profile; " + RHEL_TUNING)
def tuned_profile(s: Snapshot, p: AuditParams) -> CheckOutcome:
    path = "/etc/tuned/active_profile"
    v = s.value(path)
    if v is None:
        if not (s.exists("/etc/tuned") or s.exists("/usr/sbin/tuned")):
            return skip("tuned is not installed")
        v = ""
    why = "tuned's virtual-host profile sets governor, THP, swappiness and write-back for a KVM host in one place."
    if set(v.split()) & GOOD_PROFILES:
        return ok(why, ev(path, v))
    return bad(Severity.INFO, why, "tuned-adm profile virtual-host", ev(path, v or "(none active)"))
