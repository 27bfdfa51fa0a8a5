"""Storm drivers assembled for a command: the libvirt one on the hypervisor lab, the
openstack one on the OpenStack lab or on any cloud from clouds.yaml.

The labs' states become a LibvirtStormConfig / OpenStackStormConfig here, with the
hypervisor lab's namespace networks as the runs' guest networks, so that storm/ needs
nothing of the lab; `redline storm cleanup` comes through here for the same reason, and
so do the monitor's groups for an OpenStack lab storm (one per lab service group).

`--driver openstack` with none of --cloud/--image/--flavor/--network and no $OS_CLOUD
means the OpenStack lab (`redline lab openstack up`); any of them means "any cloud".
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from redline.errors import UserError
from redline.lab import hypervisor, openstack_state
from redline.lab.netns import GuestNetwork
from redline.lab.openstack_state import OpenStackLabState
from redline.monitor import NamePattern, PidTree, ProcessSelector
from redline.storm.driver import StormDriver
from redline.storm.libvirt_driver import LibvirtDriver, LibvirtStormConfig
from redline.storm.model import InstanceSpec, StormPlan
from redline.storm.openstack_driver import NO_NETWORK, OpenStackStormConfig, open_driver

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


def openstack_lab_config(state: OpenStackLabState) -> OpenStackStormConfig:
    """The lab's cloud as the driver sees it: its own clouds.yaml entry, its image and flavor,
    servers without a network (no Neutron agents: no data plane), guest up = the console
    marker, and the lab's libvirtd for the domains a failed storm leaves behind."""
    return OpenStackStormConfig(cloud=state.cloud, image=state.image_id, flavor=state.flavor_id,
                                clouds_yaml=state.clouds_yaml, network=NO_NETWORK, guest_marker=state.guest_marker,
                                libvirt_uri=state.libvirt_uri)  # fmt: skip


def openstack_lab_monitor_groups(state: OpenStackLabState) -> dict[str, ProcessSelector]:
    """One monitor group per lab service group (services sharing a group — nova-api's
    workers, two Neutron processes — are one PidTree of several roots), plus libvirtd and
    the guests' qemu when the lab does not list them; no dnsmasq (no data plane). The storm
    job adds redline's own tree ("driver")."""
    pids: dict[str, list[int]] = {}
    for svc in state.services:
        pids.setdefault(svc.group, []).append(svc.pid)
    groups: dict[str, ProcessSelector] = {g: PidTree(p[0], tuple(p[1:])) for g, p in pids.items()}
    groups.setdefault("libvirtd", NamePattern(r"^libvirtd$|/libvirtd\b"))
    groups.setdefault("qemu", NamePattern(r"^qemu-system"))
    return groups


def _any_cloud(args: OpenStackArgs) -> bool:
    return any(args) or bool(os.environ.get("OS_CLOUD"))


def openstack_source(state_dir: Path | None, args: OpenStackArgs) -> tuple[OpenStackStormConfig, dict[str, Any], OpenStackLabState | None]:  # fmt: skip
    """The cloud an openstack storm runs on, what run.json records of it, and the lab's state
    when it is the lab. Raises one UserError when there is neither."""
    cloud, image, flavor, network = args
    if not _any_cloud(args):
        state = openstack_state.load_state(state_dir)
        if state is None:
            raise UserError("the openstack driver needs the OpenStack lab (`redline lab openstack up`) "
                            "or a cloud: --cloud (or $OS_CLOUD), --image and --flavor")  # fmt: skip
        return openstack_lab_config(state), state.describe(), state
    cloud = cloud or os.environ.get("OS_CLOUD")
    image = image or os.environ.get("REDLINE_IMAGE")
    flavor = flavor or os.environ.get("REDLINE_FLAVOR")
    if not (cloud and image and flavor):
        raise UserError("the openstack driver on a cloud needs --cloud (or $OS_CLOUD), --image (or $REDLINE_IMAGE) "
                        "and --flavor (or $REDLINE_FLAVOR); with none of them it uses the OpenStack lab")  # fmt: skip
    config = OpenStackStormConfig(cloud, image, flavor, network=network or os.environ.get("REDLINE_NETWORK"))
    return config, config.describe(), None


def storm_target(name: str, state_dir: Path | None, openstack_args: OpenStackArgs = NO_OPENSTACK_ARGS) -> dict[str, Any]:  # fmt: skip
    """What a run's run.json records about the target of `--driver name` (raises when it is not there)."""
    if name == "openstack":
        return openstack_source(state_dir, openstack_args)[1]
    return lab_target(state_dir)


def storm_monitor_groups(name: str, state_dir: Path | None,
                         openstack_args: OpenStackArgs = NO_OPENSTACK_ARGS) -> dict[str, ProcessSelector] | None:  # fmt: skip
    """The monitor's groups for a storm; None: the storm job's own (the hypervisor host's)."""
    if name == "openstack":
        state = openstack_source(state_dir, openstack_args)[2]
        return openstack_lab_monitor_groups(state) if state is not None else None
    return None


def make_storm_driver(name: str, run_id: str, plan: StormPlan, state_dir: Path | None,
                      openstack_args: OpenStackArgs = NO_OPENSTACK_ARGS) -> StormSetup:  # fmt: skip
    """`state_dir`: the lab of the driver — the hypervisor lab's (libvirt), the OpenStack lab's (openstack)."""
    if name == "libvirt":
        state = hypervisor.require_state(state_dir)
        drv = LibvirtDriver(libvirt_storm_config(state), run_id, memory_mib=plan.memory_mib)
        return drv, drv.specs(plan.count), state.describe()
    if name == "openstack":
        config, target, _ = openstack_source(state_dir, openstack_args)
        odrv, specs = open_driver(run_id, plan, config)
        return odrv, specs, target
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
