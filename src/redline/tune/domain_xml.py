"""Build (or retune) libvirt domain XML from a Placement, the way seed 002 prescribes:
vcpupin + emulatorpin, one guest NUMA cell bound to one host node, huge pages + nosharepages,
disk cache='none' io='native', vhost-net with one queue per vCPU."""

from __future__ import annotations

import math
from dataclasses import dataclass

from lxml import etree

from redline.audit.parse import format_cpuset, parse_cpuset
from redline.errors import UserError
from redline.tune.placement import Placement

REDLINE_NS = "https://redline.invalid/ns/tune/1"


@dataclass(frozen=True)
class GuestSpec:
    name: str
    vcpus: int
    memory_kib: int
    hugepage_kib: int | None = None
    multiqueue: bool = False
    numa_mode: str = "preferred"  # seed 002 / Red Hat: preferred avoids OOM kills on overcommit
    domain_type: str = "kvm"


def rounded_memory_kib(spec: GuestSpec) -> int:
    """Huge-page backed memory must be a whole number of pages."""
    if spec.hugepage_kib:
        return math.ceil(spec.memory_kib / spec.hugepage_kib) * spec.hugepage_kib
    return spec.memory_kib


def skeleton(spec: GuestSpec) -> etree._Element:
    dom = etree.Element("domain", type=spec.domain_type)
    etree.SubElement(dom, "name").text = spec.name
    etree.SubElement(dom, "memory", unit="KiB").text = str(rounded_memory_kib(spec))
    etree.SubElement(dom, "vcpu", placement="static").text = str(spec.vcpus)
    os_ = etree.SubElement(dom, "os")
    etree.SubElement(os_, "type", arch="x86_64").text = "hvm"
    etree.SubElement(os_, "boot", dev="hd")
    feats = etree.SubElement(dom, "features")
    etree.SubElement(feats, "acpi")
    etree.SubElement(feats, "apic")
    devices = etree.SubElement(dom, "devices")
    disk = etree.SubElement(devices, "disk", type="file", device="disk")
    etree.SubElement(disk, "driver", name="qemu", type="qcow2")
    etree.SubElement(disk, "source", file=f"/var/lib/libvirt/images/{spec.name}.qcow2")
    etree.SubElement(disk, "target", dev="vda", bus="virtio")
    iface = etree.SubElement(devices, "interface", type="network")
    etree.SubElement(iface, "source", network="default")
    etree.SubElement(iface, "model", type="virtio")
    etree.SubElement(devices, "console", type="pty")
    return dom


def _replace(dom: etree._Element, tag: str, after: tuple[str, ...]) -> etree._Element:
    """Drop any existing <tag> and insert a fresh one after the last of `after` present
    (libvirt's schema interleaves most children, the order only keeps the output readable)."""
    for old in dom.findall(tag):
        dom.remove(old)
    new = etree.Element(tag)
    anchor = None
    for el in dom:
        if isinstance(el.tag, str) and el.tag in after:
            anchor = el
    if anchor is None:
        dom.insert(0, new)
    else:
        anchor.addnext(new)
    return new


def apply(dom: etree._Element, spec: GuestSpec, placement: Placement) -> etree._Element:
    """Write the placement and the seed-002 settings into `dom` (modified in place and returned)."""
    if dom.tag != "domain":
        raise UserError("the --in file is not a libvirt <domain> document")
    name = dom.find("name")
    if name is None:
        etree.SubElement(dom, "name").text = spec.name
    mem_kib = rounded_memory_kib(spec)
    for tag in ("memory", "currentMemory"):
        el = dom.find(tag)
        if el is not None or tag == "memory":
            el = el if el is not None else _replace(dom, tag, ("name", "uuid", "title", "description", "metadata"))
            el.set("unit", "KiB")
            el.text = str(mem_kib)

    meta = dom.find("metadata")
    if meta is None:
        meta = _replace(dom, "metadata", ("name", "uuid", "title", "description"))
    for old in meta.findall(f"{{{REDLINE_NS}}}placement"):
        meta.remove(old)
    etree.SubElement(
        meta,
        f"{{{REDLINE_NS}}}placement",
        nsmap={"redline": REDLINE_NS},
        level=placement.level,
        node=str(placement.node),
        held=format_cpuset(placement.held),
    )

    vcpu = _replace(dom, "vcpu", ("name", "uuid", "metadata", "memory", "currentMemory", "maxMemory"))
    vcpu.set("placement", "static")
    vcpu.set("cpuset", placement.cpuset)
    vcpu.text = str(spec.vcpus)

    mb = _replace(dom, "memoryBacking", ("name", "uuid", "metadata", "memory", "currentMemory", "maxMemory"))
    if spec.hugepage_kib:
        hp = etree.SubElement(mb, "hugepages")
        etree.SubElement(hp, "page", size=str(spec.hugepage_kib), unit="KiB", nodeset="0")
    etree.SubElement(mb, "nosharepages")

    cputune = _replace(dom, "cputune", ("vcpu", "iothreads"))
    for i, cpu in enumerate(placement.pins):
        etree.SubElement(cputune, "vcpupin", vcpu=str(i), cpuset=str(cpu))
    # QEMU's emulator threads share the guest's CPUs rather than landing on CPU0/IRQ CPUs.
    etree.SubElement(cputune, "emulatorpin", cpuset=placement.cpuset)

    mode = "strict" if spec.hugepage_kib else spec.numa_mode  # huge pages come from one node only
    numatune = _replace(dom, "numatune", ("cputune", "vcpu"))
    etree.SubElement(numatune, "memory", mode=mode, nodeset=str(placement.node))
    etree.SubElement(numatune, "memnode", cellid="0", mode=mode, nodeset=str(placement.node))

    cpu = dom.find("cpu")
    if cpu is None:
        cpu = _replace(dom, "cpu", ("features", "os", "numatune", "cputune"))
    for old in cpu.findall("topology") + cpu.findall("numa"):
        cpu.remove(old)
    threads = placement.threads
    topo_el = etree.SubElement(
        cpu, "topology", sockets="1", dies="1", cores=str(spec.vcpus // threads), threads=str(threads)
    )
    model = cpu.find("model")
    if model is not None:
        model.addnext(topo_el)  # schema: <model>, <vendor>, <topology> ... in order
    numa = etree.SubElement(cpu, "numa")
    etree.SubElement(
        numa, "cell", id="0", cpus=f"0-{spec.vcpus - 1}" if spec.vcpus > 1 else "0", memory=str(mem_kib), unit="KiB"
    )

    devices = dom.find("devices")
    if devices is not None:
        for disk in devices.findall("disk"):
            if disk.get("device", "disk") != "disk":
                continue
            drv = disk.find("driver")
            if drv is None:
                drv = etree.Element("driver", name="qemu")
                disk.insert(0, drv)
            drv.set("cache", "none")
            drv.set("io", "native")
        for iface in devices.findall("interface"):
            model_el = iface.find("model")
            if model_el is not None and model_el.get("type") != "virtio":
                continue  # vhost only drives virtio-net
            drv = iface.find("driver")
            if drv is None:
                drv = etree.SubElement(iface, "driver")
            drv.set("name", "vhost")
            if spec.multiqueue and spec.vcpus > 1:
                drv.set("queues", str(spec.vcpus))
            elif "queues" in drv.attrib:
                del drv.attrib["queues"]
    return dom


def build(spec: GuestSpec, placement: Placement, base: etree._Element | None = None) -> etree._Element:
    return apply(base if base is not None else skeleton(spec), spec, placement)


def to_string(dom: etree._Element) -> str:
    etree.indent(dom, space="  ")
    text: str = etree.tostring(dom, pretty_print=True, encoding="unicode")
    return text


def parse_domain(data: bytes, origin: str) -> etree._Element:
    try:
        parser = etree.XMLParser(remove_blank_text=True, resolve_entities=False, no_network=True)
        dom = etree.fromstring(data, parser)
    except etree.XMLSyntaxError as exc:
        raise UserError(f"{origin} is not well-formed XML: {exc}") from exc
    if dom.tag != "domain":
        raise UserError(f"{origin} is not a libvirt <domain> document (root is <{dom.tag}>)")
    return dom


@dataclass(frozen=True)
class ExistingGuest:
    origin: str
    cpus: frozenset[int]  # pinned or held CPUs
    node: int | None
    hugepages: tuple[int, int] | None  # (page size KiB, pages)


def existing_guest(dom: etree._Element, origin: str) -> ExistingGuest:
    """CPUs and huge pages another guest already takes, from its domain XML."""
    cpus: set[int] = set()
    for el in dom.iterfind("./cputune/vcpupin"):
        cpus |= parse_cpuset(el.get("cpuset", ""))
    vcpu = dom.find("vcpu")
    if not cpus and vcpu is not None and vcpu.get("cpuset"):
        cpus |= parse_cpuset(vcpu.get("cpuset", ""))
    for el in dom.iterfind(f"./metadata/{{{REDLINE_NS}}}placement"):
        cpus |= parse_cpuset(el.get("held", ""))
    node = None
    nt = dom.find("./numatune/memory")
    if nt is not None and nt.get("nodeset", "").isdigit():
        node = int(nt.get("nodeset"))
    pages = None
    page = dom.find("./memoryBacking/hugepages/page")
    mem = dom.find("memory")
    if page is not None and mem is not None and mem.text:
        size = int(page.get("size", "2048")) * (1024 if page.get("unit", "KiB") in ("M", "MiB") else 1)
        mem_kib = int(mem.text) * (1024 if mem.get("unit", "KiB") in ("M", "MiB") else 1)
        pages = (size, math.ceil(mem_kib / size))
    return ExistingGuest(origin, frozenset(cpus), node, pages)
