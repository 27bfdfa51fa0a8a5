"""The hypervisor lab's knobs become the right config lines (pure; the real daemon is in test_storm_libvirt)."""

from __future__ import annotations

from pathlib import Path

import pytest

from redline.errors import UserError
from redline.lab.hypervisor import GuestImage, LabState
from redline.lab.knobs import LabKnobs
from redline.lab.libvirtd import libvirtd_conf, qemu_conf, set_conf_keys
from redline.storm.libvirt_driver import domain_xml
from redline.storm.model import InstanceSpec
from redline.targets.storm_drivers import libvirt_storm_config


def _keys(text: str) -> dict[str, str]:
    out = {}
    for line in text.splitlines():
        if "=" in line and not line.lstrip().startswith("#"):
            k, v = line.split("=", 1)
            assert k.strip() not in out, f"{k.strip()} set twice"
            out[k.strip()] = v.strip()
    return out


def test_defaults_leave_libvirt_defaults():
    k = _keys(libvirtd_conf(LabKnobs(), Path("/x/libvirtd.log")))
    assert k == {"log_outputs": '"3:file:/x/libvirtd.log"'}
    q = _keys(qemu_conf("", LabKnobs()))
    assert q == {"user": '"root"', "group": '"root"', "security_driver": '"none"'}


def test_knobs_reach_libvirtd_conf_and_qemu_conf():
    knobs = LabKnobs(max_workers=3, max_client_requests=50, cgroups=False, security_driver="apparmor")
    k = _keys(libvirtd_conf(knobs, Path("/x/l.log")))
    # min_workers follows max_workers down: libvirtd refuses min > max (default min is 5)
    assert (k["max_workers"], k["min_workers"], k["max_client_requests"]) == ("3", "3", "50")
    assert "min_workers" not in _keys(libvirtd_conf(LabKnobs(max_workers=40), Path("/x/l.log")))
    q = _keys(qemu_conf("", knobs))
    assert q["cgroup_controllers"] == "[ ]" and q["security_driver"] == '"apparmor"'


def test_switching_a_knob_back_removes_its_line_and_keeps_the_rest():
    old = '# comment = kept\nvnc_listen = "0.0.0.0"\ncgroup_controllers = [ ]\ncgroup_controllers = [ "cpu" ]\nuser = "qemu"\n'
    new = qemu_conf(old, LabKnobs(cgroups=True))
    assert "cgroup_controllers" not in _keys(new)
    assert "# comment = kept" in new and _keys(new)["vnc_listen"] == '"0.0.0.0"' and _keys(new)["user"] == '"root"'
    assert set_conf_keys(new, {"x": None}) == new  # removing what is not there changes nothing


@pytest.mark.parametrize("kw", [dict(max_workers=0), dict(max_client_requests=5000), dict(security_driver="dac"),
                                dict(memory_mib=32), dict(virt="xen")])  # fmt: skip
def test_bad_knobs_are_user_errors(kw):
    with pytest.raises(UserError):
        LabKnobs(**kw)


def test_knobs_round_trip_and_memory_reaches_the_domain_xml(tmp_path):
    knobs = LabKnobs(max_workers=8, cgroups=False, memory_mib=200, virt="qemu")
    assert LabKnobs.from_dict(knobs.to_dict()) == knobs
    image = GuestImage(tmp_path / "k", tmp_path / "i", tmp_path / "key", "ssh-ed25519 AAA", "6.1")
    state = LabState(tmp_path, "qemu:///system", "qemu", "", image, "redline-lab", {}, knobs)
    spec = InstanceSpec(0, "redline-abcd1234-0", "abcd1234", "52:54:ab:cd:00:00", "10.213.0.20")
    config = libvirt_storm_config(state)
    assert config.memory_mib == 200 and config.net_dir == tmp_path / "net"
    xml = domain_xml(spec, config, config.memory_mib, None)
    assert "<memory unit='MiB'>200</memory>" in xml and "<domain type='qemu'>" in xml
    assert state.describe()["knobs"]["memory_mib"] == 200 and state.describe()["knobs"]["cgroups"] is False


def test_bad_knobs_on_the_command_line_are_one_line(tmp_path):
    import os

    from tests.conftest import assert_one_line_error, run_redline

    base = ("lab", "hypervisor", "up", "--state-dir", str(tmp_path))
    assert "--max-workers" in assert_one_line_error(run_redline(*base, "--max-workers", "0"))
    assert "--security-driver" in assert_one_line_error(run_redline(*base, "--security-driver", "smack"))
    if os.geteuid() == 0 and not os.path.exists("/sys/kernel/security/apparmor"):
        assert "not available" in assert_one_line_error(run_redline(*base, "--security-driver", "apparmor"))
    assert not any(tmp_path.iterdir())  # refused before anything was started or written
