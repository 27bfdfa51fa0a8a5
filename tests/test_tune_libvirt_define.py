"""A real libvirtd accepts `virsh define` of the XML redline generates (LAB-NOTES: TCG guests).

The test starts virtlogd + libvirtd itself (redline.lab.libvirtd), defines guests for both
synthetic topologies, reads them back, undefines them and stops the daemons it started."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from lxml import etree

from redline.lab.libvirtd import LibvirtDaemons

HERE = Path(__file__).parent
TOPO = HERE / "fixtures" / "topology"

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("libvirtd"), reason="needs root and libvirt-daemon (scripts/apt-packages.txt)"
)


@pytest.fixture(scope="module")
def libvirtd(tmp_path_factory):
    lv = LibvirtDaemons(tmp_path_factory.mktemp("libvirtd"))
    lv.start()
    defined: list[str] = []
    lv.defined = defined  # type: ignore[attr-defined]
    yield lv
    for name in defined:
        lv.virsh("undefine", name)
    lv.stop()
    for pid in lv.started_pids.values():
        assert not Path(f"/proc/{pid}").exists()


def tune(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "redline", "tune", "domain", "--type", "qemu", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


CASES = [
    ("rl-small-1", "1s-2c-nosmt.json", ["--vcpus", "1", "--memory", "512", "--hugepages", "2M"]),
    (
        "rl-big-core",
        "2s-8c-2t-2nodes-nic-irq-0-1.json",
        ["--vcpus", "2", "--memory", "1G", "--hugepages", "2M", "--multiqueue"],
    ),
    (
        "rl-big-socket",
        "2s-8c-2t-2nodes-nic-irq-0-1.json",
        ["--vcpus", "8", "--memory", "2G", "--multiqueue", "--thread-policy", "isolate"],
    ),
    (
        "rl-big-node",
        "2s-8c-2t-2nodes-nic-irq-0-1.json",
        ["--vcpus", "10", "--memory", "4G", "--hugepages", "2M", "--thread-policy", "require"],
    ),
]


def test_virsh_define_accepts_generated_xml(libvirtd, tmp_path: Path) -> None:
    placed: dict[str, list[Path]] = {}
    for name, topo, args in CASES:
        existing = [a for p in placed.get(topo, []) for a in ("--existing", str(p))]
        out = tmp_path / f"{name}.xml"
        r = tune("--name", name, "--topology", str(TOPO / topo), "--out", str(out), *args, *existing)
        assert r.returncode == 0, r.stderr
        assert "schema and semantic checks passed" in r.stderr
        placed.setdefault(topo, []).append(out)

        d = libvirtd.virsh("define", str(out))
        assert d.returncode == 0, d.stderr
        libvirtd.defined.append(name)
        back = etree.fromstring(libvirtd.virsh("dumpxml", name).stdout.encode())
        sent = etree.parse(str(out)).getroot()
        assert [e.get("cpuset") for e in back.iterfind("./cputune/vcpupin")] == [
            e.get("cpuset") for e in sent.iterfind("./cputune/vcpupin")
        ]
        assert back.find("./memoryBacking/nosharepages") is not None
        assert back.find("./numatune/memory").get("nodeset") == sent.find("./numatune/memory").get("nodeset")
        assert back.find("./devices/disk/driver").get("io") == "native"

    big = [etree.parse(str(p)).getroot() for p in placed["2s-8c-2t-2nodes-nic-irq-0-1.json"]]
    all_pins = [int(e.get("cpuset")) for d in big for e in d.iterfind("./cputune/vcpupin")]
    assert len(all_pins) == len(set(all_pins)), "guests placed with --existing do not overlap"
    assert not set(all_pins) & {0, 1}


def test_libvirtd_rejects_a_broken_domain(libvirtd, tmp_path: Path) -> None:
    # The define path can fail: a guest NUMA cell naming vCPUs the guest does not have is refused.
    bad = tmp_path / "bad.xml"
    bad.write_text(
        "<domain type='qemu'><name>rl-bad</name><memory>65536</memory><vcpu>1</vcpu>"
        "<cpu><numa><cell id='0' cpus='0-3' memory='65536'/></numa></cpu>"
        "<os><type>hvm</type></os></domain>"
    )
    r = libvirtd.virsh("define", str(bad))
    if r.returncode == 0:
        libvirtd.defined.append("rl-bad")
    assert r.returncode != 0
