"""The hypervisor lab: a real libvirtd + QEMU on this machine, a guest image, a guest network.

`up()` starts virtlogd/libvirtd (LibvirtDaemons), builds or reuses the micro-VM image,
probes KVM once (with a timeout; KVM guests hang on these machines, so TCG is the usual
answer), and creates the lab's network namespace `redline-lab` with its bridge and
dnsmasq. Its state (lab.json) says what was started, so that `down()` stops only that and
`redline storm` finds the image, the key and the virtualisation type.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from redline import procs
from redline.errors import UserError
from redline.lab.image import GuestImage, build_image
from redline.lab.knobs import LabKnobs
from redline.lab.libvirtd import QEMU_CONF, URI, LibvirtDaemons
from redline.lab.netns import GuestNetwork, list_namespaces
from redline.storm.libvirt_driver import PREFIX, destroy_domains, network_name

LAB_NETNS = PREFIX + "lab"
STATE_FILE = "lab.json"
NET_DIR = "net"  # under the state directory: the networks' dnsmasq pid files, leases and hosts


def default_state_dir() -> Path:
    return Path(os.environ.get("REDLINE_LAB_DIR", "/var/lib/redline/hypervisor"))


@dataclass(frozen=True)
class LabState:
    """What `up()` set up: read by `status`, `down` and the composition of the libvirt storm driver."""

    state_dir: Path
    uri: str
    virt_type: str  # "kvm" or "qemu" (TCG)
    kvm_note: str
    image: GuestImage
    network: str
    started_pids: dict[str, int]
    knobs: LabKnobs = field(default_factory=LabKnobs)
    libvirtd_owned: bool = True  # False: a libvirtd already answering was reused, its config is its own

    def to_dict(self) -> dict[str, Any]:
        return {"uri": self.uri, "virt_type": self.virt_type, "kvm_note": self.kvm_note, "image": self.image.to_dict(),
                "network": self.network, "started_pids": self.started_pids, "knobs": self.knobs.to_dict(),
                "libvirtd_owned": self.libvirtd_owned}  # fmt: skip

    def describe(self) -> dict[str, Any]:
        """What a storm's run.json records about the lab it ran on."""
        return {"kind": "hypervisor-lab", "uri": self.uri, "virt_type": self.virt_type, "kvm_note": self.kvm_note,
                "kernel": self.image.kernel_version, "knobs": self.knobs.to_dict(),
                "libvirtd_owned": self.libvirtd_owned}  # fmt: skip

    def save(self) -> None:
        path = self.state_dir / STATE_FILE
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(self.to_dict(), indent=2) + "\n")
        tmp.replace(path)


def load_state(state_dir: Path | None = None) -> LabState | None:
    state_dir = state_dir or default_state_dir()
    path = state_dir / STATE_FILE
    if not path.exists():
        return None
    try:
        d = json.loads(path.read_text())
        return LabState(state_dir, d["uri"], d["virt_type"], d.get("kvm_note", ""), GuestImage.from_dict(d["image"]),
                        d["network"], {k: int(v) for k, v in d.get("started_pids", {}).items()},
                        LabKnobs.from_dict(d.get("knobs", {})), bool(d.get("libvirtd_owned", True)))  # fmt: skip
    except (OSError, ValueError, KeyError, TypeError, UserError) as exc:
        raise UserError(f"cannot read the hypervisor lab state {path}: {exc}") from None


def require_state(state_dir: Path | None = None) -> LabState:
    state = load_state(state_dir)
    if state is None:
        raise UserError(
            f"the hypervisor lab is not up (no {(state_dir or default_state_dir()) / STATE_FILE}): run `redline lab hypervisor up`"
        )
    return state


def probe_kvm(image: GuestImage, timeout_s: float = 8.0) -> tuple[str, str]:
    """("kvm", why) if a KVM guest reaches userspace within `timeout_s`, else ("qemu", why).

    /dev/kvm can be present and KVM_CREATE_VM succeed while guests hang after the BIOS
    (nested virtualisation), so the probe boots the real image and waits for its banner.
    """
    if not os.path.exists("/dev/kvm"):
        return "qemu", "no /dev/kvm: TCG"
    qemu = shutil.which("qemu-system-x86_64")
    if qemu is None:
        raise UserError("qemu-system-x86_64 is not installed")
    cmd = [qemu, "-enable-kvm", "-m", "96", "-nodefaults", "-nographic", "-no-reboot", "-serial", "stdio", "-nic", "none",
           "-kernel", str(image.kernel), "-initrd", str(image.initrd), "-append", image.cmdline]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    assert proc.stdout is not None
    stdout = proc.stdout
    os.set_blocking(stdout.fileno(), False)
    buf = bytearray()

    def booted_or_exited() -> bool:
        buf.extend(stdout.read() or b"")
        return b"GUEST-BOOTED" in buf or proc.poll() is not None

    try:
        procs.wait_until(booted_or_exited, timeout_s, 0.1)
        if b"GUEST-BOOTED" in buf:
            return "kvm", "a KVM guest booted to userspace"
        if proc.poll() is not None:
            return "qemu", f"KVM unusable (qemu exited {proc.returncode}): TCG"
        return "qemu", f"a KVM guest did not reach userspace within {timeout_s:g} s (nested virtualisation?): TCG"
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


# Where a security driver's kernel side shows itself; without it libvirtd would refuse to start.
_SECURITY_PROBES = {"apparmor": "/sys/kernel/security/apparmor", "selinux": "/sys/fs/selinux/enforce"}


def check_security_driver(name: str) -> None:
    probe = _SECURITY_PROBES.get(name)
    if probe is not None and not os.path.exists(probe):
        raise UserError(
            f"security driver {name} is not available on this host (no {probe}); use --security-driver none"
        )


def up(
    state_dir: Path | None = None, rebuild: bool = False, virt: str = "auto", knobs: LabKnobs | None = None
) -> LabState:
    """Start (or reconfigure) the lab. `knobs` are applied in full: unset ones return to libvirt's defaults."""
    state_dir = state_dir or default_state_dir()
    knobs = knobs or LabKnobs(virt=virt)
    if os.geteuid() != 0:
        raise UserError("the hypervisor lab needs root (libvirtd, network namespaces)")
    check_security_driver(knobs.security_driver)
    state_dir.mkdir(parents=True, exist_ok=True)
    old = load_state(state_dir)
    # A recorded pid counts only while it is still that daemon (pids are reused after a reboot).
    pids = {k: v for k, v in (old.started_pids if old else {}).items() if procs.running_as(v, k)}
    daemons = LibvirtDaemons(state_dir / "libvirt", knobs=knobs, started_pids=dict(pids))
    owned = True
    if daemons.answering():
        if "libvirtd" in pids:
            if not daemons.config_current():
                # The knobs changed: libvirtd reads its config only when it starts.
                daemons.restart_libvirtd(pids["libvirtd"])
        elif knobs != LabKnobs(virt=knobs.virt, memory_mib=knobs.memory_mib):
            raise UserError(
                "a libvirtd that this lab did not start is running: its settings cannot be changed here; stop it, or use no libvirtd knobs"
            )
        else:
            owned = False  # someone else's libvirtd: reused as it is, never stopped
    else:
        daemons.start()
    pids.update(daemons.started_pids)
    image = build_image(state_dir, rebuild=rebuild)
    if knobs.virt == "auto":
        if old is not None and not rebuild and old.kvm_note and "chosen with --virt" not in old.kvm_note:
            virt_type, note = old.virt_type, old.kvm_note
        else:
            virt_type, note = probe_kvm(image)
    else:
        virt_type, note = knobs.virt, f"{knobs.virt} chosen with --virt"
    GuestNetwork(LAB_NETNS, state_dir / NET_DIR).up()
    state = LabState(state_dir, URI, virt_type, note, image, LAB_NETNS, pids, knobs, owned)
    state.save()
    return state


def remove_storm_leftovers(state_dir: Path, run_id: str | None = None) -> list[str]:
    """Destroy a storm's domains and remove its network namespace (every storm's, when
    `run_id` is None); return what was removed. For storms that died without cleaning up."""
    state = load_state(state_dir)
    done = destroy_domains(state.uri if state else URI, run_id)
    names = (
        [network_name(run_id)] if run_id else [n for n in list_namespaces() if n.startswith(PREFIX) and n != LAB_NETNS]
    )
    for ns in names:
        if GuestNetwork(ns, state_dir / NET_DIR).remove():
            done.append(f"removed network namespace {ns} and its dnsmasq")
    return done


def down(state_dir: Path | None = None) -> list[str]:
    """Stop what `up()` started (and any storm leftovers); return what was done."""
    state_dir = state_dir or default_state_dir()
    done = remove_storm_leftovers(state_dir)
    state = load_state(state_dir)
    net = GuestNetwork(LAB_NETNS, state_dir / NET_DIR)
    if net.exists():
        net.down()
        done.append(f"removed network namespace {LAB_NETNS}")
    if state is not None:
        for name in ("libvirtd", "virtlogd"):
            pid = state.started_pids.get(name)
            if pid is None or not procs.running_as(pid, name):
                continue
            procs.stop(pid, timeout_s=15)
            done.append(f"stopped {name} (pid {pid})")
        # The lab's knobs live in the system's qemu.conf: put back what was there before the lab.
        if state.started_pids.get("libvirtd") is not None and LibvirtDaemons(state_dir / "libvirt").restore_qemu_conf():
            done.append(f"restored {QEMU_CONF}")
        (state_dir / STATE_FILE).unlink(missing_ok=True)
    return done


def status(state_dir: Path | None = None) -> dict[str, Any]:
    state_dir = state_dir or default_state_dir()
    state = load_state(state_dir)
    daemons = LibvirtDaemons(state_dir / "libvirt")
    out: dict[str, Any] = {
        "state_dir": str(state_dir),
        "up": state is not None,
        "libvirtd_answering": daemons.answering(),
        "namespaces": [n for n in list_namespaces() if n.startswith(PREFIX)],
    }
    if state is not None:
        out.update(virt_type=state.virt_type, kvm_note=state.kvm_note, kernel=state.image.kernel_version, knobs=state.knobs.to_dict(),
                   image=str(state.image.initrd), network=state.network,
                   dnsmasq_pid=GuestNetwork(state.network, state_dir / NET_DIR).dnsmasq_pid())  # fmt: skip
    if out["libvirtd_answering"]:
        r = daemons.virsh("list", "--all", "--name")
        out["redline_domains"] = [n for n in r.stdout.split() if n.startswith(PREFIX)]
    return out
