"""Build the micro-VM image the hypervisor lab boots: a Debian kernel and a tiny initramfs.

Everything comes from Debian packages fetched with `apt-get download` (never installed):
the kernel from linux-image-cloud-amd64 (vmlinuz and the virtio-net modules), busybox-static
(shell, `udhcpc` DHCP client), and dropbear (a real SSH server) with every shared library it
needs copied in. The lab's key pair is generated here; its public half is the guest's
authorised key. The result is cached: a second build with the same inputs is a no-op.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from redline.errors import UserError

KERNEL_META = "linux-image-cloud-amd64"
PACKAGES = ("busybox-static", "dropbear-bin", "libtomcrypt1", "libtommath1")
# Loaded in this order by the guest's /init (the cloud kernel builds virtio as modules).
MODULES = ("virtio_ring", "virtio", "virtio_pci_legacy_dev", "virtio_pci_modern_dev", "virtio_pci",
           "failover", "net_failover", "virtio_net")  # fmt: skip
IMAGE_VERSION = 1
# no_timer_check: under TCG on a busy host the kernel's IO-APIC timer check can time out and
# panic ("IO-APIC + timer doesn't work!"); seen in 4 of 20 guests of one storm. Cloud images
# pass it for the same reason.
CMDLINE = "console=ttyS0 quiet panic=-1 no_timer_check rdinit=/init"

INIT = """#!/bin/busybox sh
/bin/busybox mkdir -p /proc /sys /dev /tmp /var/run /root
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mkdir -p /dev/pts && mount -t devpts devpts /dev/pts
for m in {modules}; do insmod /lib/modules/$m.ko; done
ip link set lo up
ip link set eth0 up
echo "GUEST-BOOTED $(cut -d" " -f1 /proc/uptime)"
udhcpc -i eth0 -s /etc/udhcpc.sh -t 60 -T 1 -A 1 -b -q -f >/dev/console 2>&1 &
dropbear -r /etc/dropbear/host_key -p 22 -P /var/run/dropbear.pid -E
echo "GUEST-UP $(cut -d" " -f1 /proc/uptime)"
while true; do sleep 3600; done
"""

UDHCPC = """#!/bin/sh
case "$1" in
  bound|renew)
    ip addr flush dev "$interface"
    ip addr add "$ip/${mask:-24}" dev "$interface"
    [ -n "$router" ] && ip route add default via "${router%% *}" dev "$interface"
    echo "GUEST-IP $ip $(cut -d" " -f1 /proc/uptime)" ;;
esac
exit 0
"""


@dataclass(frozen=True)
class GuestImage:
    """A built image: boot it with <kernel>, <initrd> and <cmdline>; log in with `private_key`."""

    kernel: Path
    initrd: Path
    private_key: Path
    public_key: str
    kernel_version: str
    cmdline: str = CMDLINE

    def to_dict(self) -> dict[str, str]:
        return {"kernel": str(self.kernel), "initrd": str(self.initrd), "private_key": str(self.private_key),
                "public_key": self.public_key, "kernel_version": self.kernel_version, "cmdline": self.cmdline}  # fmt: skip

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> GuestImage:
        # The command line is code, not data: a state saved by an older redline gets today's.
        return cls(
            Path(d["kernel"]), Path(d["initrd"]), Path(d["private_key"]), d["public_key"], d["kernel_version"], CMDLINE
        )


def _run(cmd: list[str], cwd: Path | None = None, timeout: float = 300, env: dict[str, str] | None = None) -> str:
    try:
        r = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env)
    except FileNotFoundError:
        raise UserError(f"{cmd[0]} is not installed (needed to build the guest image)") from None
    except subprocess.TimeoutExpired:
        raise UserError(f"{' '.join(cmd[:3])} did not finish within {timeout:.0f} s") from None
    if r.returncode != 0:
        last = (r.stderr.strip() or r.stdout.strip() or str(r.returncode)).splitlines()[-1]
        raise UserError(f"{' '.join(cmd[:3])} failed: {last}")
    return r.stdout


def _download(names: list[str], into: Path) -> list[Path]:
    into.mkdir(parents=True, exist_ok=True)
    os.chmod(into, 0o777)  # apt's _apt user writes the .debs here
    _run(["apt-get", "download", *names], cwd=into)
    found = []
    for name in names:
        debs = sorted(into.glob(f"{name}_*.deb"))
        if not debs:
            raise UserError(f"apt-get download {name} gave no .deb")
        found.append(debs[-1])
    return found


def _kernel_package(meta_deb: Path) -> str:
    """The versioned kernel package a linux-image-cloud-amd64 .deb depends on."""
    depends = _run(["dpkg-deb", "-f", str(meta_deb), "Depends"])
    m = re.search(r"(linux-image-[0-9][^\s,(]*-cloud-amd64)", depends)
    if not m:
        raise UserError(f"cannot find the kernel package in {meta_deb.name}: Depends: {depends.strip()}")
    return m.group(1)


def _library_closure(binary: Path, lib_dirs: list[Path]) -> list[Path]:
    """Every shared library `binary` loads (ldd, with the extracted packages' libraries first)."""
    env = dict(os.environ, LD_LIBRARY_PATH=":".join(str(d) for d in lib_dirs))
    out = _run(["ldd", str(binary)], env=env)
    libs: list[Path] = []
    for line in out.splitlines():
        m = re.search(r"(/\S+)\s+\(0x", line)
        if "not found" in line:
            raise UserError(f"{binary.name} needs a library that is not available: {line.strip()}")
        if m:
            libs.append(Path(m.group(1)))
    return libs


def _cpio_gz(root: Path, out: Path) -> None:
    files = sorted(str(p.relative_to(root)) for p in root.rglob("*"))
    r = subprocess.run(["cpio", "-o", "-H", "newc", "--quiet"], cwd=root, input="\n".join(files).encode(),
                       capture_output=True, timeout=120)  # fmt: skip
    if r.returncode != 0:
        raise UserError(f"cpio failed: {r.stderr.decode().strip()}")
    tmp = out.with_name(out.name + ".tmp")
    with gzip.open(tmp, "wb", compresslevel=6) as fh:
        fh.write(r.stdout)
    tmp.replace(out)


def ensure_key(state_dir: Path) -> tuple[Path, str]:
    """The lab's SSH key pair (ed25519, no passphrase), generated once."""
    key = state_dir / "id_ed25519"
    if not key.exists():
        state_dir.mkdir(parents=True, exist_ok=True)
        _run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "redline-lab", "-f", str(key)])
    return key, (state_dir / "id_ed25519.pub").read_text().strip()


def build_image(state_dir: Path, rebuild: bool = False) -> GuestImage:
    """Build (or reuse) the micro-VM image under `state_dir`/image."""
    key, pub = ensure_key(state_dir)
    img_dir = state_dir / "image"
    manifest = img_dir / "image.json"
    fingerprint = hashlib.sha256(f"{IMAGE_VERSION}\n{pub}\n{INIT}\n{UDHCPC}\n{MODULES}".encode()).hexdigest()[:16]
    if manifest.exists() and not rebuild:
        doc = json.loads(manifest.read_text())
        image = GuestImage.from_dict(doc["image"])
        if doc.get("fingerprint") == fingerprint and image.kernel.exists() and image.initrd.exists():
            return image
    for tool in ("apt-get", "dpkg-deb", "cpio", "ldd"):
        if shutil.which(tool) is None:
            raise UserError(f"{tool} is not installed (needed to build the guest image)")
    img_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="redline-image-") as tmp_s:
        tmp = Path(tmp_s)
        debs = tmp / "debs"
        (meta,) = _download([KERNEL_META], debs)
        kpkg = _kernel_package(meta)
        debs_all = _download([kpkg, *PACKAGES], debs)
        x = tmp / "x"
        for deb in debs_all:
            _run(["dpkg-deb", "-x", str(deb), str(x)])
        vmlinuz = sorted((x / "boot").glob("vmlinuz-*"))
        if not vmlinuz:
            raise UserError(f"{kpkg} holds no /boot/vmlinuz")
        kver = vmlinuz[0].name.removeprefix("vmlinuz-")
        root = tmp / "root"
        for d in (
            "bin",
            "sbin",
            "etc/dropbear",
            "lib/modules",
            "root/.ssh",
            "proc",
            "sys",
            "dev",
            "tmp",
            "var/run",
            "usr/sbin",
        ):
            (root / d).mkdir(parents=True, exist_ok=True)
        shutil.copy2(x / "bin/busybox", root / "bin/busybox")
        (root / "bin/sh").symlink_to("busybox")
        # The modules for virtio-net, flattened (the cloud kernel ships them uncompressed or .xz).
        mod_root = x / "lib/modules" / kver
        for name in MODULES:
            hits = [p for p in mod_root.rglob(f"{name}.ko*") if p.name.split(".ko")[0] == name]
            if not hits:
                raise UserError(f"kernel module {name} not found in {kpkg}")
            src = hits[0]
            if src.suffix == ".xz":
                _run(["xz", "-dkf", str(src)])
                src = src.with_suffix("")
            shutil.copy2(src, root / "lib/modules" / f"{name}.ko")
        # dropbear and its shared libraries, at the paths the loader will look for them.
        dropbear = x / "usr/sbin/dropbear"
        shutil.copy2(dropbear, root / "usr/sbin/dropbear")
        (root / "bin/dropbear").symlink_to("/usr/sbin/dropbear")
        lib_dirs = [x / "usr/lib/x86_64-linux-gnu", x / "lib/x86_64-linux-gnu"]
        for lib in _library_closure(dropbear, lib_dirs):
            rel = lib
            for lib_dir in lib_dirs:
                if lib.is_relative_to(lib_dir):
                    rel = Path("/usr/lib/x86_64-linux-gnu") / lib.relative_to(lib_dir)
            dest = root / str(rel).lstrip("/")
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(lib.resolve(), dest)
        # /lib64 and /lib/x86_64-linux-gnu are where the loader and libc are looked up.
        (root / "etc/ld.so.conf").write_text("/usr/lib/x86_64-linux-gnu\n/lib/x86_64-linux-gnu\n")
        host_key = root / "etc/dropbear/host_key"
        env = dict(os.environ, LD_LIBRARY_PATH=":".join(str(d) for d in lib_dirs))
        r = subprocess.run([str(x / "usr/bin/dropbearkey"), "-t", "ed25519", "-f", str(host_key)],
                           capture_output=True, text=True, env=env, timeout=60)  # fmt: skip
        if r.returncode != 0:
            raise UserError(f"dropbearkey failed: {r.stderr.strip()}")
        (root / "etc/passwd").write_text("root:x:0:0:root:/root:/bin/sh\n")
        (root / "etc/group").write_text("root:x:0:\n")
        (root / "etc/shells").write_text("/bin/sh\n")
        (root / "root/.ssh/authorized_keys").write_text(pub + "\n")
        os.chmod(root / "root", 0o700)
        os.chmod(root / "root/.ssh", 0o700)
        os.chmod(root / "root/.ssh/authorized_keys", 0o600)
        (root / "init").write_text(INIT.format(modules=" ".join(MODULES)))
        (root / "etc/udhcpc.sh").write_text(UDHCPC)
        os.chmod(root / "init", 0o755)
        os.chmod(root / "etc/udhcpc.sh", 0o755)
        kernel = img_dir / "vmlinuz"
        shutil.copy2(vmlinuz[0], kernel)
        initrd = img_dir / "initrd.gz"
        _cpio_gz(root, initrd)
    image = GuestImage(kernel, initrd, key, pub, kver)
    manifest.write_text(json.dumps({"fingerprint": fingerprint, "image": image.to_dict()}, indent=2) + "\n")
    return image
