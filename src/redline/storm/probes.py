"""Guest reachability checks shared by all instances of a storm: one ICMP socket, SSH logins."""

from __future__ import annotations

import contextlib
import os
import select
import socket
import struct
import subprocess
from dataclasses import dataclass
from pathlib import Path


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    words: tuple[int, ...] = struct.unpack(f"!{len(data) // 2}H", data)
    s = sum(words)
    s = (s >> 16) + (s & 0xFFFF)
    s += s >> 16
    return ~s & 0xFFFF


class Pinger:
    """Echo requests to many addresses over one raw ICMP socket; `answered()` drains replies.

    The socket is handed in (opened inside the guests' namespace by the driver), so the
    pinger itself never chooses where packets go beyond the addresses it is given.
    """

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.sock.setblocking(False)
        self.ident = os.getpid() & 0xFFFF
        self.seq = 0

    def send(self, address: str) -> None:
        self.seq = (self.seq + 1) & 0xFFFF
        header = struct.pack("!BBHHH", 8, 0, 0, self.ident, self.seq)
        payload = b"redline"
        packet = struct.pack("!BBHHH", 8, 0, _checksum(header + payload), self.ident, self.seq) + payload
        with contextlib.suppress(OSError):  # no route / ARP not resolved yet: the next poll tries again
            self.sock.sendto(packet, (address, 0))

    def answered(self) -> set[str]:
        out: set[str] = set()
        while select.select([self.sock], [], [], 0)[0]:
            try:
                data, (addr, _) = self.sock.recvfrom(2048)
            except (BlockingIOError, InterruptedError):
                break
            ihl = (data[0] & 0x0F) * 4
            if len(data) >= ihl + 8:
                typ, _, _, ident, _ = struct.unpack("!BBHHH", data[ihl : ihl + 8])
                if typ == 0 and ident == self.ident:
                    out.add(addr)
        return out

    def close(self) -> None:
        self.sock.close()


@dataclass(frozen=True)
class SshOutcome:
    ok: bool
    output: str


def ssh_run(
    netns: str | None, address: str, key: Path, command: str = "cat /proc/uptime", timeout_s: float = 8.0
) -> SshOutcome:
    """Log in as root with `key` and run `command` (OpenSSH client, inside `netns` if given)."""
    cmd = ["ssh", "-i", str(key), "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no",
           "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR", "-o", "ConnectTimeout=2",
           "-o", "ServerAliveInterval=2", f"root@{address}", command]  # fmt: skip
    if netns:
        cmd = ["ip", "netns", "exec", netns, *cmd]
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        return SshOutcome(False, "timed out")
    return SshOutcome(r.returncode == 0, (r.stdout if r.returncode == 0 else r.stderr).strip()[-200:])
