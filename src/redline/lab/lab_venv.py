"""Cached PyPI virtualenvs for the labs (installed once, reused by every `up`): one per lab
kind under ~/.cache/redline/<kind>/venv (REDLINE_CACHE_DIR overrides the root)."""

from __future__ import annotations

import os
import subprocess
import venv
from collections.abc import Callable
from pathlib import Path

from redline.errors import UserError


def cache_root() -> Path:
    base = os.environ.get("REDLINE_CACHE_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "redline")
    return Path(base)


def venv_dir(kind: str) -> Path:
    return cache_root() / kind / "venv"


def _installed(vdir: Path, packages: tuple[str, ...]) -> bool:
    py = vdir / "bin" / "python"
    if not py.exists():
        return False
    # A pin (name==version) must match; a bare name only be there.
    probe = (
        "import importlib.metadata as m, sys\n"
        "for p in sys.argv[1:]:\n"
        "    name, _, want = p.partition('==')\n"
        "    have = m.version(name)\n"
        "    assert not want or have == want, p\n"
    )
    return subprocess.run([str(py), "-c", probe, *packages], capture_output=True).returncode == 0


def _installer(vdir: Path) -> list[str]:
    """uv when redline's environment has it (a dependency: it installs the OpenStack lab's ~150
    packages in ~25 s where pip takes ~3 min here), else the venv's own pip."""
    try:
        from uv import find_uv_bin

        # Bytecode at install time: else every service compiles it on its first start, all at once.
        return [find_uv_bin(), "pip", "install", "--compile-bytecode", "--python", str(vdir / "bin" / "python")]
    except (ImportError, FileNotFoundError):
        return [str(vdir / "bin" / "pip"), "install", "--progress-bar", "off"]


def ensure(kind: str, packages: tuple[str, ...], on_line: Callable[[str], None] | None = None) -> Path:
    """The venv of `kind` with `packages` installed; installs what is missing (pip's output
    lines go to `on_line`, for a progress display)."""
    vdir = venv_dir(kind)
    if _installed(vdir, packages):
        return vdir
    try:
        if not (vdir / "bin" / "python").exists():
            vdir.parent.mkdir(parents=True, exist_ok=True)
            venv.EnvBuilder(with_pip=True).create(vdir)
    except OSError as exc:
        raise UserError(f"cannot create the {kind} virtualenv in {vdir}: {exc.strerror or exc}") from None
    cmd = [*_installer(vdir), *packages]
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
