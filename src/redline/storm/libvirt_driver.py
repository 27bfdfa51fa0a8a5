"""Storm driver `libvirt`: transient micro-VMs on the hypervisor lab's libvirtd.

Each instance is a transient domain `redline-<run id>-<i>` (its metadata names the run),
booted straight from the lab's kernel and initramfs, with one virtio NIC whose tap device
`rl<run id>-<i>` libvirt creates and the driver at once moves into the run's own network
namespace `redline-<run id>` (bridge + dnsmasq). Destroying a transient domain removes it
and its tap; `cleanup` destroys every domain of the run and deletes the namespace.
"""

from __future__ import annotations

import socket
import threading
from pathlib import Path
from xml.sax.saxutils import escape

from redline.errors import UserError
from redline.lab.hypervisor import LabState
from redline.lab.netns import PREFIX, GuestNetwork, guest_ip, guest_mac, list_namespaces
from redline.storm.model import InstanceSpec
from redline.storm.probes import Pinger, SshOutcome, ssh_run

METADATA_NS = "https://github.com/redline/storm/1"


def domain_name(run_id: str, index: int) -> str:
    return f"{PREFIX}{run_id}-{index}"


def tap_name(run_id: str, index: int) -> str:
    return f"rl{run_id}-{index}"


def domain_xml(spec: InstanceSpec, state: LabState, memory_mib: int, serial_log: Path | None) -> str:
    img = state.image
    serial = (f"<serial type='file'><source path='{escape(str(serial_log))}'/><target port='0'/></serial>"
              if serial_log else "<serial type='null'/>")  # fmt: skip
    return f"""<domain type='{state.virt_type}'>
  <name>{escape(spec.name)}</name>
  <metadata><redline:storm xmlns:redline='{METADATA_NS}' run='{escape(spec.run_id)}' index='{spec.index}'/></metadata>
  <memory unit='MiB'>{memory_mib}</memory>
  <vcpu>1</vcpu>
  <os>
    <type arch='x86_64' machine='pc'>hvm</type>
    <kernel>{escape(str(img.kernel))}</kernel>
    <initrd>{escape(str(img.initrd))}</initrd>
    <cmdline>{escape(img.cmdline)}</cmdline>
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


def _connect(uri: str):
    import libvirt

    libvirt.registerErrorHandler(lambda *_: None, None)  # errors are raised, not printed
    try:
        return libvirt.open(uri)
    except libvirt.libvirtError as exc:
        raise UserError(f"cannot connect to {uri}: {exc.get_error_message()}") from None


class LibvirtDriver:
    name = "libvirt"

    def __init__(self, state: LabState, run_id: str, memory_mib: int | None = None, keep_logs: Path | None = None) -> None:
        self.state = state
        self.run_id = run_id
        self.memory_mib = memory_mib or state.knobs.memory_mib
        self.keep_logs = keep_logs
        self.network = GuestNetwork(PREFIX + run_id, state.state_dir / "net")
        self._local = threading.local()  # one libvirt connection per thread
        self._conn = _connect(state.uri)

    def _c(self):
        c = getattr(self._local, "conn", None)
        if c is None:
            c = self._local.conn = _connect(self.state.uri)
        return c

    def specs(self, count: int) -> list[InstanceSpec]:
        return [InstanceSpec(i, domain_name(self.run_id, i), self.run_id, guest_mac(self.run_id, i), guest_ip(i)) for i in range(count)]

    def prepare(self, specs: list[InstanceSpec]) -> list[str]:
        self.network.up({s.mac: s.address for s in specs})
        if self.keep_logs:
            self.keep_logs.mkdir(parents=True, exist_ok=True)
        return [f"virt type {self.state.virt_type} ({self.state.kvm_note})", f"guest network: namespace {self.network.name}"]

    def launch(self, spec: InstanceSpec) -> None:
        import libvirt

        log = self.keep_logs / f"{spec.name}.console.log" if self.keep_logs else None
        try:
            self._c().createXML(domain_xml(spec, self.state, self.memory_mib, log), 0)
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
            out[name] = "running" if st == libvirt.VIR_DOMAIN_RUNNING else "building" if st in (libvirt.VIR_DOMAIN_NOSTATE, libvirt.VIR_DOMAIN_PAUSED) else "error"
        return out

    def address(self, spec: InstanceSpec) -> str | None:
        return spec.address

    def pinger(self) -> Pinger | None:
        return Pinger(self.network.socket_in(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP))

    def ssh(self, spec: InstanceSpec) -> SshOutcome:
        return ssh_run(self.network.name, spec.address, self.state.image.private_key)

    def delete(self, spec: InstanceSpec) -> None:
        import libvirt

        try:
            self._c().lookupByName(spec.name).destroy()
        except libvirt.libvirtError as exc:
            if exc.get_error_code() != libvirt.VIR_ERR_NO_DOMAIN:
                raise RuntimeError(f"destroy: {exc.get_error_message()}") from None

    def cleanup(self) -> list[str]:
        return cleanup_run(self.state.uri, self.state.state_dir, self.run_id)


def cleanup_run(uri: str, state_dir: Path, run_id: str | None) -> list[str]:
    """Destroy the run's domains (every storm's, when run_id is None) and delete its namespace(s)."""
    import libvirt

    done: list[str] = []
    prefix = f"{PREFIX}{run_id}-" if run_id else PREFIX
    try:
        conn = _connect(uri)
    except UserError as exc:
        conn = None
        done.append(f"note: {exc}")
    if conn is not None:
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
    names = [PREFIX + run_id] if run_id else [n for n in list_namespaces() if n.startswith(PREFIX) and n != PREFIX + "lab"]
    for ns in names:
        net = GuestNetwork(ns, state_dir / "net")
        if net.exists() or net.dnsmasq_pid() is not None:
            net.down()
            done.append(f"removed network namespace {ns} and its dnsmasq")
    return done


def cleanup_all(uri: str, state_dir: Path) -> list[str]:
    return cleanup_run(uri, state_dir, None)
