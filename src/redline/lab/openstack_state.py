"""What `redline lab openstack up` leaves for everyone else: one lab.json without secrets.

The storm driver, the audit and the monitor read this (never the lab's start-up code): the
clouds.yaml entry to connect with, the guest image and flavor to boot, the console marker a
booted guest prints, and every service with its PID, port and log, so that CPU can be
charged per service and a dead one named.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from redline.errors import UserError
from redline.lab.state import default_state_root
from redline.procs import alive

STATE_FILE = "lab.json"
CLOUD = "redline-lab"
# The micro-VM's /init prints this once dropbear is started (lab/image.py): "the guest is up".
GUEST_MARKER = "GUEST-UP"


def default_state_dir() -> Path:
    return default_state_root() / "openstack"


@dataclass(frozen=True)
class OpenStackService:
    """One process of the lab: `group` is the monitor's name for it (nova-api, mariadb, …)."""

    name: str
    pid: int
    port: int | None
    log: str
    group: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class OpenStackLabState:
    state_dir: Path
    cloud: str  # the clouds.yaml entry
    clouds_yaml: Path
    auth_url: str
    image_id: str
    flavor_id: str
    guest_marker: str
    virt_type: str  # "qemu" (TCG) or "kvm"
    libvirt_uri: str
    services: tuple[OpenStackService, ...]
    knobs: dict[str, Any] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)
    config_root: Path | None = None  # an audit root: <root>/etc/nova/nova.conf, …/keystone, …/neutron
    started_at: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["state_dir"], d["clouds_yaml"] = str(self.state_dir), str(self.clouds_yaml)
        d["config_root"] = str(self.config_root) if self.config_root else None
        d["services"] = [s.to_dict() for s in self.services]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> OpenStackLabState:
        return cls(
            state_dir=Path(d["state_dir"]), cloud=d["cloud"], clouds_yaml=Path(d["clouds_yaml"]),
            auth_url=d["auth_url"], image_id=d["image_id"], flavor_id=d["flavor_id"],
            guest_marker=d.get("guest_marker", GUEST_MARKER), virt_type=d.get("virt_type", "qemu"),
            libvirt_uri=d.get("libvirt_uri", "qemu:///system"),
            services=tuple(OpenStackService(**s) for s in d.get("services", ())),
            knobs=dict(d.get("knobs", {})), versions=dict(d.get("versions", {})),
            config_root=Path(d["config_root"]) if d.get("config_root") else None,
            started_at=float(d.get("started_at", 0.0)),
        )  # fmt: skip

    def save(self) -> None:
        path = self.state_dir / STATE_FILE
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(self.to_dict(), indent=2) + "\n")
        tmp.replace(path)

    def describe(self) -> dict[str, Any]:
        """What a storm's run.json records about the lab it ran on (no secrets)."""
        return {"kind": "openstack-lab", "cloud": self.cloud, "auth_url": self.auth_url, "virt_type": self.virt_type,
                "image": self.image_id, "flavor": self.flavor_id, "knobs": self.knobs, "versions": self.versions}  # fmt: skip

    def service(self, name: str) -> OpenStackService | None:
        return next((s for s in self.services if s.name == name), None)

    def dead(self) -> list[OpenStackService]:
        return [s for s in self.services if not alive(s.pid)]


def load_state(state_dir: Path | None = None) -> OpenStackLabState | None:
    path = (state_dir or default_state_dir()) / STATE_FILE
    if not path.exists():
        return None
    try:
        return OpenStackLabState.from_dict(json.loads(path.read_text()))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise UserError(f"cannot read the OpenStack lab state {path}: {exc}") from None


def require_state(state_dir: Path | None = None) -> OpenStackLabState:
    state = load_state(state_dir)
    if state is None:
        raise UserError("the OpenStack lab is not up: run `redline lab openstack up`")
    return state


def clouds_env(state: OpenStackLabState) -> dict[str, str]:
    """Environment that points openstacksdk at the lab's clouds.yaml entry."""
    return dict(os.environ, OS_CLIENT_CONFIG_FILE=str(state.clouds_yaml), OS_CLOUD=state.cloud)
