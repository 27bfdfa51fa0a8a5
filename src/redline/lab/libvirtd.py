"""Start and stop a real libvirtd (with virtlogd) on this machine, for tests and the hypervisor lab.

Follows LAB-NOTES: Debian packages, no systemd, so `virtlogd -d` then `libvirtd -d`; the state
and runtime directories must exist, the user libvirt-qemu must exist, and qemu.conf must say
user/group root and security_driver none (no AppArmor in these containers). Guests must use
<domain type='qemu'> (TCG): KVM guests hang here.

Only what this object started is stopped, by the pid it recorded; a libvirtd that was already
answering is reused and left running. qemu.conf is restored if this object changed it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from redline import procs
from redline.errors import UserError
from redline.lab.knobs import LabKnobs

PACKAGES = (
    "libvirt-daemon",
    "libvirt-daemon-driver-qemu",
    "libvirt-clients",
    "qemu-system-x86",
    "libxml2-utils",
    "libvirt0",
)
QEMU_CONF = Path("/etc/libvirt/qemu.conf")
QEMU_SETTINGS = {"user": '"root"', "group": '"root"', "security_driver": '"none"'}
RUNTIME_DIRS = (
    "/var/log/libvirt",
    "/var/lib/libvirt/qemu",
    "/var/cache/libvirt",
    "/run/libvirt",
    "/var/lib/libvirt/images",
)
URI = "qemu:///system"


def _run(cmd: list[str], timeout: float = 30, check: bool = False) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=check)


def ensure_installed(packages: tuple[str, ...] = PACKAGES) -> None:
    """Install missing Debian packages (needs root); a no-op when the daemons are present."""
    if shutil.which("libvirtd") and shutil.which("virtlogd") and shutil.which("virsh"):
        return
    if os.geteuid() != 0:
        raise UserError("libvirtd is not installed and installing it needs root: apt-get install " + " ".join(packages))
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    subprocess.run(["apt-get", "update", "-qq"], check=False, env=env, capture_output=True, timeout=300)
    r = subprocess.run(
        ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *packages],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    if r.returncode != 0 or not shutil.which("libvirtd"):
        raise UserError(
            f"installing libvirt failed: {r.stderr.strip().splitlines()[-1] if r.stderr.strip() else r.returncode}"
        )


def set_conf_keys(text: str, settings: dict[str, str | None]) -> str:
    """Set `key = value` lines in a libvirt-style config, replacing active lines, else appending.

    A value of None removes the key's active lines, so that libvirt's default applies again.
    """
    out: list[str] = []
    done: set[str] = set()
    for line in text.splitlines():
        key = line.split("=", 1)[0].strip() if "=" in line and not line.lstrip().startswith("#") else None
        if key in settings:
            if settings[key] is not None and key not in done:
                out.append(f"{key} = {settings[key]}")
            done.add(key)
            continue
        out.append(line)
    out += [f"{k} = {v}" for k, v in settings.items() if k not in done and v is not None]
    return "\n".join(out) + "\n"


def libvirtd_conf(knobs: LabKnobs, log: Path) -> str:
    """The lab's private libvirtd.conf: the default sockets, a log file, and the knobs."""
    return set_conf_keys(f'log_outputs = "3:file:{log}"\n', knobs.libvirtd_settings())


def qemu_conf(old: str, knobs: LabKnobs) -> str:
    """qemu.conf with what LAB-NOTES require here (user/group root) and the knobs applied."""
    return set_conf_keys(old, {**QEMU_SETTINGS, **knobs.qemu_settings()})


@dataclass
class LibvirtDaemons:
    """A running libvirtd for qemu:///system. Use as a context manager, or call start()/stop()."""

    state_dir: Path
    uri: str = URI
    started_pids: dict[str, int] = field(default_factory=dict)
    knobs: LabKnobs = field(default_factory=LabKnobs)
    _qemu_conf_backup: bytes | None = None
    _qemu_conf_created: bool = False

    def virsh(self, *args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
        return _run(["virsh", "-c", self.uri, *args], timeout=timeout)

    def answering(self) -> bool:
        try:
            return self.virsh("uri", timeout=10).returncode == 0
        except subprocess.TimeoutExpired:
            return False

    def prepare(self) -> None:
        if os.geteuid() != 0:
            raise UserError("starting the system libvirtd needs root")
        ensure_installed()
        self.state_dir.mkdir(parents=True, exist_ok=True)
        for d in RUNTIME_DIRS:
            Path(d).mkdir(parents=True, exist_ok=True)
        if _run(["getent", "passwd", "libvirt-qemu"]).returncode != 0:
            # libvirtd refuses to start without the user its Debian build defaults to.
            _run(
                ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", "libvirt-qemu"], check=True
            )
        QEMU_CONF.parent.mkdir(parents=True, exist_ok=True)
        old = QEMU_CONF.read_bytes() if QEMU_CONF.exists() else None
        new = self.wanted_qemu_conf().encode()
        if new != old:
            self._qemu_conf_backup, self._qemu_conf_created = old, old is None
            orig = self.state_dir / "qemu.conf.orig"
            # Only the first change is the original: a second `up` must not save the lab's own edit.
            if old is not None and not orig.exists():
                orig.write_bytes(old)
            QEMU_CONF.write_bytes(new)
        # A private daemon config: the default sockets, but nothing else inherited from /etc.
        (self.state_dir / "libvirtd.conf").write_text(self.wanted_libvirtd_conf())
        (self.state_dir / "virtlogd.conf").write_text('log_outputs = "3:file:%s"\n' % (self.state_dir / "virtlogd.log"))

    def wanted_libvirtd_conf(self) -> str:
        return libvirtd_conf(self.knobs, self.state_dir / "libvirtd.log")

    def wanted_qemu_conf(self) -> str:
        return qemu_conf(QEMU_CONF.read_text() if QEMU_CONF.exists() else "", self.knobs)

    def config_current(self) -> bool:
        """Whether the config files on disk already say what `knobs` want."""
        path = self.state_dir / "libvirtd.conf"
        try:
            return path.read_text() == self.wanted_libvirtd_conf() and QEMU_CONF.read_text() == self.wanted_qemu_conf()
        except OSError:
            return False

    def restart_libvirtd(self, pid: int, timeout: float = 30) -> None:
        """Stop the libvirtd this lab started (by its pid) and start it with the current knobs.

        libvirtd reads libvirtd.conf and qemu.conf only when it starts. Running guests survive:
        libvirtd reconnects to their QEMU processes.
        """
        procs.stop(pid, timeout_s=15)
        self.started_pids.pop("libvirtd", None)
        self.start(timeout)

    def start(self, timeout: float = 30) -> LibvirtDaemons:
        if self.answering():
            return self  # someone else's libvirtd: reuse, never stop it
        self.prepare()
        daemons: tuple[tuple[str, list[str]], ...] = (("virtlogd", []), ("libvirtd", []))
        for name, extra in daemons:
            if name == "virtlogd" and self._virtlogd_running():
                continue  # one virtlogd serves any libvirtd; a restarted libvirtd reuses it
            pidfile = self.state_dir / f"{name}.pid"
            pidfile.unlink(missing_ok=True)
            r = _run(
                [name, "-d", "-f", str(self.state_dir / f"{name}.conf"), "-p", str(pidfile), *extra], timeout=timeout
            )
            if r.returncode != 0:
                self.stop()
                raise UserError(f"{name} did not start: {(r.stderr or r.stdout).strip() or r.returncode}")
            if procs.wait_until(pidfile.exists, timeout):
                self.started_pids[name] = int(pidfile.read_text().split()[0])
        if procs.wait_until(self.answering, timeout, 0.2):
            return self
        self.stop()
        raise UserError(f"libvirtd started but {self.uri} did not answer within {timeout:.0f} s")

    def _virtlogd_running(self) -> bool:
        pid = self.started_pids.get("virtlogd")
        return pid is not None and procs.alive(pid)

    def stop(self, timeout: float = 15) -> None:
        for name in ("libvirtd", "virtlogd"):
            pid = self.started_pids.pop(name, None)
            if pid is not None:
                procs.stop(pid, timeout_s=timeout)
        if self._qemu_conf_created:
            QEMU_CONF.unlink(missing_ok=True)
        elif self._qemu_conf_backup is not None:
            QEMU_CONF.write_bytes(self._qemu_conf_backup)
        self._qemu_conf_backup, self._qemu_conf_created = None, False

    def restore_qemu_conf(self) -> bool:
        """Put back the qemu.conf that was there before a lab's first change (after a lab's
        `down`, when this object's own backup is gone with the process that made it)."""
        orig = self.state_dir / "qemu.conf.orig"
        if not orig.exists():
            return False
        QEMU_CONF.write_bytes(orig.read_bytes())
        orig.unlink()
        return True

    def __enter__(self) -> LibvirtDaemons:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
