"""Keystone from PyPI in a cached virtualenv (installed once, reused by every `up`)."""

from __future__ import annotations

import os
import subprocess
import sys
import venv
from collections.abc import Callable
from pathlib import Path

from redline.errors import UserError

# What each option needs besides keystone itself.
BASE = ("keystone", "pymemcache")
EXTRAS = {"uwsgi": ("uwsgi",), "gunicorn": ("gunicorn",), "postgresql": ("psycopg2-binary",), "mariadb": ("PyMySQL",)}
EXTRAS |= {"apache": ("mod_wsgi",), "nginx-uwsgi": ("uwsgi",)}  # mod_wsgi builds against Debian's apache2-dev


def cache_root() -> Path:
    base = os.environ.get("REDLINE_CACHE_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "redline")
    return Path(base)


def venv_dir() -> Path:
    return cache_root() / "keystone" / "venv"


def _installed(vdir: Path, packages: tuple[str, ...]) -> bool:
    py = vdir / "bin" / "python"
    if not py.exists():
        return False
    probe = "import importlib.metadata as m, sys; [m.version(p) for p in sys.argv[1:]]"
    return subprocess.run([str(py), "-c", probe, *packages], capture_output=True).returncode == 0


def ensure(wanted: tuple[str, ...], on_line: Callable[[str], None] | None = None) -> Path:
    """The venv with keystone and `wanted` extras installed; installs what is missing
    (pip's output lines go to `on_line`, for a progress display)."""
    vdir = venv_dir()
    packages = BASE + tuple(p for w in wanted for p in EXTRAS.get(w, ()))
    if _installed(vdir, packages):
        return vdir
    try:
        if not (vdir / "bin" / "python").exists():
            vdir.parent.mkdir(parents=True, exist_ok=True)
            venv.EnvBuilder(with_pip=True).create(vdir)
    except OSError as exc:
        raise UserError(f"cannot create the Keystone virtualenv in {vdir}: {exc.strerror or exc}") from None
    cmd = [str(vdir / "bin" / "pip"), "install", "--progress-bar", "off", *packages]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, stdin=subprocess.DEVNULL)
    tail: list[str] = []
    assert proc.stdout is not None
    for line in proc.stdout:
        line = line.rstrip()
        if line and not line.startswith("WARNING: Location"):
            tail = ([*tail, line])[-5:]
            if on_line is not None:
                on_line(line)
    if proc.wait() != 0:
        raise UserError(
            f"pip could not install {' '.join(packages)} into {vdir}: {tail[-1] if tail else proc.returncode}"
        )
    return vdir


def python_of(vdir: Path) -> str:
    return str(vdir / "bin" / "python")


if __name__ == "__main__":  # pragma: no cover - manual use
    print(ensure(tuple(sys.argv[1:]), print))
