"""`redline tune domain` / `tune host` checked against placements and limits computed by hand.

Each expectation below is derived in the comment above it from the host description the test
builds (a sysfs tree under --root, a topology file, an audit fixture) or reads (this host's
/sys and /proc), not from redline's own placement code. The XML is parsed with lxml.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

from lxml import etree

HERE = Path(__file__).parent
BIG = str(HERE / "fixtures" / "topology" / "2s-8c-2t-2nodes-nic-irq-0-1.json")


def redline(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "redline", *args], capture_output=True, text=True, timeout=60)


def domain(*args: str) -> tuple[etree._Element, dict]:
    r = redline("tune", "domain", "--type", "qemu", "--json", *args)
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    return etree.fromstring(doc["xml"].encode()), doc


def pins(dom: etree._Element) -> list[int]:
    return [int(e.get("cpuset")) for e in sorted(dom.iterfind("./cputune/vcpupin"), key=lambda e: int(e.get("vcpu")))]


def topology(dom: etree._Element) -> dict[str, str]:
    return dict(dom.find("./cpu/topology").attrib)


def numatune(dom: etree._Element) -> tuple[dict[str, str], dict[str, str]]:
    return dict(dom.find("./numatune/memory").attrib), dict(dom.find("./numatune/memnode").attrib)


def sysfs_host(root: Path) -> Path:
    """A 1-socket, 4-core, 2-thread host with two NUMA nodes, as Linux numbers it: CPU n and
    n + 4 are siblings of core n; node 0 holds cores 0-1 (CPUs 0,1,4,5), node 1 cores 2-3
    (CPUs 2,3,6,7), 4 GiB each. A NIC interrupt has fired on CPU 5 (effective affinity 5);
    another IRQ whose affinity is CPU 2 never fired (all counts 0) and must not count."""
    cpu = root / "sys/devices/system/cpu"
    cpu.mkdir(parents=True)
    (cpu / "online").write_text("0-7\n")
    for c in range(8):
        t = cpu / f"cpu{c}" / "topology"
        t.mkdir(parents=True)
        (t / "physical_package_id").write_text("0\n")
        (t / "core_id").write_text(f"{c % 4}\n")
    for n, cpus in ((0, "0-1,4-5"), (1, "2-3,6-7")):
        d = root / f"sys/devices/system/node/node{n}"
        d.mkdir(parents=True)
        (d / "cpulist").write_text(cpus + "\n")
        (d / "meminfo").write_text(f"Node {n} MemTotal:        4194304 kB\n")
    (root / "proc").mkdir()
    head = "".join(f"       CPU{c}" for c in range(8))
    (root / "proc/interrupts").write_text(
        f"{head}\n"
        "  30:          0          0          0          0          0       4321          0          0  PCI-MSI 1-edge  eth0-rx\n"
        "  31:          0          0          0          0          0          0          0          0  PCI-MSI 2-edge  eth0-tx\n"
        " NMI:          0          0          0          0          0          0          0          0  Non-maskable interrupts\n"
    )
    for irq, aff in ((30, "5"), (31, "2")):
        (root / f"proc/irq/{irq}").mkdir(parents=True)
        (root / f"proc/irq/{irq}/effective_affinity_list").write_text(aff + "\n")
    return root


def test_topology_auto_reads_sysfs_keeps_cpu0_and_irq_cpus_free_and_pairs_siblings(tmp_path: Path) -> None:
    root = sysfs_host(tmp_path / "host")
    # Kept free: CPU0 and CPU 5 (the IRQ that fired); not CPU 2 (its IRQ never fired).
    # 4 vCPUs fit on no core (2 threads) and not on node 0 (free: 1, 4 — two CPUs), so one
    # socket within node 1: cores 2 and 3 are clean, fullest first, siblings in pairs:
    # vCPUs -> 2, 6, 3, 7; the guest sees 1 socket x 2 cores x 2 threads; memory on node 1.
    dom, doc = domain("--vcpus", "4", "--memory", "1G", "--topology", "auto", "--root", str(root))
    assert doc["placement"]["reserved"] == [0, 5]
    assert pins(dom) == [2, 6, 3, 7] and doc["placement"]["node"] == 1
    assert topology(dom) == {"sockets": "1", "dies": "1", "cores": "2", "threads": "2"}
    assert dom.find("./cputune/emulatorpin").get("cpuset") == "2-3,6-7"
    memory, memnode = numatune(dom)
    assert memory == {"mode": "preferred", "nodeset": "1"}  # seed 002's default mode
    assert memnode == {"cellid": "0", "mode": "preferred", "nodeset": "1"}
    # 2 vCPUs: the first core whose two threads are both free: core 2 (CPUs 2, 6).
    dom, doc = domain("--vcpus", "2", "--memory", "1G", "--topology", "auto", "--root", str(root))
    assert pins(dom) == [2, 6] and doc["placement"]["level"] == "core"
    assert topology(dom) == {"sockets": "1", "dies": "1", "cores": "1", "threads": "2"}


def test_reserve_replaces_the_kept_free_set(tmp_path: Path) -> None:
    root = sysfs_host(tmp_path / "host")
    # --reserve 2 replaces {0, 5}: CPU0 and CPU5 are now the guest's to take. Free: 0,1,3-7.
    # 4 vCPUs: node 0 has cores 0 (0,4) and 1 (1,5), 4 CPUs, no kept-free sibling: it fits
    # there before node 1 (whose core 2 shares a core with the reserved CPU 2).
    dom, doc = domain("--vcpus", "4", "--memory", "1G", "--topology", "auto", "--root", str(root), "--reserve", "2")
    assert doc["placement"]["reserved"] == [2]
    assert pins(dom) == [0, 4, 1, 5] and doc["placement"]["node"] == 0
    assert 2 not in pins(dom)
    assert numatune(dom)[0]["nodeset"] == "0"
    # On the synthetic 2x8x2 file (NIC IRQs on 0-1), reserving all of socket 0 (CPUs 0-7 and
    # their siblings 16-23) sends the guest to socket 1 = node 1: CPUs 8, 24, 9, 25.
    dom, doc = domain("--vcpus", "4", "--memory", "1G", "--topology", BIG, "--reserve", "0-7,16-23")
    assert pins(dom) == [8, 24, 9, 25] and doc["placement"]["node"] == 1
    assert numatune(dom)[0] == {"mode": "preferred", "nodeset": "1"}


def test_numa_mode_strict_and_forced_by_hugepages() -> None:
    dom, _ = domain("--vcpus", "2", "--memory", "1G", "--topology", BIG, "--numa-mode", "strict")
    # 2 vCPUs, CPUs 0-1 and their siblings 16-17 kept free: the first clean core is core 2 (2, 18), node 0.
    assert pins(dom) == [2, 18]
    assert numatune(dom) == ({"mode": "strict", "nodeset": "0"}, {"cellid": "0", "mode": "strict", "nodeset": "0"})
    # huge pages come from one node only: strict even when preferred is asked for
    dom, _ = domain(
        "--vcpus", "2", "--memory", "1G", "--topology", BIG, "--numa-mode", "preferred", "--hugepages", "2M"
    )
    assert numatune(dom)[0]["mode"] == "strict" and numatune(dom)[1]["mode"] == "strict"
    assert dom.find("./memoryBacking/hugepages/page").get("nodeset") == "0"


def _host_irq_cpus() -> set[int]:
    """CPUs that served a device interrupt on this host, read here the way docs/tune.md says:
    numbered IRQ lines of /proc/interrupts with a non-zero count, by effective affinity."""
    lines = Path("/proc/interrupts").read_text().splitlines()
    ncpu = len(lines[0].split())
    out: set[int] = set()
    for line in lines[1:]:
        irq, _, rest = line.partition(":")
        if not irq.strip().isdigit():
            continue
        counts = [int(f) for f in rest.split()[:ncpu] if f.isdigit()]
        if sum(counts) == 0:
            continue
        base = Path(f"/proc/irq/{irq.strip()}")
        aff = ""
        for name in ("effective_affinity_list", "smp_affinity_list"):
            if (base / name).exists():
                aff = (base / name).read_text().strip()
                if aff:
                    break
        if aff:
            for part in aff.split(","):
                lo, _, hi = part.partition("-")
                out |= set(range(int(lo), int(hi or lo) + 1))
        else:
            out |= {i for i, c in enumerate(counts) if c > 0}
    return out


def _online() -> set[int]:
    out: set[int] = set()
    for part in Path("/sys/devices/system/cpu/online").read_text().strip().split(","):
        lo, _, hi = part.partition("-")
        out |= set(range(int(lo), int(hi or lo) + 1))
    return out


def test_topology_auto_on_this_host() -> None:
    """docs/tune.md: on this 2-CPU machine, with device interrupts on both CPUs, a guest is
    refused and the message says why; --reserve 0 gives CPU1 to guests."""
    reserved = {0} | _host_irq_cpus()
    free = _online() - reserved
    r = redline("tune", "domain", "--vcpus", "2", "--memory", "256M", "--type", "qemu", "--json")
    if len(free) < 2:
        assert r.returncode != 0 and "does not fit on one NUMA node" in r.stderr, r.stderr
        kept = re.search(r"after keeping (\S+) free", r.stderr).group(1)
        assert kept == ",".join(map(str, sorted(reserved))) or kept == f"{min(reserved)}-{max(reserved)}", r.stderr
    else:
        doc = json.loads(r.stdout)
        assert set(doc["placement"]["pins"]) <= free and set(doc["placement"]["reserved"]) == reserved
    if len(_online()) >= 2:
        dom, doc = domain("--vcpus", "1", "--memory", "256M", "--reserve", "0")
        assert doc["placement"]["reserved"] == [0]
        assert pins(dom) == [min(_online() - {0})]  # the first CPU after CPU0


LIMITS = ("max_workers", "max_client_requests", "max_clients")
LIBVIRT_DEFAULTS = {"max_workers": 20, "max_client_requests": 5, "max_clients": 5000}  # libvirtd.conf(5)


def test_tune_host_parallel_sets_the_limits_below_it(tmp_path: Path) -> None:
    root = tmp_path / "host"
    shutil.copytree(HERE / "fixtures" / "audit" / "untuned", root)
    conf_path = root / "etc/libvirt/libvirtd.conf"
    conf = dict(re.findall(r"^\s*(\w+)\s*=\s*(\d+)", conf_path.read_text(), re.M))
    have = {k: int(conf.get(k, LIBVIRT_DEFAULTS[k])) for k in LIMITS}  # 20, 5, 20 in the fixture
    for parallel in (10, 60):
        r = redline("tune", "host", "--root", str(root), "--parallel", str(parallel), "--json")
        assert r.returncode == 0, r.stderr
        changes = {c["finding"]: c["change"] for c in json.loads(r.stdout)["changes"]}
        for key in LIMITS:
            if have[key] < parallel:  # raised to exactly --parallel
                assert changes[f"libvirt.{key}"] == f"set {key} = {parallel} in /etc/libvirt/libvirtd.conf"
            else:
                assert f"libvirt.{key}" not in changes, (parallel, key)
    r = redline("tune", "host", "--root", str(root), "--parallel", "60", "--apply", "--json")
    assert r.returncode == 0, r.stderr
    after = dict(re.findall(r"^\s*(\w+)\s*=\s*(\d+)", conf_path.read_text(), re.M))
    assert {k: int(after[k]) for k in LIMITS} == {k: 60 for k in LIMITS}
    audit = json.loads(redline("audit", "--root", str(root), "--parallel", "60", "--json").stdout)
    assert {f["id"]: f["status"] for f in audit["findings"] if f["id"] in {f"libvirt.{k}" for k in LIMITS}} == {
        f"libvirt.{k}": "pass" for k in LIMITS
    }
