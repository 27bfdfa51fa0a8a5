"""`pip install redline` without libvirt's headers: a fresh venv, the project without extras.

libvirt-python builds against libvirt's C headers, so it is the extra `redline[libvirt]`.
This installs the project as a user would (uv, the way the labs install their venvs; its
cache keeps the second run to seconds), then checks that the bindings are absent, that
`redline run` measures the embedded target, and that what needs the bindings says so in
one line.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import GEN_CPUS, assert_one_line_error

PROJECT = Path(__file__).resolve().parent.parent
UV = Path(sys.executable).with_name("uv")

pytestmark = pytest.mark.slow


def _run(*args: str | Path, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(a) for a in args], capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL
    )


@pytest.fixture(scope="module")
def venv(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("pkg") / "venv"
    made = _run(UV, "venv", "--quiet", "--python", sys.executable, d)
    assert made.returncode == 0, made.stderr
    installed = _run(UV, "pip", "install", "--quiet", "--python", d / "bin" / "python", PROJECT, timeout=600)
    assert installed.returncode == 0, installed.stderr
    return d


def test_installed_without_the_libvirt_bindings(venv):
    listed = _run(UV, "pip", "list", "--format", "json", "--python", venv / "bin" / "python")
    names = {p["name"].lower() for p in json.loads(listed.stdout)}
    assert "redline" in names and "openstacksdk" in names
    assert "libvirt-python" not in names
    probe = _run(venv / "bin" / "python", "-c", "import libvirt")
    assert probe.returncode != 0 and "No module named 'libvirt'" in probe.stderr


def test_run_works_without_libvirt(venv, calibrated, tmp_path):
    lab = calibrated(servers=4, service_ms=2)
    redline = venv / "bin" / "redline"
    assert _run(redline, "--help").returncode == 0
    done = _run(redline, "run", "--url", lab.url + "/", "--rate", "50", "--duration", "1", "--cpus", str(GEN_CPUS[0]), "--results", tmp_path, "--json")  # fmt: skip
    assert done.returncode == 0, done.stderr
    run_dir = Path(json.loads(done.stdout)["run_dir"])
    assert json.loads((run_dir / "run.json").read_text())["status"] == "complete"
    assert any((run_dir / "samples").glob("w*.npz"))  # the rows, written in parts as the run went


def test_what_needs_libvirt_says_how_to_install_it(venv, tmp_path):
    proc = _run(venv / "bin" / "redline", "lab", "hypervisor", "up", "--state-dir", tmp_path)
    line = assert_one_line_error(proc)
    assert "the hypervisor lab needs libvirt-python: pip install 'redline[libvirt]'" in line
    assert "apt-get install libvirt-dev" in line
    # Cleanup never fails for want of the bindings: it says what it could not check.
    cleanup = _run(venv / "bin" / "redline", "storm", "cleanup", "0e0e0e0e", "--state-dir", tmp_path, "--json")
    assert cleanup.returncode == 0, cleanup.stderr
    assert any("needs libvirt-python" in d for d in json.loads(cleanup.stdout)["done"])
