"""Shared fixtures: real targets started on 127.0.0.1, pinned away from the generator."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from redline.lab.process import LabProcess, start_calibrated

CPUS = sorted(os.sched_getaffinity(0))
# With two or more CPUs the generator gets the first and the target the last.
GEN_CPUS = (CPUS[0],)
TARGET_CPUS = (CPUS[-1],) if len(CPUS) > 1 else None


@pytest.fixture
def calibrated():
    """Factory: start a calibrated target; every one started is stopped at teardown."""
    started: list[LabProcess] = []

    def start(**kw) -> LabProcess:
        kw.setdefault("cpus", TARGET_CPUS)
        lab = start_calibrated(**kw)
        started.append(lab)
        return lab

    yield start
    for lab in started:
        lab.stop()


def redline_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "redline", *args]


def run_redline(*args: str, timeout: float = 120, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        redline_cmd(*args),
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        cwd=cwd,
    )


def assert_one_line_error(proc: subprocess.CompletedProcess) -> str:
    """A user error: non-zero exit, exactly one line on stderr, no traceback."""
    assert proc.returncode != 0, proc
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = [l for l in proc.stderr.splitlines() if l.strip()]
    errors = [l for l in lines if l.startswith("redline: error:")]
    assert len(errors) == 1, proc.stderr
    return errors[0]
