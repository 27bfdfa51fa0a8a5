"""Derived facts several checks share (CPU count, NUMA nodes, pinned guest CPUs). Pure."""

from __future__ import annotations

from lxml import etree

from redline.audit.parse import parse_cpuset, parse_ini
from redline.audit.snapshot import Snapshot


def online_cpus(s: Snapshot) -> frozenset[int]:
    v = s.value("/sys/devices/system/cpu/online")
    return parse_cpuset(v) if v else frozenset()


def cpu_count(s: Snapshot) -> int:
    return max(1, len(online_cpus(s)))


def numa_nodes(s: Snapshot) -> frozenset[int]:
    v = s.value("/sys/devices/system/node/online")
    return parse_cpuset(v) if v else frozenset()


def ini(s: Snapshot, path: str) -> dict[str, dict[str, str]] | None:
    text = s.text(path)
    return None if text is None else parse_ini(text)


def get(conf: dict[str, dict[str, str]], section: str, key: str) -> str | None:
    return conf.get(section, {}).get(key)


def is_true(value: str | None) -> bool:
    return value is not None and value.strip().lower() in {"1", "true", "yes", "on"}


def guest_pins(s: Snapshot) -> dict[str, frozenset[int]]:
    """CPUs guests are pinned to, by source: each libvirt domain XML and nova's CPU sets."""
    out: dict[str, frozenset[int]] = {}
    for path in s.glob("/etc/libvirt/qemu/*.xml") + s.glob("/run/libvirt/qemu/*.xml"):
        try:
            root = etree.fromstring((s.text(path) or "").encode())
        except etree.XMLSyntaxError:
            continue
        dom = root if root.tag == "domain" else root.find(".//domain")
        if dom is None:
            continue
        cpus: set[int] = set()
        for el in dom.iterfind("./cputune/vcpupin"):
            cpus |= parse_cpuset(el.get("cpuset", ""))
        vcpu = dom.find("./vcpu")
        if not cpus and vcpu is not None and vcpu.get("cpuset"):
            cpus |= parse_cpuset(vcpu.get("cpuset", ""))
        if cpus:
            out[path] = frozenset(cpus)
    nova = ini(s, "/etc/nova/nova.conf")
    if nova:
        for section, key in (
            ("compute", "cpu_dedicated_set"),
            ("compute", "cpu_shared_set"),
            ("DEFAULT", "vcpu_pin_set"),
        ):
            value = get(nova, section, key)
            if value:
                out[f"/etc/nova/nova.conf [{section}] {key}"] = parse_cpuset(value)
    return out


def has_kernel_view(s: Snapshot) -> bool:
    """Whether the snapshot includes /proc and /sys at all; a config-only snapshot does not, and
    then the absence of a device node says nothing about the host."""
    return s.probes.get("live") == "yes" or "/proc/mounts" in s.files or "/sys/devices/system/cpu/online" in s.files
