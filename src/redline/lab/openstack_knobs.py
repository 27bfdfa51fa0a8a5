"""The OpenStack lab's knobs: seed 000's reconfiguration of a compute control plane.

Seed 000 (Grizzly, 40 guests on one node) ran more nova-api, nova-conductor and
quantum-server processes (each serialised its database calls), more Keystone processes
with tokens in memcached, and raised libvirtd's max_workers / max_client_requests; it also
took guests out of cgroups and turned the security driver off. Each knob here becomes one
setting of a real configuration file (lab/openstack_conf.py) or a process count, and is
recorded in every run folder. Pure: no I/O.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from redline.errors import UserError
from redline.lab.knobs import LabKnobs

CACHES = ("none", "memcached")


@dataclass(frozen=True)
class OpenStackKnobs:
    """Defaults are the lean lab: one process of everything, Keystone without a cache, libvirtd's own limits."""

    nova_api_workers: int = 1  # gunicorn workers serving the Compute API
    conductor_workers: int = 1  # nova.conf [conductor] workers
    scheduler_workers: int = 1  # nova.conf [scheduler] workers
    keystone_processes: int = 1  # gunicorn workers serving Keystone
    keystone_cache: str = "none"  # keystone.conf [cache]: none, or memcached (dogpile.cache.pymemcache)
    neutron_api_workers: int = 1  # gunicorn workers serving the Networking API
    libvirt: LabKnobs = field(default_factory=lambda: LabKnobs(virt="qemu"))  # libvirtd / qemu.conf, shared

    def __post_init__(self) -> None:
        for name in ("nova_api_workers", "conductor_workers", "scheduler_workers", "keystone_processes",
                     "neutron_api_workers"):  # fmt: skip
            v = getattr(self, name)
            if not 1 <= v <= 16:
                raise UserError(f"--{name.replace('_', '-')} must be 1..16 (got {v})")
        if self.keystone_cache not in CACHES:
            raise UserError(f"--keystone-cache must be one of {', '.join(CACHES)}, not {self.keystone_cache!r}")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["libvirt"] = self.libvirt.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> OpenStackKnobs:
        own = {k: d[k] for k in cls.__dataclass_fields__ if k in d and k != "libvirt"}
        return cls(**own, libvirt=LabKnobs.from_dict(d.get("libvirt", {})))


# Seed 000's reconfiguration at this machine's scale (2 CPUs): several of each process where
# the seed ran 40, memcached for Keystone, libvirtd's limits raised to the seed's 40.
SEED_000 = OpenStackKnobs(
    nova_api_workers=4, conductor_workers=4, scheduler_workers=2, keystone_processes=4, keystone_cache="memcached",
    neutron_api_workers=2, libvirt=LabKnobs(virt="qemu", max_workers=40, max_client_requests=40),
)  # fmt: skip
