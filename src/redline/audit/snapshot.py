"""Reading a host (or a copy of one under a root directory) into an immutable Snapshot.

This module is the audit's only I/O: checks are pure functions of the Snapshot, so a fixture
tree under --root and the live host go through exactly the same code.
"""

from __future__ import annotations

import fcntl
import glob
import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

from redline.errors import UserError

# Files whose text the checks read. Globs are expanded under the root.
FILE_PATTERNS: tuple[str, ...] = (
    "/etc/libvirt/libvirtd.conf",
    "/etc/libvirt/virtqemud.conf",
    "/etc/libvirt/qemu.conf",
    "/etc/libvirt/qemu/*.xml",
    "/run/libvirt/qemu/*.xml",
    "/proc/mounts",
    "/sys/fs/cgroup/cgroup.controllers",
    "/sys/kernel/mm/ksm/run",
    "/sys/kernel/mm/ksm/pages_sharing",
    "/sys/kernel/mm/ksm/pages_shared",
    "/sys/kernel/mm/ksm/merge_across_nodes",
    "/sys/kernel/mm/transparent_hugepage/enabled",
    "/sys/kernel/mm/transparent_hugepage/defrag",
    "/sys/devices/system/node/online",
    "/sys/devices/system/node/node*/hugepages/hugepages-*/nr_hugepages",
    "/sys/devices/system/node/node*/hugepages/hugepages-*/free_hugepages",
    "/sys/devices/system/cpu/online",
    "/sys/devices/system/cpu/cpu*/cpufreq/scaling_governor",
    "/proc/sys/kernel/numa_balancing",
    "/sys/block/*/queue/scheduler",
    "/sys/block/*/queue/rotational",
    "/proc/interrupts",
    "/proc/irq/*/smp_affinity_list",
    "/proc/irq/*/effective_affinity_list",
    "/proc/sys/vm/swappiness",
    "/proc/sys/vm/dirty_ratio",
    "/proc/sys/vm/dirty_background_ratio",
    "/etc/tuned/active_profile",
    "/proc/meminfo",
    "/etc/nova/nova.conf",
    "/etc/nova/*uwsgi*.ini",
    "/etc/nova/gunicorn*.py",
    "/etc/keystone/keystone.conf",
    "/etc/keystone/*uwsgi*.ini",
    "/etc/keystone/gunicorn*.py",
    "/etc/keystone/gunicorn*.conf",
    "/etc/uwsgi/apps-enabled/*.ini",
    "/etc/apache2/sites-enabled/*.conf",
    "/etc/httpd/conf.d/*.conf",
    "/etc/neutron/neutron.conf",
    "/etc/neutron/*uwsgi*.ini",
    "/etc/neutron/gunicorn*.py",
    "/etc/neutron/*_agent.ini",
    "/etc/neutron/plugins/ml2/*.ini",
)

# Paths whose mere presence matters (device nodes, module directories, installed daemons).
PRESENCE_PATTERNS: tuple[str, ...] = (
    "/dev/kvm",
    "/dev/vhost-net",
    "/sys/module/vhost_net",
    "/sys/module/kvm",
    "/usr/sbin/libvirtd",
    "/usr/sbin/virtqemud",
    "/etc/libvirt",
    "/etc/tuned",
    "/usr/sbin/tuned",
)

DPKG_STATUS = "/var/lib/dpkg/status"
MAX_FILE_BYTES = 1 << 20


@dataclass(frozen=True)
class Snapshot:
    """What was read. Paths are host paths (as if root were /), whatever the root was."""

    root: str
    files: Mapping[str, str] = field(default_factory=dict)
    present: frozenset[str] = frozenset()
    chardevs: frozenset[str] = frozenset()
    packages: Mapping[str, str] = field(default_factory=dict)  # name -> version
    probes: Mapping[str, str] = field(default_factory=dict)

    def text(self, path: str) -> str | None:
        return self.files.get(path)

    def value(self, path: str) -> str | None:
        raw = self.files.get(path)
        return None if raw is None else raw.strip()

    def glob(self, pattern: str) -> list[str]:
        """Collected file paths matching a shell pattern, sorted."""
        import fnmatch

        return sorted(p for p in self.files if fnmatch.fnmatchcase(p, pattern))

    def exists(self, path: str) -> bool:
        return path in self.present or path in self.files


def _host_path(root: Path, real: str) -> str:
    rel = os.path.relpath(real, root)
    return "/" + rel


def _read(path: str) -> str | None:
    try:
        with open(path, "rb") as fh:
            data = fh.read(MAX_FILE_BYTES)
    except OSError:
        return None  # unreadable (permissions, write-only sysfs knobs): treated as absent
    return data.decode("utf-8", "replace")


def _dpkg_versions(root: Path) -> dict[str, str]:
    """Installed package versions of interest from dpkg's status file (libvirt, qemu, tuned)."""
    text = _read(str(root / DPKG_STATUS.lstrip("/")))
    if text is None:
        return {}
    out: dict[str, str] = {}
    for stanza in text.split("\n\n"):
        name = version = status = ""
        for line in stanza.splitlines():
            if line.startswith("Package: "):
                name = line[9:].strip()
            elif line.startswith("Version: "):
                version = line[9:].strip()
            elif line.startswith("Status: "):
                status = line[8:]
        if name.startswith(("libvirt", "qemu-system", "tuned")) and "installed" in status.split()[-1:]:
            out[name] = version
    return out


KVM_GET_API_VERSION = 0xAE00


def _probe_kvm(path: str, live: bool) -> str:
    """'usable', 'missing' or 'unusable: reason'. On a snapshot a plain file stands in for the node."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return "missing"
    except OSError as exc:
        return f"unusable: {exc.strerror}"
    if not live:
        return "usable" if os.access(path, os.R_OK | os.W_OK) else "unusable: no read/write access"
    if not stat.S_ISCHR(st.st_mode):
        return "unusable: not a character device"
    try:
        fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
    except OSError as exc:
        return f"unusable: open failed ({exc.strerror})"
    try:
        version = fcntl.ioctl(fd, KVM_GET_API_VERSION)
    except OSError as exc:
        return f"unusable: KVM_GET_API_VERSION failed ({exc.strerror})"
    finally:
        os.close(fd)
    return "usable" if version == 12 else f"unusable: API version {version}, expected 12"


def collect(root: str | os.PathLike[str] = "/") -> Snapshot:
    """Read everything the checks need from `root` (the live host when root is /)."""
    base = Path(root)
    if not base.is_dir():
        raise UserError(f"--root {root} is not a directory")
    base = base.resolve()
    live = str(base) == "/"
    files: dict[str, str] = {}
    for pattern in FILE_PATTERNS:
        for real in glob.glob(str(base) + pattern):
            text = _read(real)
            if text is not None:
                files[_host_path(base, real)] = text
    present: set[str] = set()
    chardevs: set[str] = set()
    for pattern in PRESENCE_PATTERNS:
        for real in glob.glob(str(base) + pattern):
            host = _host_path(base, real)
            present.add(host)
            try:
                if stat.S_ISCHR(os.stat(real).st_mode):
                    chardevs.add(host)
            except OSError:
                pass
    probes = {"kvm": _probe_kvm(str(base / "dev/kvm"), live), "live": "yes" if live else "no"}
    return Snapshot(
        root=str(base),
        files=MappingProxyType(files),
        present=frozenset(present),
        chardevs=frozenset(chardevs),
        packages=MappingProxyType(_dpkg_versions(base)),
        probes=MappingProxyType(probes),
    )
