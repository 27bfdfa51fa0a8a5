"""Libvirt domains that a Nova compute on this host left behind for a storm's servers.

When nova-conductor or RabbitMQ dies mid-storm, a server can be deleted from Nova's
database (or stay there, stuck) while its domain keeps running on the compute host's
libvirtd. In the OpenStack lab that host is this machine, so the storm's cleanup removes
those domains too. Nova names a domain `instance-XXXXXXXX` (OS-EXT-SRV-ATTR:instance_name,
shown to admins) and gives it the server's id as its UUID: a domain is removed only when
its UUID is the id of one of this run's servers, whichever way it was found, so no other
domain on the host is ever touched.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from redline.errors import UserError
from redline.libvirt_bindings import load_libvirt

if TYPE_CHECKING:
    import libvirt


@dataclass(frozen=True)
class NovaServer:
    """One server of a storm run, as the Compute API showed it."""

    name: str  # redline-<run id>-<i>
    server_id: str  # = its libvirt domain's UUID
    instance_name: str | None = None  # instance-0000004a (admin only), the domain's name


# What the libvirt side needs: a connection (a libvirt.virConnect, or a fake in unit tests).
Connect = Callable[[str], Any]


def _connect(uri: str) -> libvirt.virConnect:
    from redline.storm.libvirt_driver import _connect as connect

    return connect(uri)


def _find(conn: Any, server: NovaServer) -> Any | None:
    import libvirt

    if server.instance_name:
        try:
            dom = conn.lookupByName(server.instance_name)
            if dom.UUIDString() == server.server_id:
                return dom
        except libvirt.libvirtError:
            pass
    try:
        return conn.lookupByUUIDString(server.server_id)
    except libvirt.libvirtError:
        return None


def _undefine(dom: Any) -> None:
    import libvirt

    # Nova's domains are persistent and may carry managed-save images and NVRAM.
    flags = (
        libvirt.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE
        | libvirt.VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA
        | libvirt.VIR_DOMAIN_UNDEFINE_NVRAM
    )
    try:
        dom.undefineFlags(flags)
    except libvirt.libvirtError:
        dom.undefine()


def remove_nova_domains(uri: str, servers: Sequence[NovaServer], connect: Connect = _connect) -> list[str]:
    """Destroy and undefine the domains of `servers` still on the libvirtd at `uri`; one line
    per domain removed. Never raises: an unreachable libvirtd, missing bindings or a failed
    removal is a line."""
    if not servers:
        return []
    try:
        libvirt = load_libvirt("removing the domains nova-compute left behind")
    except UserError as exc:
        return [f"note: leftover domains not checked: {exc}"]
    try:
        conn = connect(uri)
    except UserError as exc:
        return [f"note: leftover domains not checked: {exc}"]
    done: list[str] = []
    try:
        for s in servers:
            dom = _find(conn, s)
            if dom is None:
                continue
            try:
                name = dom.name()
                persistent = dom.isPersistent()  # asked first: a destroyed transient domain no longer exists
                if dom.isActive():
                    dom.destroy()
                if persistent:
                    _undefine(dom)
                done.append(f"removed domain {name} (server {s.name}), left behind by nova-compute")
            except libvirt.libvirtError as exc:
                done.append(f"could not remove the domain of server {s.name}: {exc.get_error_message()}")
    finally:
        with contextlib.suppress(libvirt.libvirtError):
            conn.close()
    return done
