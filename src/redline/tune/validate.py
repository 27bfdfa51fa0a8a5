"""Check a domain XML against libvirt's RelaxNG schema and against what the schema cannot know:
that pins name real online CPUs, cell ids and node sets refer to existing cells and nodes."""

from __future__ import annotations

import functools
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from lxml import etree

from redline.audit.parse import parse_cpuset
from redline.tune.topology import Topology

SCHEMA = Path("/usr/share/libvirt/schemas/domain.rng")


@dataclass(frozen=True)
class Problem:
    kind: str  # "schema", "semantic"
    message: str


@functools.lru_cache(maxsize=2)
def _relaxng(path: str) -> etree.RelaxNG:
    return etree.RelaxNG(etree.parse(path))


def schema_problems(dom: etree._Element, schema: Path = SCHEMA) -> list[Problem]:
    """RelaxNG validation with lxml; virt-xml-validate when lxml cannot compile the schema."""
    if not schema.exists():
        return [Problem("schema", f"libvirt schema {schema} not found (install libvirt0 / libvirt-daemon)")]
    try:
        rng = _relaxng(str(schema))
    except etree.RelaxNGParseError:
        return _virt_xml_validate(dom)
    if rng.validate(dom):
        return []
    return [Problem("schema", f"line {e.line}: {e.message}") for e in rng.error_log] or [Problem("schema", "invalid")]


def _virt_xml_validate(dom: etree._Element) -> list[Problem]:
    tool = shutil.which("virt-xml-validate")
    if tool is None:
        return [Problem("schema", "lxml could not compile the schema and virt-xml-validate is not installed")]
    with tempfile.NamedTemporaryFile("wb", suffix=".xml") as fh:
        fh.write(etree.tostring(dom))
        fh.flush()
        r = subprocess.run([tool, fh.name, "domain"], capture_output=True, text=True, timeout=30)
    return [] if r.returncode == 0 else [Problem("schema", (r.stderr or r.stdout).strip())]


def semantic_problems(
    dom: etree._Element, topo: Topology, others: frozenset[int] = frozenset(), reserved: frozenset[int] = frozenset()
) -> list[Problem]:
    out: list[str] = []
    online = topo.online
    known = {c.id for c in topo.cpus}
    host_nodes = {n.id for n in topo.nodes}
    vcpu_el = dom.find("vcpu")
    nvcpu = int(vcpu_el.text) if vcpu_el is not None and (vcpu_el.text or "").strip().isdigit() else 0

    pinned: set[int] = set()
    seen_vcpus: set[int] = set()
    for el in dom.iterfind("./cputune/vcpupin"):
        v = int(el.get("vcpu", "-1"))
        if not 0 <= v < nvcpu:
            out.append(f"vcpupin names vCPU {v}, the guest has {nvcpu}")
        if v in seen_vcpus:
            out.append(f"vCPU {v} is pinned twice")
        seen_vcpus.add(v)
        pinned |= parse_cpuset(el.get("cpuset", ""))
    pin_sets: list[tuple[str, set[int] | frozenset[int]]] = [("vcpupin", pinned)]
    emu = dom.find("./cputune/emulatorpin")
    if emu is not None:
        pin_sets.append(("emulatorpin", parse_cpuset(emu.get("cpuset", ""))))
    if vcpu_el is not None and vcpu_el.get("cpuset"):
        pin_sets.append(("vcpu cpuset", parse_cpuset(vcpu_el.get("cpuset", ""))))
    for what, cpus in pin_sets:
        if missing := sorted(cpus - known):
            out.append(f"{what} names CPUs {missing} that the host does not have")
        if offline := sorted((cpus & known) - online):
            out.append(f"{what} names offline CPUs {offline}")
    if clash := sorted(pinned & others):
        out.append(f"vCPUs pinned to CPUs {clash} that other guests already use")
    if bad := sorted(pinned & reserved):
        out.append(f"vCPUs pinned to CPUs {bad} that are kept free for the host (CPU0 / device interrupts)")
    nodes_of_pins = {c.node for c in topo.cpus if c.id in pinned}
    if len(nodes_of_pins) > 1:
        out.append(f"vCPUs span NUMA nodes {sorted(nodes_of_pins)}; seed 002 keeps a guest on one node")

    cells = {int(c.get("id")) for c in dom.iterfind("./cpu/numa/cell") if (c.get("id") or "").isdigit()}
    for el in dom.iterfind("./numatune/memnode"):
        if int(el.get("cellid", "-1")) not in cells:
            out.append(f"numatune memnode cellid {el.get('cellid')} names no guest NUMA cell (cells: {sorted(cells)})")
    for el in dom.iterfind("./numatune/memory"):
        if el.get("nodeset") and (extra := sorted(parse_cpuset(el.get("nodeset", "")) - host_nodes)):
            out.append(f"numatune memory nodeset names host nodes {extra} that do not exist")
    for el in dom.iterfind("./numatune/memnode"):
        if extra := sorted(parse_cpuset(el.get("nodeset", "")) - host_nodes):
            out.append(f"numatune memnode nodeset names host nodes {extra} that do not exist")
    for el in dom.iterfind("./memoryBacking/hugepages/page"):
        if el.get("nodeset") and (extra := sorted(parse_cpuset(el.get("nodeset", "")) - cells)):
            out.append(f"hugepages page nodeset names guest cells {extra} that do not exist (cells: {sorted(cells)})")
    covered: set[int] = set()
    for c in dom.iterfind("./cpu/numa/cell"):
        covered |= parse_cpuset(c.get("cpus", ""))
    if cells and covered != set(range(nvcpu)):
        out.append(f"guest NUMA cells cover vCPUs {sorted(covered)}, expected 0..{nvcpu - 1}")
    return [Problem("semantic", m) for m in out]


def validate(
    dom: etree._Element,
    topo: Topology,
    others: frozenset[int] = frozenset(),
    reserved: frozenset[int] = frozenset(),
    schema: Path = SCHEMA,
) -> list[Problem]:
    return schema_problems(dom, schema) + semantic_problems(dom, topo, others, reserved)
