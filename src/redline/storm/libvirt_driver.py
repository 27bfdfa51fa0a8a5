"""Storm driver `libvirt`: transient micro-VMs on a libvirtd (the hypervisor lab's).

Each instance is a transient domain `redline-<run id>-<i>` (its metadata names the run),
booted straight from a kernel and initramfs, with one virtio NIC whose tap device
`rl<run id>-<i>` libvirt creates and the driver at once moves into the run's own guest
network `redline-<run id>` (in the lab: a network namespace with a bridge and dnsmasq).
Destroying a transient domain removes it and its tap; `cleanup` destroys every domain of
the run and removes its network.

The driver knows the hypervisor only through a LibvirtStormConfig, which the composition
layer (redline.targets) builds from the lab's state: storm/ never imports the lab.
"""

from __future__ import annotations

import socket
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol
from xml.sax.saxutils import escape

from redline.errors import UserError
from redline.libvirt_bindings import load_libvirt
from redline.storm.model import InstanceSpec
from redline.storm.probes import Pinger, SshOutcome, ssh_run

if TYPE_CHECKING:
    import libvirt

METADATA_NS = "https://github.com/redline/storm/1"
PREFIX = "redline-"  # of every storm's domains and networks; `redline-lab` is the lab's own


class RunNetwork(Protocol):
    """The guest network of one run; reached only through sockets and commands run inside it."""

    @property
    def name(self) -> str:
        """The network namespace guests are reached from (`ip netns exec` for SSH)."""
        ...

    def guest_address(self, index: int) -> str: ...

    def up(self, hosts: dict[str, str]) -> object:
        """Create the network; `hosts` maps MAC → the fixed address DHCP gives it."""
        ...

    def adopt_tap(self, tap: str) -> None:
        """Plug a guest's tap device (just created by libvirt) into the network."""
        ...

    def socket_in(self, family: int, type_: int, proto: int = 0) -> socket.socket: ...

    def remove(self) -> bool:
        """Remove whatever of the network is left; whether anything was."""
        ...


class NetworkFactory(Protocol):
    def __call__(self, name: str, state_dir: Path) -> RunNetwork:
        """The network `name`, keeping its files (pid files, leases) under `state_dir`; not created yet."""
        ...


@dataclass(frozen=True)
class LibvirtStormConfig:
    """Everything the driver needs of the hypervisor it runs on."""

    uri: str
    virt_type: str  # "kvm" or "qemu" (TCG)
    kvm_note: str  # why that virtualisation type
    kernel: Path
    initrd: Path
    cmdline: str
    private_key: Path  # logs in as root on every guest
    memory_mib: int  # guest memory unless a storm asks for another
    net_dir: Path  # where the runs' networks keep their files
    network: NetworkFactory


def domain_name(run_id: str, index: int) -> str:
    return f"{PREFIX}{run_id}-{index}"


def tap_name(run_id: str, index: int) -> str:
    return f"rl{run_id}-{index}"


def network_name(run_id: str) -> str:
    return PREFIX + run_id


def guest_mac(run_id: str, index: int) -> str:
    """A locally administered MAC unique within a run (52:54:00 is QEMU's prefix)."""
    h = int(run_id[:4], 16) if all(c in "0123456789abcdef" for c in run_id[:4]) else 0
    return f"52:54:{h >> 8:02x}:{h & 0xFF:02x}:{index >> 8:02x}:{index & 0xFF:02x}"


def domain_xml(spec: InstanceSpec, config: LibvirtStormConfig, memory_mib: int, serial_log: Path | None) -> str:
    serial = (f"<serial type='file'><source path='{escape(str(serial_log))}'/><target port='0'/></serial>"
              if serial_log else "<serial type='null'/>")  # fmt: skip
    return f"""<domain type='{config.virt_type}'>
  <name>{escape(spec.name)}</name>
  <metadata><redline:storm xmlns:redline='{METADATA_NS}' run='{escape(spec.run_id)}' index='{spec.index}'/></metadata>
  <memory unit='MiB'>{memory_mib}</memory>
  <vcpu>1</vcpu>
  <os>
    <type arch='x86_64' machine='pc'>hvm</type>
    <kernel>{escape(str(config.kernel))}</kernel>
    <initrd>{escape(str(config.initrd))}</initrd>
    <cmdline>{escape(config.cmdline)}</cmdline>
  </os>
  <features><acpi/></features>
  <on_poweroff>destroy</on_poweroff><on_reboot>destroy</on_reboot><on_crash>destroy</on_crash>
  <devices>
    <interface type='ethernet'>
      <mac address='{spec.mac}'/>
      <target dev='{tap_name(spec.run_id, spec.index)}'/>
      <model type='virtio'/>
    </interface>
    {serial}
    <memballoon model='none'/>
  </devices>
</domain>
"""


def _connect(uri: str) -> libvirt.virConnect:
    libvirt = load_libvirt("talking to libvirtd (the hypervisor lab, the libvirt storm driver)")
    libvirt.registerErrorHandler(lambda *_: None, None)  # errors are raised, not printed
    try:
        return libvirt.open(uri)
    except libvirt.libvirtError as exc:
        raise UserError(f"cannot connect to {uri}: {exc.get_error_message()}") from None


class LibvirtDriver:
    name = "libvirt"

    def __init__(
        self, config: LibvirtStormConfig, run_id: str, memory_mib: int | None = None, keep_logs: Path | None = None
    ) -> None:
        self.config = config
        self.run_id = run_id
        self.memory_mib = memory_mib or config.memory_mib
        self.keep_logs = keep_logs
        self.network = config.network(network_name(run_id), config.net_dir)
        self._local = threading.local()  # one libvirt connection per thread
        self._conn = _connect(config.uri)

    def _c(self) -> libvirt.virConnect:
        c = getattr(self._local, "conn", None)
        if c is None:
            c = self._local.conn = _connect(self.config.uri)
        return c

    def specs(self, count: int) -> list[InstanceSpec]:
        return [InstanceSpec(i, domain_name(self.run_id, i), self.run_id, guest_mac(self.run_id, i), self.network.guest_address(i))
                for i in range(count)]  # fmt: skip

    def prepare(self, specs: list[InstanceSpec]) -> list[str]:
        self.network.up({s.mac: s.address for s in specs})
        if self.keep_logs:
            self.keep_logs.mkdir(parents=True, exist_ok=True)
        return [
            f"virt type {self.config.virt_type} ({self.config.kvm_note})",
            f"guest network: namespace {self.network.name}",
        ]

    def launch(self, spec: InstanceSpec) -> None:
        import libvirt

        log = self.keep_logs / f"{spec.name}.console.log" if self.keep_logs else None
        try:
            self._c().createXML(domain_xml(spec, self.config, self.memory_mib, log), 0)
        except libvirt.libvirtError as exc:
            raise RuntimeError(f"createXML: {exc.get_error_message()}") from None
        self.network.adopt_tap(tap_name(spec.run_id, spec.index))

    def poll(self) -> dict[str, str]:
        import libvirt

        out: dict[str, str] = {}
        prefix = f"{PREFIX}{self.run_id}-"
        for dom in self._conn.listAllDomains(0):
            try:
                name = dom.name()
                if not name.startswith(prefix):
                    continue
                st = dom.state()[0]
            except libvirt.libvirtError:
                continue  # vanished between the list and the look
            out[name] = (
                "running"
                if st == libvirt.VIR_DOMAIN_RUNNING
                else "building"
                if st in (libvirt.VIR_DOMAIN_NOSTATE, libvirt.VIR_DOMAIN_PAUSED)
                else "error"
            )
        return out

    def address(self, spec: InstanceSpec) -> str | None:
        return spec.address

    def pinger(self) -> Pinger | None:
        return Pinger(self.network.socket_in(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP))

    def ssh(self, spec: InstanceSpec) -> SshOutcome:
        return ssh_run(self.network.name, spec.address, self.config.private_key)

    def delete(self, spec: InstanceSpec) -> None:
        import libvirt

        try:
            self._c().lookupByName(spec.name).destroy()
        except libvirt.libvirtError as exc:
            if exc.get_error_code() != libvirt.VIR_ERR_NO_DOMAIN:
                raise RuntimeError(f"destroy: {exc.get_error_message()}") from None

    def cleanup(self) -> list[str]:
        done = destroy_domains(self.config.uri, self.run_id)
        if self.network.remove():
            done.append(f"removed network namespace {self.network.name} and its dnsmasq")
        return done


def destroy_domains(uri: str, run_id: str | None) -> list[str]:
    """Destroy (and undefine) the run's domains, every storm's when run_id is None; return
    what was removed. Never raises: an unreachable libvirtd (or missing bindings) is a note."""
    done: list[str] = []
    prefix = f"{PREFIX}{run_id}-" if run_id else PREFIX
    try:
        conn = _connect(uri)
    except UserError as exc:
        return [f"note: {exc}"]
    import libvirt  # present: _connect loaded it

    for dom in conn.listAllDomains(0):
        try:
            name = dom.name()
            if not name.startswith(prefix) or name == PREFIX + "lab":
                continue
            persistent = dom.isPersistent()  # asked first: a destroyed transient domain no longer exists
            if dom.isActive():
                dom.destroy()
            if persistent:
                dom.undefine()
            done.append(f"removed domain {name}")
        except libvirt.libvirtError:
            continue
    conn.close()
    return done
