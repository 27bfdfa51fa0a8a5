"""Keystone from PyPI in a cached virtualenv (installed once, reused by every `up`)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

from redline.lab import lab_venv

# What each option needs besides keystone itself.
# pyOpenSSL pinned: pysaml2 (a keystone dependency) wants pyOpenSSL<24.3, and the resolver
# otherwise pairs the newest cryptography with pyOpenSSL 22.0.0 (no upper bound on it), which
# does not import ("module 'lib' has no attribute 'GEN_EMAIL'"): keystone-manage then fails
# with "Backend class not found in module oslo_service.backend._eventlet".
BASE = ("keystone", "pymemcache", "pyOpenSSL==24.2.1")
EXTRAS = {"uwsgi": ("uwsgi",), "gunicorn": ("gunicorn",), "postgresql": ("psycopg2-binary",), "mariadb": ("PyMySQL",)}
EXTRAS |= {"apache": ("mod_wsgi",), "nginx-uwsgi": ("uwsgi",)}  # mod_wsgi builds against Debian's apache2-dev


def venv_dir() -> Path:
    return lab_venv.venv_dir("keystone")


def ensure(wanted: tuple[str, ...], on_line: Callable[[str], None] | None = None) -> Path:
    """The venv with keystone and `wanted` extras installed; installs what is missing
    (pip's output lines go to `on_line`, for a progress display)."""
    return lab_venv.ensure("keystone", BASE + tuple(p for w in wanted for p in EXTRAS.get(w, ())), on_line)


def python_of(vdir: Path) -> str:
    return str(vdir / "bin" / "python")


if __name__ == "__main__":  # pragma: no cover - manual use
    print(ensure(tuple(sys.argv[1:]), print))
