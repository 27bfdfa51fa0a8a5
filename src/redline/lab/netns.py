"""A guest network that lives entirely inside a network namespace the lab creates.

`ip netns add redline-<id>`, a bridge `rlbr0` with the gateway address, and dnsmasq
serving DHCP on it, inside the namespace. Guests' tap devices are created by libvirt in
the host namespace and moved in (`adopt_tap`) at once, so nothing of the guest network is
reachable from the host namespace: guests are reached only from inside (`ip netns exec`,
or sockets opened with `socket_in`).
"""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path

from redline import procs
from redline.errors import UserError

BRIDGE = "rlbr0"
SUBNET = "10.213"  # a /16 inside the namespace: gateway .0.1, guest i at 10.213.(i//200).(i%200+20)
GATEWAY = f"{SUBNET}.0.1"
MAX_GUESTS = 2000
_CLONE_NEWNET = 0x40000000


def guest_ip(index: int) -> str:
    if not 0 <= index < MAX_GUESTS:
        raise ValueError(f"guest index {index} out of range")
    return f"{SUBNET}.{index // 200}.{index % 200 + 20}"


def _ip(*args: str, timeout: float = 15) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, timeout=timeout)


def _check(r: subprocess.CompletedProcess[str], what: str) -> None:
    if r.returncode != 0:
        raise UserError(f"{what} failed: {(r.stderr or r.stdout).strip() or r.returncode}")


def list_namespaces() -> list[str]:
    r = _ip("netns", "list")
    return [line.split()[0] for line in r.stdout.splitlines() if line.strip()]


@dataclass(frozen=True)
class GuestNetwork:
    """The namespace `name`, its bridge and its dnsmasq (pid file and leases under `state_dir`)."""

    name: str
    state_dir: Path

    @property
    def pidfile(self) -> Path:
        return self.state_dir / f"{self.name}.dnsmasq.pid"

    @property
    def leases(self) -> Path:
        return self.state_dir / f"{self.name}.leases"

    @property
    def hostsfile(self) -> Path:
        return self.state_dir / f"{self.name}.hosts"

    def exists(self) -> bool:
        return self.name in list_namespaces()

    def guest_address(self, index: int) -> str:
        """The fixed address of guest `index` (given to it by DHCP once `up(hosts)` says so)."""
        return guest_ip(index)

    def up(self, hosts: dict[str, str] | None = None) -> GuestNetwork:
        """Create the namespace, bridge and DHCP server; `hosts` maps MAC → fixed address."""
        if os.geteuid() != 0:
            raise UserError("creating a network namespace needs root")
        self.state_dir.mkdir(parents=True, exist_ok=True)
        if not self.exists():
            _check(_ip("netns", "add", self.name), f"ip netns add {self.name}")
        try:
            ns = ("-n", self.name)
            _ip(*ns, "link", "set", "lo", "up")
            if _ip(*ns, "link", "show", BRIDGE).returncode != 0:
                _check(
                    _ip(*ns, "link", "add", BRIDGE, "type", "bridge", "forward_delay", "0", "stp_state", "0"),
                    "creating the bridge",
                )
                _check(_ip(*ns, "addr", "add", f"{GATEWAY}/16", "dev", BRIDGE), "addressing the bridge")
            _check(_ip(*ns, "link", "set", BRIDGE, "up"), "bringing the bridge up")
            self.set_hosts(hosts or {})
            if self.dnsmasq_pid() is None:
                self._start_dnsmasq()
        except BaseException:
            self.down()
            raise
        return self

    def set_hosts(self, hosts: dict[str, str]) -> None:
        self.hostsfile.write_text("".join(f"{mac},{ip}\n" for mac, ip in hosts.items()))
        pid = self.dnsmasq_pid()
        if pid is not None:
            os.kill(pid, signal.SIGHUP)  # re-reads --dhcp-hostsfile

    def _start_dnsmasq(self) -> None:
        self.pidfile.unlink(missing_ok=True)
        self.leases.unlink(missing_ok=True)
        cmd = [
            "ip", "netns", "exec", self.name, "dnsmasq",
            "--conf-file=/dev/null", "--port=0", "--bind-interfaces", f"--interface={BRIDGE}",
            "--except-interface=lo", f"--listen-address={GATEWAY}",
            f"--dhcp-range={SUBNET}.0.20,{SUBNET}.255.250,255.255.0.0,1h",
            f"--dhcp-hostsfile={self.hostsfile}", f"--dhcp-leasefile={self.leases}",
            "--dhcp-authoritative", "--dhcp-rapid-commit", "--no-ping", "--dhcp-option=option:router",
            f"--pid-file={self.pidfile}", "--quiet-dhcp",
            "--user=root", "--group=root",
        ]  # fmt: skip
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=15)
        if r.returncode != 0:
            raise UserError(f"dnsmasq did not start in {self.name}: {(r.stderr or r.stdout).strip()}")
        if procs.wait_until(self.dnsmasq_pid, 5) is None:
            raise UserError(f"dnsmasq in {self.name} wrote no pid file")

    def dnsmasq_pid(self) -> int | None:
        try:
            pid = int(self.pidfile.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            pids = self._dnsmasq_by_cmdline()
            return pids[0] if pids else None
        return pid if procs.running_as(pid, "dnsmasq") else None

    def _dnsmasq_by_cmdline(self) -> list[int]:
        """dnsmasq processes serving this namespace, found by their pid-file argument.

        For a state directory that was lost or given differently: the pid-file name
        carries the namespace's name, whatever directory it is in.
        """
        import psutil

        tail = f"/{self.name}.dnsmasq.pid"
        out = []
        for p in psutil.process_iter(["name", "cmdline"]):
            if p.info["name"] == "dnsmasq" and any(
                a.startswith("--pid-file=") and a.endswith(tail) for a in p.info["cmdline"] or ()
            ):
                out.append(p.pid)
        return out

    def adopt_tap(self, tap: str) -> None:
        """Move a tap device from the host namespace into this one and plug it into the bridge."""
        _check(_ip("link", "set", "dev", tap, "netns", self.name), f"moving {tap} into {self.name}")
        _check(_ip("-n", self.name, "link", "set", tap, "master", BRIDGE, "up"), f"plugging {tap} into {BRIDGE}")

    def taps(self) -> list[str]:
        """Tap devices currently inside the namespace."""
        if not self.exists():
            return []
        r = _ip("-n", self.name, "-o", "link", "show", "type", "tun")
        return [line.split(":")[1].strip().split("@")[0] for line in r.stdout.splitlines() if ":" in line]

    def down(self) -> None:
        """Stop dnsmasq and delete the namespace (its bridge and any taps still in it go too)."""
        pids = set(self._dnsmasq_by_cmdline())
        pid = self.dnsmasq_pid()
        if pid is not None:
            pids.add(pid)
        procs.stop(*pids, timeout_s=5)
        for tap in self.taps():
            _ip("-n", self.name, "link", "del", tap)
        if self.exists():
            _ip("netns", "del", self.name)
        for p in (self.pidfile, self.leases, self.hostsfile):
            p.unlink(missing_ok=True)

    def remove(self) -> bool:
        """`down()` if anything of the network is left (the namespace or its dnsmasq); whether it was."""
        if not self.exists() and self.dnsmasq_pid() is None:
            return False
        self.down()
        return True

    def socket_in(self, family: int, type_: int, proto: int = 0) -> socket.socket:
        """A socket opened inside the namespace (usable from any thread afterwards)."""
        return socket_in_netns(self.name, family, type_, proto)


def socket_in_netns(name: str, family: int, type_: int, proto: int = 0) -> socket.socket:
    """Open a socket in network namespace `name` from a throwaway thread that joins it.

    setns(2) changes only the calling thread's namespace; a socket keeps the namespace it
    was created in, so the caller's own threads never leave the host namespace.
    """
    result: list[socket.socket | BaseException] = []

    def worker() -> None:
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            fd = os.open(f"/var/run/netns/{name}", os.O_RDONLY)
            try:
                if libc.setns(fd, _CLONE_NEWNET) != 0:
                    err = ctypes.get_errno()
                    raise OSError(err, os.strerror(err))
            finally:
                os.close(fd)
            result.append(socket.socket(family, type_, proto))
        except BaseException as exc:  # noqa: BLE001 — handed to the caller
            result.append(exc)

    t = threading.Thread(target=worker, name=f"netns-{name}", daemon=True)
    t.start()
    t.join()
    out = result[0]
    if isinstance(out, BaseException):
        raise UserError(f"cannot open a socket in {name}: {out}")
    return out
