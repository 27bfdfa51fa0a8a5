"""The libvirt Python bindings, loaded only by what talks to libvirtd.

libvirt-python builds against libvirt's C headers, so it is the extra `redline[libvirt]`:
`pip install redline` must work on a host without them, and `run`, `capacity` and `audit`
never need it. What does (the hypervisor lab, the libvirt storm driver, cleaning up Nova's
leftover domains) asks here and gets one line that says how to install it.
"""

from __future__ import annotations

from types import ModuleType

from redline.errors import UserError

INSTALL_HINT = "pip install 'redline[libvirt]' (it builds against libvirt's headers: apt-get install libvirt-dev)"


def load_libvirt(what: str) -> ModuleType:
    """The `libvirt` module, or a UserError naming `what` needs it and how to install it."""
    try:
        import libvirt
    except ImportError:
        raise UserError(f"{what} needs libvirt-python: {INSTALL_HINT}") from None
    return libvirt
