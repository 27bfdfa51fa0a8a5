"""redline.targets.storm_drivers: composing a storm driver from the lab's state (no libvirtd needed)."""

from __future__ import annotations

import pytest

from redline.errors import UserError
from redline.lab.hypervisor import GuestImage, LabState
from redline.lab.knobs import LabKnobs
from redline.lab.netns import GuestNetwork
from redline.storm.model import StormPlan
from redline.targets.storm_drivers import lab_memory, libvirt_storm_config, make_storm_driver


def test_the_lab_state_becomes_the_drivers_config(tmp_path):
    image = GuestImage(tmp_path / "vmlinuz", tmp_path / "initrd", tmp_path / "key", "ssh-ed25519 AAA", "6.1")
    state = LabState(
        tmp_path, "qemu:///system", "qemu", "no /dev/kvm: TCG", image, "redline-lab", {}, LabKnobs(memory_mib=144)
    )
    c = libvirt_storm_config(state)
    assert (c.uri, c.virt_type, c.kvm_note, c.memory_mib) == ("qemu:///system", "qemu", "no /dev/kvm: TCG", 144)
    assert (c.kernel, c.initrd, c.cmdline, c.private_key) == (
        image.kernel,
        image.initrd,
        image.cmdline,
        image.private_key,
    )
    net = c.network("redline-abcd1234", c.net_dir)
    assert net == GuestNetwork("redline-abcd1234", tmp_path / "net") and net.guest_address(201) == "10.213.1.21"


def test_unknown_driver_and_missing_lab_are_user_errors(tmp_path):
    with pytest.raises(UserError, match="--driver must be libvirt or openstack"):
        make_storm_driver("xen", "abcd1234", StormPlan(1, 1), tmp_path)
    with pytest.raises(UserError, match="lab hypervisor up"):
        lab_memory("libvirt", tmp_path)
    assert lab_memory("openstack", tmp_path) == 112
