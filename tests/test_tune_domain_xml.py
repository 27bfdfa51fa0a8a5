"""Generated domain XML: seed-002 elements present, schema-valid, and semantic checks that bite."""

from __future__ import annotations

from pathlib import Path

import pytest
from lxml import etree

from redline.tune import domain_xml as dx
from redline.tune.placement import Request, ThreadPolicy, place
from redline.tune.topology import load
from redline.tune.validate import SCHEMA, schema_problems, semantic_problems, validate

HERE = Path(__file__).parent
TOPO = HERE / "fixtures" / "topology"
BIG = load(str(TOPO / "2s-8c-2t-2nodes-nic-irq-0-1.json"))
SMALL = load(str(TOPO / "1s-2c-nosmt.json"))

needs_schema = pytest.mark.skipif(
    not SCHEMA.exists(), reason="libvirt schemas not installed (scripts/apt-packages.txt)"
)


def make(topo, vcpus=4, mem_kib=1 << 21, page=2048, mq=True, policy=ThreadPolicy.PREFER, base=None):
    spec = dx.GuestSpec("t", vcpus, mem_kib, page, mq, domain_type="qemu")
    p = place(topo, Request(vcpus, dx.rounded_memory_kib(spec), page, policy))
    return dx.build(spec, p, base), p


def test_seed_002_elements() -> None:
    dom, p = make(BIG)
    pins = [int(e.get("cpuset")) for e in dom.iterfind("./cputune/vcpupin")]
    assert tuple(pins) == p.pins
    assert dom.find("./cputune/emulatorpin").get("cpuset") == p.cpuset
    assert dom.find("./numatune/memory").attrib == {"mode": "strict", "nodeset": str(p.node)}
    assert dom.find("./numatune/memnode").get("cellid") == "0"
    assert dom.find("./memoryBacking/hugepages/page").attrib == {"size": "2048", "unit": "KiB", "nodeset": "0"}
    assert dom.find("./memoryBacking/nosharepages") is not None
    assert dom.find("./devices/disk/driver").get("cache") == "none"
    assert dom.find("./devices/disk/driver").get("io") == "native"
    assert dom.find("./devices/interface/driver").attrib == {"name": "vhost", "queues": "4"}
    assert dom.find("./cpu/topology").get("threads") == "2"


def test_preferred_numa_mode_without_hugepages() -> None:
    dom, _ = make(BIG, page=None, mq=False)
    assert dom.find("./numatune/memory").get("mode") == "preferred"
    assert dom.find("./memoryBacking/hugepages") is None
    assert "queues" not in dom.find("./devices/interface/driver").attrib


@needs_schema
@pytest.mark.parametrize(
    "topo,vcpus,policy",
    [
        (SMALL, 1, ThreadPolicy.PREFER),
        (BIG, 1, ThreadPolicy.PREFER),
        (BIG, 2, ThreadPolicy.PREFER),
        (BIG, 6, ThreadPolicy.ISOLATE),
        (BIG, 12, ThreadPolicy.REQUIRE),
        (BIG, 16, ThreadPolicy.PREFER),
    ],
)
def test_generated_xml_validates(topo, vcpus, policy) -> None:
    dom, p = make(topo, vcpus=vcpus, policy=policy)
    assert validate(dom, topo, reserved=p.reserved) == []


@needs_schema
def test_schema_rejects_what_libvirt_would() -> None:
    dom, _ = make(BIG)
    dom.find("vcpu").set("placement", "sideways")
    problems = schema_problems(dom)
    assert problems and problems[0].kind == "schema"


@pytest.mark.parametrize(
    "mutate,expect",
    [
        (lambda d: d.find("./cputune/vcpupin").set("cpuset", "99"), "does not have"),
        (lambda d: d.find("./numatune/memnode").set("cellid", "1"), "cellid 1 names no guest NUMA cell"),
        (lambda d: d.find("./numatune/memory").set("nodeset", "5"), "host nodes [5]"),
        (lambda d: d.find("./memoryBacking/hugepages/page").set("nodeset", "3"), "guest cells [3]"),
        (lambda d: d.find("./cputune/vcpupin").set("cpuset", "0"), "kept free for the host"),
        (lambda d: d.find("./cputune/vcpupin").set("cpuset", "24"), "span NUMA nodes"),
        (lambda d: d.find("./cputune/vcpupin").set("vcpu", "9"), "names vCPU 9"),
    ],
)
def test_semantic_checks_catch_what_the_schema_misses(mutate, expect) -> None:
    dom, p = make(BIG)
    assert semantic_problems(dom, BIG, reserved=p.reserved) == []
    mutate(dom)
    msgs = " | ".join(x.message for x in semantic_problems(dom, BIG, reserved=p.reserved))
    assert expect in msgs


def test_offline_cpu_is_caught() -> None:
    from dataclasses import replace

    dom, _ = make(BIG, vcpus=2)
    pinned = int(dom.find("./cputune/vcpupin").get("cpuset"))
    offline = replace(BIG, cpus=tuple(replace(c, online=False) if c.id == pinned else c for c in BIG.cpus))
    assert any("offline" in x.message for x in semantic_problems(dom, offline))


def test_overlap_with_other_guests_is_caught() -> None:
    dom, p = make(BIG, vcpus=2)
    assert any("other guests" in x.message for x in semantic_problems(dom, BIG, others=frozenset(p.pins)))


@needs_schema
def test_retune_existing_domain_keeps_devices() -> None:
    base = dx.parse_domain((HERE / "fixtures" / "tune" / "plain-domain.xml").read_bytes(), "plain")
    dom, p = make(BIG, vcpus=2, mem_kib=1 << 20, base=base)
    assert dom.findtext("uuid") == "6f1b1a3e-3d6f-4b59-9b0e-4c1f0f1a2b3c"
    disks = dom.findall("./devices/disk")
    assert disks[0].find("driver").get("cache") == "none" and disks[0].find("driver").get("type") == "raw"
    assert disks[1].find("driver") is None, "a cdrom is left alone"
    ifaces = dom.findall("./devices/interface")
    assert ifaces[0].find("driver").get("name") == "vhost"
    assert ifaces[1].find("driver") is None, "vhost only drives virtio-net"
    assert dom.find("./cpu/model").text == "qemu64"
    assert dom.find("currentMemory").text == str(1 << 20)
    assert validate(dom, BIG, reserved=p.reserved) == []


def test_existing_guest_reads_back_what_it_holds() -> None:
    dom, p = make(BIG, vcpus=2, policy=ThreadPolicy.ISOLATE)
    again = dx.parse_domain(etree.tostring(dom), "x")
    g = dx.existing_guest(again, "x")
    assert g.cpus == p.held and g.node == p.node and g.hugepages == (2048, 1024)


def test_hugepage_memory_is_rounded_to_pages() -> None:
    spec = dx.GuestSpec("r", 1, 1000, 2048)
    assert dx.rounded_memory_kib(spec) == 2048
