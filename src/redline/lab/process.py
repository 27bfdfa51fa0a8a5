"""Run a lab target as a child process and know its URL (for tests, demos and the default target)."""

from __future__ import annotations

import os
import re
import select
import subprocess
import sys
from dataclasses import dataclass

from redline import procs
from redline.errors import UserError

_URL = re.compile(r"(https?://[^\s/]+)/")


@dataclass
class LabProcess:
    """A target started by redline: stopped (and waited for) on `stop()` or context exit."""

    proc: subprocess.Popen[str]
    url: str
    banner: str

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stop(self, timeout: float = 5.0) -> None:
        if self.proc.poll() is None:
            # SIGTERM, not SIGINT: a child of a background job of a non-interactive shell
            # inherits SIGINT ignored, and would only stop at the SIGKILL after `timeout`.
            procs.stop(self.proc.pid, timeout_s=timeout)
            self.proc.poll()  # collected already; Popen learns that it has ended

    def __enter__(self) -> LabProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_calibrated(
    servers: int = 4,
    service_ms: float = 10.0,
    distribution: str = "fixed",
    shed_above: float | None = None,
    cpus: tuple[int, ...] | None = None,
    port: int = 0,
) -> LabProcess:
    """Start `redline lab calibrated` on 127.0.0.1 in a child process; returns once it listens."""
    args = [
        sys.executable, "-m", "redline", "lab", "calibrated",
        "--port", str(port),
        "--servers", str(servers),
        "--service-ms", str(service_ms),
        "--distribution", distribution,
    ]  # fmt: skip
    if shed_above is not None:
        args += ["--shed-above", str(shed_above)]
    preexec = (lambda: os.sched_setaffinity(0, cpus)) if cpus else None
    proc = subprocess.Popen(
        args,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        preexec_fn=preexec,
    )
    return _await_banner(proc, "calibrated target")


def _await_banner(proc: subprocess.Popen[str], what: str, timeout: float = 20.0) -> LabProcess:
    assert proc.stdout is not None
    stdout = proc.stdout

    def banner() -> LabProcess | None:
        if proc.poll() is not None:
            err = (proc.stderr.read() if proc.stderr else "").strip().splitlines()
            raise UserError(f"{what} exited at start: {err[-1] if err else proc.returncode}")
        ready, _, _ = select.select([stdout], [], [], 0.2)
        if ready:
            line = stdout.readline()
            m = _URL.search(line)
            if m:
                return LabProcess(proc, m.group(1), line.strip())
        return None

    started = procs.wait_until(banner, timeout, 0)  # the select is the pause between looks
    if started is None:
        proc.kill()
        raise UserError(f"{what} did not start within {timeout:g} s")
    return started
