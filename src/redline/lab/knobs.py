"""The hypervisor lab's knobs for seed 000's experiments, and the config lines they become.

Seed 000 found parallel boots serialised by libvirtd's limits (max_workers,
max_client_requests), by placing guest threads in cgroups, and by a security driver that
loads a profile under a global lock. Each knob here maps to one setting of libvirtd.conf,
qemu.conf or the domain XML, so a storm can be repeated with one thing changed. Pure: no I/O.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from redline.errors import UserError

SECURITY_DRIVERS = ("none", "apparmor", "selinux")
VIRT_CHOICES = ("auto", "kvm", "qemu")
# libvirtd's own defaults, for the record (libvirtd.conf comments, libvirt 9.0).
LIBVIRTD_DEFAULTS = {"max_workers": 20, "min_workers": 5, "max_client_requests": 5}


@dataclass(frozen=True)
class LabKnobs:
    """Every `redline lab hypervisor up` sets all of these; an unset one takes libvirt's default."""

    max_workers: int | None = None  # libvirtd.conf max_workers (libvirt: 20)
    max_client_requests: int | None = None  # libvirtd.conf max_client_requests (libvirt: 5)
    cgroups: bool = True  # False: qemu.conf cgroup_controllers = [ ] (guests stay out of cgroups)
    security_driver: str = "none"  # qemu.conf security_driver
    memory_mib: int = 112  # the domain XML's <memory>, the storm's default
    virt: str = "auto"  # domain type: auto (probe KVM with a timeout, else TCG), kvm, qemu (TCG)

    def __post_init__(self) -> None:
        for name in ("max_workers", "max_client_requests"):
            v = getattr(self, name)
            if v is not None and not 1 <= v <= 1000:
                raise UserError(f"--{name.replace('_', '-')} must be 1..1000 (got {v})")
        if self.security_driver not in SECURITY_DRIVERS:
            raise UserError(
                f"--security-driver must be one of {', '.join(SECURITY_DRIVERS)}, not {self.security_driver!r}"
            )
        if not 64 <= self.memory_mib <= 4096:
            raise UserError(f"--memory must be 64..4096 MiB (got {self.memory_mib})")
        if self.virt not in VIRT_CHOICES:
            raise UserError(f"--virt must be auto, kvm or qemu, not {self.virt!r}")

    def libvirtd_settings(self) -> dict[str, str | None]:
        """libvirtd.conf keys: a value sets the key, None leaves libvirt's default."""
        out: dict[str, str | None] = {"max_workers": None, "min_workers": None, "max_client_requests": None}
        if self.max_workers is not None:
            out["max_workers"] = str(self.max_workers)
            # libvirtd refuses min_workers > max_workers, and min_workers defaults to 5.
            if self.max_workers < LIBVIRTD_DEFAULTS["min_workers"]:
                out["min_workers"] = str(self.max_workers)
        if self.max_client_requests is not None:
            out["max_client_requests"] = str(self.max_client_requests)
        return out

    def qemu_settings(self) -> dict[str, str | None]:
        """qemu.conf keys: None removes the key, so libvirt's default applies again."""
        return {
            "security_driver": f'"{self.security_driver}"',
            "cgroup_controllers": None if self.cgroups else "[ ]",
        }

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> LabKnobs:
        return cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})
