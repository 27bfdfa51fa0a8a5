"""Storm drivers assembled for a command: the libvirt one on the hypervisor lab, the
openstack one on a cloud from clouds.yaml.

The lab's state becomes a LibvirtStormConfig here, with the lab's namespace networks as
the runs' guest networks, so that storm/ needs nothing of the lab; `redline storm
cleanup` comes through here for the same reason.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from redline.errors import UserError
from redline.lab import hypervisor
from redline.lab.netns import GuestNetwork
from redline.storm.driver import StormDriver
from redline.storm.libvirt_driver import LibvirtDriver, LibvirtStormConfig
from redline.storm.model import InstanceSpec, StormPlan

DRIVERS = ("libvirt", "openstack")
OTHER_DRIVERS_MEMORY_MIB = 112

# The driver, its instances and the description of the target for run.json.
StormSetup = tuple[StormDriver, list[InstanceSpec], dict[str, Any]]
# --cloud, --image, --flavor, --network of `redline storm` (None: from the environment).
OpenStackArgs = tuple[str | None, str | None, str | None, str | None]
NO_OPENSTACK_ARGS: OpenStackArgs = (None, None, None, None)


def libvirt_storm_config(state: hypervisor.LabState) -> LibvirtStormConfig:
    img = state.image
    return LibvirtStormConfig(uri=state.uri, virt_type=state.virt_type, kvm_note=state.kvm_note, kernel=img.kernel,
                              initrd=img.initrd, cmdline=img.cmdline, private_key=img.private_key,
                              memory_mib=state.knobs.memory_mib, net_dir=state.state_dir / hypervisor.NET_DIR,
                              network=GuestNetwork)  # fmt: skip


def lab_memory(driver: str, state_dir: Path | None) -> int:
    """The guest memory the hypervisor lab was brought up with (112 MiB for other drivers)."""
    if driver != "libvirt":
        return OTHER_DRIVERS_MEMORY_MIB
    return hypervisor.require_state(state_dir).knobs.memory_mib


def lab_target(state_dir: Path | None) -> dict[str, Any]:
    """What a run's run.json records about the hypervisor lab (raises when it is not up)."""
    return hypervisor.require_state(state_dir).describe()


def make_storm_driver(name: str, run_id: str, plan: StormPlan, state_dir: Path | None,
                      openstack_args: OpenStackArgs = NO_OPENSTACK_ARGS) -> StormSetup:  # fmt: skip
    if name == "libvirt":
        state = hypervisor.require_state(state_dir)
        drv = LibvirtDriver(libvirt_storm_config(state), run_id, memory_mib=plan.memory_mib)
        return drv, drv.specs(plan.count), state.describe()
    if name == "openstack":
        from redline.storm.openstack_driver import open_driver

        return open_driver(run_id, plan, *openstack_args)
    raise UserError(f"--driver must be {' or '.join(DRIVERS)}, not {name!r}")


def driver_factory(name: str, state_dir: Path | None,
                   openstack_args: OpenStackArgs = NO_OPENSTACK_ARGS) -> Callable[[str, StormPlan], StormSetup]:  # fmt: skip
    """make_storm_driver with the command's choices bound: (run id, plan) -> setup, one per storm."""

    def make(run_id: str, plan: StormPlan) -> StormSetup:
        return make_storm_driver(name, run_id, plan, state_dir, openstack_args)

    return make


def cleanup_storms(run_id: str | None, state_dir: Path | None) -> list[str]:
    """Remove what storms on the hypervisor lab left behind (run `run_id`'s, or every storm's)."""
    return hypervisor.remove_storm_leftovers(state_dir or hypervisor.default_state_dir(), run_id)
