"""Where a guest's vCPUs go, following seed 002: sibling threads of one core, else one socket,
else one NUMA node; never CPU0 nor the CPUs that serve device interrupts. Pure functions."""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import Enum

from redline.audit.parse import format_cpuset
from redline.errors import UserError
from redline.tune.topology import Topology


class ThreadPolicy(str, Enum):
    PREFER = "prefer"  # fill sibling threads of a core first (shares L1/L2)
    ISOLATE = "isolate"  # one vCPU per core; the core's other threads stay idle
    REQUIRE = "require"  # only whole cores, every thread used (needs SMT)


@dataclass(frozen=True)
class Placement:
    pins: tuple[int, ...]  # host CPU of vCPU i
    node: int  # host NUMA node holding CPUs and memory
    level: str  # "core", "socket" or "node": the smallest unit that holds all vCPUs
    threads: int  # guest threads per core, matching how pins pair on siblings
    held: frozenset[int]  # CPUs taken from other guests: pins plus idle siblings (isolate)
    reserved: frozenset[int]  # CPUs kept free for the host (CPU0, IRQ CPUs)

    @property
    def cpuset(self) -> str:
        return format_cpuset(set(self.pins))


@dataclass(frozen=True)
class Request:
    vcpus: int
    memory_kib: int
    hugepage_kib: int | None = None
    policy: ThreadPolicy = ThreadPolicy.PREFER


def default_reserved(topo: Topology) -> frozenset[int]:
    """CPU0 plus the CPUs serving device interrupts (seed 002, IRQ tuning)."""
    return frozenset({0}) | topo.irq_cpus


def _usable_per_core(
    topo: Topology, free: frozenset[int], policy: ThreadPolicy
) -> dict[tuple[int, int], tuple[int, ...]]:
    out = {}
    for key, sibs in topo.cores().items():
        if policy is ThreadPolicy.PREFER:
            avail = tuple(c for c in sibs if c in free)
        elif all(c in free for c in sibs):
            avail = sibs[:1] if policy is ThreadPolicy.ISOLATE else sibs
        else:
            avail = ()
        if avail:
            out[key] = avail
    return out


def _memory_fits(topo: Topology, node: int, req: Request, pages_used: dict[int, int]) -> str | None:
    """None if the node can back the guest's memory, else why not."""
    n = topo.node(node)
    if n is None:
        return f"node {node} unknown"
    if n.memory_kib and req.memory_kib > n.memory_kib:
        return f"node {node} has {n.memory_kib // 1024} MiB, guest needs {req.memory_kib // 1024} MiB"
    if req.hugepage_kib:
        free = n.free_pages(req.hugepage_kib)
        need = math.ceil(req.memory_kib / req.hugepage_kib)
        have = (free or 0) - pages_used.get(node, 0)
        if have < need:
            return f"node {node} has {max(have, 0)} free {req.hugepage_kib} KiB huge pages, guest needs {need}"
    return None


def place(
    topo: Topology,
    req: Request,
    used: frozenset[int] = frozenset(),
    reserved: frozenset[int] | None = None,
    pages_used: dict[int, int] | None = None,
) -> Placement:
    """Choose host CPUs for `req` among CPUs that are online, not reserved and not `used` by other guests.

    Tries the smallest unit first (one core, then the cores of one socket within one node, then
    one node) and, among units that fit, the one with the least spare room, so that large holes
    stay whole for large guests. Raises UserError when no single NUMA node can hold the guest.
    """
    if req.vcpus < 1:
        raise UserError("--vcpus must be at least 1")
    reserved = default_reserved(topo) if reserved is None else reserved
    pages_used = pages_used or {}
    tpc = topo.threads_per_core
    if req.policy is ThreadPolicy.REQUIRE:
        if tpc < 2:
            raise UserError(
                "--thread-policy require needs SMT (sibling threads), and this host has one thread per core"
            )
        if req.vcpus % tpc:
            raise UserError(f"--thread-policy require places whole cores: --vcpus must be a multiple of {tpc}")
    free = topo.online - reserved - used
    usable = _usable_per_core(topo, free, req.policy)
    node_of = {c.core_key: c.node for c in topo.cpus}

    def units(level: str) -> dict[tuple[str | int, ...], list[tuple[int, int]]]:
        groups: dict[tuple[str | int, ...], list[tuple[int, int]]] = {}
        for key in usable:
            if level == "core":
                g: tuple[str | int, ...] = ("core", *key)
            elif level == "socket":
                g = ("socket", key[0], node_of[key])
            else:
                g = ("node", node_of[key])
            groups.setdefault(g, []).append(key)
        return groups

    all_cores = topo.cores()

    def tainted_core(key: tuple[int, int]) -> bool:
        """A core whose other thread is CPU0 or an IRQ CPU: usable, but it shares L1/L2 with them."""
        return any(c in reserved for c in all_cores[key])

    memory_problems: list[str] = []
    for level in ("core", "socket", "node"):
        candidates = []
        for g, keys in units(level).items():
            capacity = sum(len(usable[k]) for k in keys)
            if capacity < req.vcpus:
                continue
            node = node_of[keys[0]]
            why_not = _memory_fits(topo, node, req, pages_used)
            if why_not:
                memory_problems.append(why_not)
                continue
            clean = sum(len(usable[k]) for k in keys if not tainted_core(k))
            candidates.append((clean < req.vcpus, capacity, g, keys, node))
        if not candidates:
            continue
        _, capacity, g, keys, node = min(candidates, key=lambda c: (c[0], c[1], c[2]))
        # Clean cores before those sharing a core with CPU0/IRQ CPUs, fullest first so that vCPUs
        # pair up on siblings, then by core id for stable output.
        ordered = sorted(keys, key=lambda k: (tainted_core(k), -len(usable[k]), k))
        pins: list[int] = []
        held: set[int] = set()
        cores = topo.cores()
        for k in ordered:
            for cpu in usable[k]:
                if len(pins) < req.vcpus:
                    pins.append(cpu)
                    if req.policy is ThreadPolicy.ISOLATE:
                        held |= set(cores[k])
            if len(pins) >= req.vcpus:
                break
        held |= set(pins)
        threads = _guest_threads(pins, cores, req.vcpus)
        return Placement(tuple(pins), node, level, threads, frozenset(held), reserved)
    biggest = max((sum(len(usable[k]) for k in keys) for keys in units("node").values()), default=0)
    detail = f"; {memory_problems[0]}" if memory_problems else ""
    raise UserError(
        f"a guest of {req.vcpus} vCPUs does not fit on one NUMA node: the largest free set on a node "
        f"has {biggest} CPUs after keeping {format_cpuset(reserved) or 'none'} free (CPU0 and IRQ CPUs) "
        f"and skipping {format_cpuset(used) or 'no'} CPUs of other guests{detail}"
    )


def _guest_threads(pins: list[int], cores: dict[tuple[int, int], tuple[int, ...]], vcpus: int) -> int:
    """Threads per core to show the guest: 2 when consecutive vCPUs sit on sibling pairs."""
    core_of = {cpu: key for key, sibs in cores.items() for cpu in sibs}
    for t in (4, 2):
        if vcpus % t == 0 and all(len({core_of[c] for c in pins[i : i + t]}) == 1 for i in range(0, vcpus, t)):
            return t
    return 1
