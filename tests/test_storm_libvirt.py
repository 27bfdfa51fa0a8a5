"""Boot storms on a real hypervisor lab: libvirtd + QEMU (TCG) + micro-VMs in a network namespace.

The module starts the lab from an empty state directory (`redline lab hypervisor up`: image
build, KVM probe, daemons), runs storms through the CLI, and checks that nothing of a run
is left afterwards: no domain, no tap device, no namespace, no dnsmasq.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from tests.conftest import assert_one_line_error

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(os.geteuid() != 0, reason="the hypervisor lab needs root"),
    pytest.mark.skipif(
        shutil.which("libvirtd") is None or shutil.which("qemu-system-x86_64") is None,
        reason="libvirt/QEMU not installed",
    ),
]


def redline(*args: str, state_dir: Path, timeout: float = 300, cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ, REDLINE_LAB_DIR=str(state_dir))
    return subprocess.run([sys.executable, "-m", "redline", *args], capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL, env=env, cwd=cwd)  # fmt: skip


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    state = tmp_path_factory.mktemp("hv-lab")
    up = redline("lab", "hypervisor", "up", state_dir=state, timeout=600)
    assert up.returncode == 0, up.stderr
    assert "hypervisor lab up" in up.stdout
    yield state
    down = redline("lab", "hypervisor", "down", state_dir=state)
    assert down.returncode == 0, down.stderr
    assert not [n for n in _namespaces() if n.startswith("redline-")]


def _domains() -> list[str]:
    r = subprocess.run(
        ["virsh", "-c", "qemu:///system", "list", "--all", "--name"], capture_output=True, text=True, timeout=30
    )
    return [n for n in r.stdout.split() if n]


def _namespaces() -> list[str]:
    r = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, timeout=10)
    return [l.split()[0] for l in r.stdout.splitlines() if l.strip()]


def _leftovers(run_id: str) -> dict[str, list]:
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True, timeout=10).stdout
    dnsmasq = []
    for p in psutil.process_iter(["name", "cmdline"]):
        if p.info["name"] == "dnsmasq" and f"redline-{run_id}" in " ".join(p.info["cmdline"] or ()):
            dnsmasq.append(p.pid)
    return {
        "domains": [d for d in _domains() if d.startswith(f"redline-{run_id}-")],
        "taps": re.findall(rf"\brl{run_id}-\d+", links),
        "namespaces": [n for n in _namespaces() if n == f"redline-{run_id}"],
        "dnsmasq": dnsmasq,
    }


def test_lab_status_reports_tcg_and_the_lab_network(lab):
    r = redline("lab", "hypervisor", "status", "--json", state_dir=lab)
    assert r.returncode == 0, r.stderr
    st = json.loads(r.stdout)
    assert st["up"] and st["libvirtd_answering"]
    assert st["virt_type"] in ("qemu", "kvm") and st["dnsmasq_pid"]
    assert "redline-lab" in st["namespaces"]


def test_storm_8_every_instance_reaches_ssh_and_nothing_is_left(lab, tmp_path):
    t0 = time.monotonic()
    r = redline(
        "storm", "--driver", "libvirt", "--count", "8", "--json", "--results", str(tmp_path), state_dir=lab, timeout=400
    )
    wall = time.monotonic() - t0
    assert r.returncode == 0, r.stderr[-2000:]
    out = json.loads(r.stdout)
    assert out["count"] == 8 and out["failed"] == 0
    assert out["reached"] == {m: 8 for m in ("requested", "running", "ping", "ssh", "delete_requested", "gone")}
    phases = {p["phase"]: p for p in out["phases"]}
    for name in ("create", "ping", "ssh", "delete"):
        assert phases[name]["count"] == 8, name
        assert (
            0
            < phases[name]["min_s"]
            <= phases[name]["median_s"]
            <= phases[name]["p90_s"]
            <= phases[name]["max_s"]
            < wall
        )
    assert out["first_active_s"] <= out["last_active_s"] <= out["last_ssh_s"] <= out["total_s"] < wall
    run_dir = Path(out["run_dir"])
    doc = json.loads((run_dir / "run.json").read_text())
    assert doc["status"] == "complete" and doc["command"] == "storm"
    assert doc["target"]["virt_type"] in ("qemu", "kvm") and doc["target"]["knobs"]["memory_mib"] == 112
    assert doc["plan"]["memory_mib"] == 112
    # the SSH command really ran in each guest: it printed the guest's uptime
    assert all(re.fullmatch(r"\d+\.\d+ \d+\.\d+", i["ssh_output"]) for i in doc["instances"])
    for f in ("phases.npz", "monitor.npz", "report.html", "png/phases.png", "png/timeline.png"):
        assert (run_dir / f).stat().st_size > 0, f
    consoles = sorted((run_dir / "console").glob("*.console.log"))
    assert len(consoles) == 8 and all("GUEST-UP" in c.read_text() for c in consoles)
    assert _leftovers(out["run_id"]) == {"domains": [], "taps": [], "namespaces": [], "dnsmasq": []}
    rep = redline("report", str(run_dir), state_dir=lab)
    assert rep.returncode == 0 and "phases.png" in rep.stdout, rep.stderr


def test_sigint_during_a_storm_removes_every_domain_within_30_s(lab, tmp_path):
    env = dict(os.environ, REDLINE_LAB_DIR=str(lab))
    proc = subprocess.Popen([sys.executable, "-m", "redline", "storm", "--count", "6", "--results", str(tmp_path)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True, env=env)  # fmt: skip
    run_id = None
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        ours = [d for d in _domains() if re.fullmatch(r"redline-[0-9a-f]{8}-\d+", d)]
        if len(ours) >= 2:
            run_id = ours[0].split("-")[1]
            break
        time.sleep(0.2)
    assert run_id is not None, "the storm never started a domain"
    proc.send_signal(signal.SIGINT)
    t_int = time.monotonic()
    gone_at = None
    while time.monotonic() - t_int < 30:
        if not _leftovers(run_id)["domains"]:
            gone_at = time.monotonic() - t_int
            break
        time.sleep(0.2)
    _, err = proc.communicate(timeout=60)
    assert gone_at is not None, "domains of the interrupted storm still exist 30 s after SIGINT"
    assert proc.returncode == 130, err[-1500:]
    assert "Traceback" not in err and "interrupted" in err
    assert _leftovers(run_id) == {"domains": [], "taps": [], "namespaces": [], "dnsmasq": []}
    (run_dir,) = [p for p in tmp_path.iterdir() if p.name.endswith("storm-libvirt-6")]
    assert json.loads((run_dir / "run.json").read_text())["status"] == "interrupted"


def test_storm_cleanup_removes_leftovers_of_a_run(lab):
    from redline.lab.hypervisor import require_state
    from redline.storm.libvirt_driver import LibvirtDriver
    from redline.targets.storm_drivers import libvirt_storm_config

    run_id = os.urandom(4).hex()
    driver = LibvirtDriver(libvirt_storm_config(require_state(lab)), run_id)
    specs = driver.specs(2)
    driver.prepare(specs)
    for s in specs:
        driver.launch(s)  # a storm that died without cleaning up
    left = _leftovers(run_id)
    assert len(left["domains"]) == 2 and left["namespaces"] and left["dnsmasq"]
    r = redline("storm", "cleanup", run_id, state_dir=lab)
    assert r.returncode == 0, r.stderr
    assert f"removed domain redline-{run_id}-0" in r.stdout
    assert _leftovers(run_id) == {"domains": [], "taps": [], "namespaces": [], "dnsmasq": []}


def test_bad_input_is_one_line(lab, tmp_path):
    assert "run id" in assert_one_line_error(redline("storm", "cleanup", "nope", state_dir=lab))
    assert "--count" in assert_one_line_error(redline("storm", "--count", "0", state_dir=lab))
    assert "--driver" in assert_one_line_error(redline("storm", "--driver", "xen", state_dir=lab))
    err = assert_one_line_error(redline("storm", "--count", "1", state_dir=tmp_path / "no-lab"))
    assert "lab hypervisor up" in err


SCALE_COUNTS = "1,2,3,4"  # the smallest set that leaves the USL a degree of freedom, hence intervals


def test_scale_fits_usl_and_amdahl_on_real_storms(lab, tmp_path):
    r = redline(
        "scale",
        "--driver",
        "libvirt",
        "--counts",
        SCALE_COUNTS,
        "--json",
        "--results",
        str(tmp_path),
        state_dir=lab,
        timeout=500,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    out = json.loads(r.stdout)
    sizes = [int(c) for c in SCALE_COUNTS.split(",")]
    assert [p["n"] for p in out["points"]] == sizes
    run_dir = Path(out["run_dir"])
    for p in out["points"]:
        storm = json.loads((run_dir / p["run_dir"] / "run.json").read_text())
        assert storm["status"] == "complete" and storm["summary"]["reached"]["ssh"] == p["n"]
        # T(N) is first request → last SSH login of that very storm
        marks = [(i["requested"], i["ssh"]) for i in storm["instances"]]
        assert abs(p["t_s"] - (max(s for _, s in marks) - min(r for r, _ in marks))) < 0.01
        assert (run_dir / p["run_dir"] / "report.html").exists()
        assert len(list((run_dir / p["run_dir"] / "console").glob("*.console.log"))) == p["n"]
    usl, amdahl = out["usl"], out["amdahl"]
    assert usl["dof"] == 1 and usl["boot_method"] == "parametric"
    assert 0 <= usl["sigma"]["low"] <= usl["sigma"]["value"] <= usl["sigma"]["high"] <= 1
    assert 0 <= usl["kappa"]["low"] <= usl["kappa"]["value"] <= usl["kappa"]["high"] <= 1
    assert (
        amdahl["kappa"] is None
        and 0 <= amdahl["sigma"]["low"] <= amdahl["sigma"]["value"] <= amdahl["sigma"]["high"] <= 1
    )
    assert len(out["sentences"]) == len(sizes) - 1 and out["sentences"][0].startswith("2 instances took")
    doc = json.loads((run_dir / "run.json").read_text())
    assert doc["command"] == "scale" and doc["status"] == "complete" and doc["target"]["knobs"]["memory_mib"] == 112
    assert (run_dir / "png" / "scale.png").stat().st_size > 0 and "σ [95%]" in (run_dir / "report.html").read_text()
    rep = redline("report", str(run_dir), state_dir=lab)
    assert rep.returncode == 0 and "scale.png" in rep.stdout, rep.stderr
    assert not [d for d in _domains() if d.startswith("redline-") and d != "redline-lab"]


def _qemu_cgroups(name: str) -> str:
    for p in psutil.process_iter(["name", "cmdline"]):
        if (p.info["name"] or "").startswith("qemu-system") and f"guest={name}," in " ".join(p.info["cmdline"] or ()):
            return Path(f"/proc/{p.pid}/cgroup").read_text()
    raise AssertionError(f"no QEMU process for {name}")


def _one_domain(lab: Path) -> tuple[str, str, str]:
    """Launch one domain of a throw-away run; return (its live XML, its QEMU's cgroups, run id)."""
    import libvirt

    from redline.lab.hypervisor import require_state
    from redline.storm.libvirt_driver import LibvirtDriver
    from redline.targets.storm_drivers import libvirt_storm_config

    state = require_state(lab)
    run_id = os.urandom(4).hex()
    driver = LibvirtDriver(libvirt_storm_config(state), run_id)
    (spec,) = driver.specs(1)
    try:
        driver.prepare([spec])
        driver.launch(spec)
        conn = libvirt.open(state.uri)
        try:
            xml = conn.lookupByName(spec.name).XMLDesc(0)
        finally:
            conn.close()
        return xml, _qemu_cgroups(spec.name), run_id
    finally:
        driver.cleanup()


def _threadpool() -> dict[str, str]:
    r = subprocess.run(["virt-admin", "-c", "libvirtd:///system", "srv-threadpool-info", "libvirtd"],
                       capture_output=True, text=True, timeout=30)  # fmt: skip
    assert r.returncode == 0, r.stderr
    pairs = (line.split(":", 1) for line in r.stdout.splitlines() if ":" in line)
    return {k.strip(): v.strip() for k, v in pairs}


def test_lab_knobs_reach_libvirtd_qemu_conf_and_the_domain(lab):
    """Knobs in, then back to the defaults; each time the running daemon and a new domain show them."""
    conf = lab / "libvirt" / "libvirtd.conf"
    try:
        r = redline("lab", "hypervisor", "up", "--max-workers", "7", "--max-client-requests", "11", "--no-cgroups",
                    "--memory", "160", state_dir=lab, timeout=300)  # fmt: skip
        assert r.returncode == 0, r.stderr[-2000:]
        assert "max_workers 7, max_client_requests 11" in r.stdout and "cgroups off" in r.stdout
        text = conf.read_text()
        assert "max_workers = 7" in text and "max_client_requests = 11" in text
        assert "cgroup_controllers = [ ]" in Path("/etc/libvirt/qemu.conf").read_text()
        assert _threadpool()["maxWorkers"] == "7"  # libvirtd was restarted and runs with it
        st = json.loads(redline("lab", "hypervisor", "status", "--json", state_dir=lab).stdout)
        assert st["knobs"] == {"max_workers": 7, "max_client_requests": 11, "cgroups": False, "security_driver": "none",
                               "memory_mib": 160, "virt": "auto"}  # fmt: skip
        xml, cgroups, _ = _one_domain(lab)
        assert "<memory unit='KiB'>163840</memory>" in xml
        assert "machine" not in cgroups, cgroups  # the guest stayed in libvirtd's own cgroups

        r = redline("lab", "hypervisor", "up", state_dir=lab, timeout=300)  # every knob back to its default
        assert r.returncode == 0, r.stderr[-2000:]
        assert (
            "max_workers" not in conf.read_text()
            and "cgroup_controllers" not in Path("/etc/libvirt/qemu.conf").read_text()
        )
        assert _threadpool()["maxWorkers"] == "20"
        xml, cgroups, _ = _one_domain(lab)
        assert "<memory unit='KiB'>114688</memory>" in xml
        assert "machine" in cgroups, cgroups  # libvirt placed the guest in its machine cgroup
    finally:
        redline("lab", "hypervisor", "up", state_dir=lab, timeout=300)
