"""Host CPU/NUMA topology: which CPUs share a core, a socket, a node; memory and huge pages per
node; which CPUs serve device interrupts. Read from sysfs, `virsh capabilities` XML, or JSON."""

from __future__ import annotations

import glob
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lxml import etree

from redline.audit.parse import parse_cpuset, parse_interrupts
from redline.errors import UserError


@dataclass(frozen=True)
class Cpu:
    id: int
    socket: int
    core: int  # core id, unique within its socket
    node: int
    online: bool = True

    @property
    def core_key(self) -> tuple[int, int]:
        return (self.socket, self.core)


@dataclass(frozen=True)
class Node:
    id: int
    memory_kib: int = 0  # 0 when unknown
    free_hugepages: tuple[tuple[int, int], ...] = ()  # (page size KiB, free pages)

    def free_pages(self, size_kib: int) -> int | None:
        for size, n in self.free_hugepages:
            if size == size_kib:
                return n
        return None


@dataclass(frozen=True)
class Topology:
    cpus: tuple[Cpu, ...]
    nodes: tuple[Node, ...]
    irq_cpus: frozenset[int] = frozenset()
    source: str = ""
    notes: tuple[str, ...] = field(default=())

    def cpu(self, cpu_id: int) -> Cpu | None:
        return next((c for c in self.cpus if c.id == cpu_id), None)

    def node(self, node_id: int) -> Node | None:
        return next((n for n in self.nodes if n.id == node_id), None)

    @property
    def online(self) -> frozenset[int]:
        return frozenset(c.id for c in self.cpus if c.online)

    def cores(self) -> dict[tuple[int, int], tuple[int, ...]]:
        """Online CPU ids per physical core, siblings in id order."""
        out: dict[tuple[int, int], list[int]] = {}
        for c in sorted(self.cpus, key=lambda c: c.id):
            if c.online:
                out.setdefault(c.core_key, []).append(c.id)
        return {k: tuple(v) for k, v in out.items()}

    @property
    def threads_per_core(self) -> int:
        return max((len(v) for v in self.cores().values()), default=1)

    def describe(self) -> str:
        sockets = {c.socket for c in self.cpus}
        return (
            f"{len(sockets)} socket(s), {len(self.cores())} cores, {len(self.online)} online CPUs, "
            f"{len(self.nodes)} NUMA node(s), {self.threads_per_core} thread(s)/core; "
            f"IRQ CPUs: {sorted(self.irq_cpus) or 'none'}"
        )


def synthetic(
    sockets: int,
    cores_per_socket: int,
    threads_per_core: int,
    nodes_per_socket: int = 1,
    memory_mib_per_node: int = 16384,
    hugepages_2m_per_node: int = 0,
    irq_cpus: frozenset[int] = frozenset(),
) -> Topology:
    """A topology numbered the way Linux numbers x86 CPUs: thread 0 of every core first, socket
    by socket, then thread 1 of every core, and so on (so CPU n and n + cores are siblings)."""
    total_cores = sockets * cores_per_socket
    cores_per_node = cores_per_socket // nodes_per_socket
    cpus = []
    for t in range(threads_per_core):
        for s in range(sockets):
            for c in range(cores_per_socket):
                cpu_id = t * total_cores + s * cores_per_socket + c
                node = s * nodes_per_socket + c // cores_per_node
                cpus.append(Cpu(cpu_id, s, c, node))
    nodes = tuple(
        Node(n, memory_mib_per_node * 1024, ((2048, hugepages_2m_per_node),) if hugepages_2m_per_node else ())
        for n in range(sockets * nodes_per_socket)
    )
    return Topology(
        tuple(sorted(cpus, key=lambda c: c.id)),
        nodes,
        frozenset(irq_cpus),
        f"synthetic {sockets}x{cores_per_socket}x{threads_per_core}",
    )


def from_json(data: dict[str, Any]) -> Topology:
    """Either the compact form {"sockets", "cores_per_socket", "threads_per_core", ...} or the
    explicit form {"cpus": [{"id", "socket", "core", "node", "online"}], "nodes": [...]}."""
    try:
        irq = frozenset(int(x) for x in data.get("irq_cpus", []))
        if "sockets" in data:
            return synthetic(
                int(data["sockets"]),
                int(data["cores_per_socket"]),
                int(data.get("threads_per_core", 1)),
                int(data.get("nodes_per_socket", 1)),
                int(data.get("memory_mib_per_node", 16384)),
                int(data.get("hugepages_2m_per_node", 0)),
                irq,
            )
        cpus = tuple(
            Cpu(int(c["id"]), int(c["socket"]), int(c["core"]), int(c.get("node", 0)), bool(c.get("online", True)))
            for c in data["cpus"]
        )
        nodes = tuple(
            Node(
                int(n["id"]),
                int(n.get("memory_mib", 0)) * 1024,
                tuple((int(k), int(v)) for k, v in n.get("free_hugepages_kib", {}).items()),
            )
            for n in data.get("nodes", [{"id": 0}])
        )
        return Topology(tuple(sorted(cpus, key=lambda c: c.id)), nodes, irq, "json")
    except (KeyError, TypeError, ValueError) as exc:
        raise UserError(f"topology file is missing or has a bad field: {exc}") from exc


def from_capabilities(xml: bytes | str) -> Topology:
    """Parse `virsh capabilities` output (host/topology/cells)."""
    try:
        root = etree.fromstring(xml.encode() if isinstance(xml, str) else xml)
    except etree.XMLSyntaxError as exc:
        raise UserError(f"capabilities XML does not parse: {exc}") from exc
    cells = root.findall("./host/topology/cells/cell")
    if not cells:
        raise UserError("capabilities XML has no host/topology/cells")
    cpus: list[Cpu] = []
    nodes: list[Node] = []
    for cell in cells:
        nid = int(cell.get("id", "0"))
        mem = cell.find("memory")
        mem_kib = _to_kib(int(mem.text or 0), mem.get("unit", "KiB")) if mem is not None else 0
        pages = tuple(
            (int(p.get("size", "0")), int(p.text or 0)) for p in cell.findall("pages") if int(p.get("size", "0")) > 4
        )
        nodes.append(Node(nid, mem_kib, pages))
        for c in cell.findall("./cpus/cpu"):
            cpus.append(Cpu(int(c.get("id")), int(c.get("socket_id", "0")), int(c.get("core_id", c.get("id"))), nid))
    return Topology(
        tuple(sorted(cpus, key=lambda c: c.id)),
        tuple(nodes),
        frozenset(),
        "virsh capabilities",
        ("capabilities list pages reserved, not free: huge page fit is an upper bound",),
    )


def _to_kib(value: int, unit: str) -> int:
    return (
        value
        * {"KiB": 1, "k": 1, "KB": 1, "MiB": 1024, "M": 1024, "GiB": 1 << 20, "G": 1 << 20, "b": 1, "bytes": 1}.get(
            unit, 1
        )
        // (1024 if unit in ("b", "bytes") else 1)
    )


def _read(path: str) -> str | None:
    try:
        return Path(path).read_text()
    except OSError:
        return None


def irq_cpus_from_proc(root: str = "/") -> frozenset[int]:
    """CPUs that have serviced device interrupts, by effective affinity (what the kernel uses)."""
    base = root.rstrip("/")
    text = _read(f"{base}/proc/interrupts")
    if text is None:
        return frozenset()
    cpus: set[int] = set()
    for line in parse_interrupts(text):
        if not line.is_device or sum(line.counts) == 0:
            continue
        aff = _read(f"{base}/proc/irq/{line.irq}/effective_affinity_list") or _read(
            f"{base}/proc/irq/{line.irq}/smp_affinity_list"
        )
        if aff and aff.strip():
            cpus |= parse_cpuset(aff.strip())
        else:
            cpus |= {i for i, c in enumerate(line.counts) if c > 0}
    return frozenset(cpus)


def from_sysfs(root: str = "/") -> Topology:
    base = root.rstrip("/")
    online_raw = _read(f"{base}/sys/devices/system/cpu/online")
    if online_raw is None:
        raise UserError(f"cannot read {base}/sys/devices/system/cpu/online: no CPU topology under {root}")
    online = parse_cpuset(online_raw.strip())
    node_of: dict[int, int] = {}
    nodes: list[Node] = []
    for ndir in sorted(glob.glob(f"{base}/sys/devices/system/node/node[0-9]*")):
        nid = int(re.findall(r"node(\d+)$", ndir)[0])
        for cpu in parse_cpuset((_read(f"{ndir}/cpulist") or "").strip()):
            node_of[cpu] = nid
        meminfo = _read(f"{ndir}/meminfo") or ""
        m = re.search(r"MemTotal:\s+(\d+) kB", meminfo)
        pages = []
        for hp in glob.glob(f"{ndir}/hugepages/hugepages-*kB"):
            size = int(re.findall(r"hugepages-(\d+)kB", hp)[0])
            pages.append((size, int((_read(f"{hp}/free_hugepages") or "0").strip() or 0)))
        nodes.append(Node(nid, int(m.group(1)) if m else 0, tuple(sorted(pages))))
    if not nodes:
        nodes = [Node(0)]
    cpus = []
    for cdir in glob.glob(f"{base}/sys/devices/system/cpu/cpu[0-9]*"):
        cid = int(re.findall(r"cpu(\d+)$", cdir)[0])
        sock = _read(f"{cdir}/topology/physical_package_id")
        core = _read(f"{cdir}/topology/core_id")
        if sock is None or core is None:
            continue  # offline CPUs lose their topology directory
        cpus.append(Cpu(cid, int(sock), int(core), node_of.get(cid, 0), cid in online))
    if not cpus:
        raise UserError(f"no CPU topology under {base}/sys/devices/system/cpu")
    return Topology(tuple(sorted(cpus, key=lambda c: c.id)), tuple(nodes), irq_cpus_from_proc(root), f"sysfs {root}")


def load(spec: str, root: str = "/") -> Topology:
    """--topology value: 'auto' reads sysfs under root; a file is capabilities XML or JSON/YAML."""
    if spec == "auto":
        return from_sysfs(root)
    path = Path(spec)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise UserError(f"cannot read topology file {spec}: {exc.strerror}") from exc
    if raw.lstrip().startswith(b"<"):
        return from_capabilities(raw)
    try:
        if path.suffix in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(raw)
        else:
            data = json.loads(raw)
    except Exception as exc:
        raise UserError(f"topology file {spec} is neither capabilities XML, JSON nor YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise UserError(f"topology file {spec} must hold a mapping")
    return from_json(data)


__all__ = ["Cpu", "Node", "Topology", "from_capabilities", "from_json", "from_sysfs", "load", "synthetic"]
