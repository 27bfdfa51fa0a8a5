"""`redline tune domain` / `redline tune host` as a user runs them."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).parent
TOPO = HERE / "fixtures" / "topology"
BIG = str(TOPO / "2s-8c-2t-2nodes-nic-irq-0-1.json")


def redline(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "redline", *args], capture_output=True, text=True, timeout=60)


def test_domain_to_stdout_and_existing(tmp_path: Path) -> None:
    r = redline("tune", "domain", "--vcpus", "2", "--memory", "1G", "--topology", BIG)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("<domain") and "vcpupin" in r.stdout
    first = tmp_path / "a.xml"
    first.write_text(r.stdout)
    r2 = redline("tune", "domain", "--vcpus", "2", "--memory", "1G", "--topology", BIG, "--existing", str(first))
    assert r2.returncode == 0, r2.stderr
    assert "other guests: 2,18" in r2.stderr


def test_domain_from_in_file() -> None:
    r = redline("tune", "domain", "--in", str(HERE / "fixtures" / "tune" / "plain-domain.xml"), "--topology", BIG)
    assert r.returncode == 0, r.stderr
    assert "<name>plain</name>" in r.stdout and 'cache="none"' in r.stdout


def test_user_errors_are_one_line() -> None:
    cases = [
        (["--vcpus", "2"], "required"),
        (["--vcpus", "2", "--memory", "lots"], "not a size"),
        (["--vcpus", "2", "--memory", "1G", "--topology", "/nope.json"], "cannot read topology"),
        (["--vcpus", "2", "--memory", "1G", "--in", "/nope.xml"], "cannot read --in"),
        (
            ["--vcpus", "2", "--memory", "1G", "--topology", BIG, "--thread-policy", "maybe"],
            "prefer, isolate or require",
        ),
        (["--vcpus", "2", "--memory", "1G", "--topology", BIG, "--hugepages", "3M"], "2M or 1G"),
        (["--vcpus", "40", "--memory", "1G", "--topology", BIG], "does not fit"),
        (["--vcpus", "2", "--memory", "1G", "--topology", BIG, "--existing", __file__], "not well-formed"),
    ]
    for args, expect in cases:
        r = redline("tune", "domain", *args)
        assert r.returncode != 0, args
        assert expect in r.stderr, (args, r.stderr)
        assert "Traceback" not in r.stderr


def test_host_plan_then_apply_with_backups(tmp_path: Path) -> None:
    root = tmp_path / "host"
    shutil.copytree(HERE / "fixtures" / "audit" / "untuned", root)
    before = (root / "etc/libvirt/libvirtd.conf").read_text()
    plan = redline("tune", "host", "--root", str(root))
    assert plan.returncode == 0, plan.stderr
    assert "libvirt.max_workers: set max_workers = 40 in /etc/libvirt/libvirtd.conf" in plan.stdout
    assert "nothing changed" in plan.stdout
    assert (root / "etc/libvirt/libvirtd.conf").read_text() == before, "no change without --apply"

    applied = redline("tune", "host", "--root", str(root), "--apply")
    assert applied.returncode == 0, applied.stderr
    assert "max_workers = 40" in (root / "etc/libvirt/libvirtd.conf").read_text()
    assert (root / "sys/kernel/mm/ksm/run").read_text().strip() == "2"
    assert "vm.swappiness = 10" in (root / "etc/sysctl.d/90-redline.conf").read_text()
    assert "[cache]" in (root / "etc/keystone/keystone.conf").read_text()
    backups = list((root / "var/backups/redline").iterdir())
    assert len(backups) == 1
    manifest = json.loads((backups[0] / "manifest.json").read_text())
    assert (backups[0] / "etc/libvirt/libvirtd.conf").read_text() == before
    for entry in manifest:
        if entry["backup"]:
            assert Path(entry["backup"]).exists()

    # the changes fixed what they claimed to fix
    after = json.loads(redline("audit", "--root", str(root), "--json").stdout)
    status = {f["id"]: f["status"] for f in after["findings"]}
    for fid in (
        "libvirt.max_workers",
        "libvirt.max_client_requests",
        "libvirt.max_clients",
        "host.swappiness",
        "host.thp",
        "host.thp_defrag",
        "nova.conductor_workers",
        "nova.firewall_driver",
        "neutron.root_helper_daemon",
    ):
        assert status[fid] == "pass", fid
