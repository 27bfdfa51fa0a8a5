"""py-spy attached to the target's Python processes for the length of a probe.

    profiler = Profiler(target_pids, probe_folder / "profile.txt.gz", cpus=generator_cpus).start()
    ...  # the probe runs
    run = profiler.stop()  # ProfileRun: the file, what it cost, or one sentence on why not

py-spy runs `--nonblocking`: it reads the target's memory while the target runs, never
pausing it (a paused Keystone would be a slower Keystone, and N would be py-spy's). Its
cost is CPU on the machine, put on the given CPUs (the load generator's) so the target's
own CPU stays the target's; `ProfileRun.cpu_s` says how much it took.

Only CPython processes are handed to py-spy: it fails on nginx, mariadbd or memcached,
which are part of a target's process tree. Each Python process whose parent is not also
one of them is a root, sampled with `--subprocesses`, so forked workers (uWSGI's,
gunicorn's, the identity service's) are covered, also those started during the probe.

Stopping is Ctrl-C: on SIGINT py-spy writes its raw file and exits. A failure (no py-spy,
ptrace refused, a pid gone) ends as `ProfileRun.error`, never as an exception: a probe
without a profile is still a probe.
"""

from __future__ import annotations

import contextlib
import functools
import gzip
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO

import psutil

from redline.analysis.profile_stacks import sampled_pids
from redline.procs import alive

PTRACE_NEEDED = "py-spy needs root or ptrace permission (CAP_SYS_PTRACE, or kernel.yama.ptrace_scope=0)"
NO_BINARY = "py-spy is not installed: `pip install py-spy` into redline's environment, or put it on PATH"
DEFAULT_RATE_HZ = 100
# py-spy's own --duration: a py-spy whose redline was killed ends by itself after this.
MAX_S = 6 * 3600
# py-spy prints "Sampling process …" once attached, with its Ctrl-C handler set; a SIGINT
# before that kills it without a file. Attaching takes ~10 ms; a busy host may take longer.
READY_S = 5.0
STOP_S = 10.0  # writing the raw file takes well under a second
POLL_S = 0.02
DUMP_S = 10.0  # `py-spy dump`, asked only to name why a recording failed
_READY_LINE = "Sampling process"
_CAP_SYS_PTRACE = 19
# What runs CPython: the interpreter itself, or the servers that embed it (uWSGI) or name
# their processes after themselves (gunicorn, via setproctitle).
_PYTHONISH = re.compile(r"^(python|uwsgi|gunicorn)", re.IGNORECASE)


@dataclass(frozen=True)
class ProfileRun:
    """What one profiling session left."""

    path: Path | None  # the collapsed stacks, gzip'd; None when nothing was sampled
    pids: tuple[int, ...]  # the Python processes profiled, workers that appeared included
    seconds: float  # from start() to stop()
    cpu_s: float | None  # py-spy's own user + system CPU seconds, what profiling cost
    error: str | None  # one sentence when nothing could be profiled
    skipped: tuple[int, ...] = ()  # given pids that are not Python or no longer run
    notes: tuple[str, ...] = ()  # partial trouble: pids skipped, one of several roots failing
    rate_hz: int = DEFAULT_RATE_HZ


def pyspy_binary() -> str | None:
    """The py-spy next to this Python (the wheel installs it into the venv's bin), else on PATH."""
    here = Path(sys.executable).parent / "py-spy"
    if here.is_file() and os.access(here, os.X_OK):
        return str(here)
    return shutil.which("py-spy")


def is_python(pid: int) -> bool:
    """Whether `pid` runs CPython, by its executable, its name or its argv[0]."""
    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return False
        names = [proc.name()]
        with contextlib.suppress(psutil.Error, OSError):
            names.append(os.path.basename(proc.exe()))
        with contextlib.suppress(psutil.Error, OSError):
            argv = proc.cmdline()
            if argv:
                names.append(os.path.basename(argv[0]))
    except psutil.Error:
        return False
    return any(_PYTHONISH.match(n) for n in names if n)


def ptrace_refused() -> bool:
    """Whether the kernel will refuse py-spy reading another process's memory.

    Root, or CAP_SYS_PTRACE, may (unless Yama's scope is 3: no one may); anyone else only
    with kernel.yama.ptrace_scope=0, and then only processes of its own user (a refusal
    py-spy itself reports, classified in _explain)."""
    scope = _read_int("/proc/sys/kernel/yama/ptrace_scope")
    if scope == 3:
        return True
    if os.geteuid() == 0 or _has_cap(_CAP_SYS_PTRACE):
        return False
    return scope is not None and scope >= 1


def read_collapsed(path: Path) -> str:
    """The collapsed-stacks text of a profile file, gzip'd or not."""
    data = Path(path).read_bytes()
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    return data.decode("utf-8", errors="replace")


@dataclass
class _Spy:
    """One py-spy process, on one root."""

    root: int
    proc: subprocess.Popen[bytes]
    log: IO[bytes]
    part: Path
    status: int | None = None
    cpu_s: float | None = None
    reaped: bool = False

    def poll(self) -> bool:
        """Whether it has exited (reaping it, which keeps its rusage)."""
        if not self.reaped:
            try:
                pid, status, ru = os.wait4(self.proc.pid, os.WNOHANG)
            except ChildProcessError:  # reaped elsewhere: its exit status and rusage are lost
                self.reaped = True
                return True
            if pid:
                self._reaped(status, ru)
        return self.reaped

    def wait(self) -> None:
        with contextlib.suppress(ChildProcessError):
            _, status, ru = os.wait4(self.proc.pid, 0)
            self._reaped(status, ru)
        self.reaped = True

    def _reaped(self, status: int, ru: resource.struct_rusage) -> None:
        self.reaped = True
        self.status = os.waitstatus_to_exitcode(status)
        self.proc.returncode = self.status  # so that Popen never waits for it again
        self.cpu_s = ru.ru_utime + ru.ru_stime

    def output(self) -> str:
        """What py-spy printed (both streams), read without moving the offset it writes at."""
        try:
            return os.pread(self.log.fileno(), 65536, 0).decode("utf-8", errors="replace")
        except OSError:
            return ""


class Profiler:
    """py-spy on the Python processes among `pids`, writing collapsed stacks to `output`
    (gzip'd: name it *.txt.gz), optionally pinned to `cpus`.

    Use once: `start()`, then `stop()`; or as a context manager (`run` after the block).
    """

    def __init__(
        self,
        pids: Iterable[int],
        output: Path,
        *,
        rate_hz: int = DEFAULT_RATE_HZ,
        cpus: tuple[int, ...] | None = None,
        max_s: float = MAX_S,
        binary: str | None = None,
    ) -> None:
        if rate_hz < 1:
            raise ValueError("rate_hz must be at least 1")
        self.pids = tuple(dict.fromkeys(p for p in pids if p > 0))
        self.output = Path(output)
        self.rate_hz = rate_hz
        self.cpus = cpus
        self.max_s = max_s
        self._binary = binary
        self._spies: list[_Spy] = []
        self._started: float | None = None
        self._error: str | None = None
        self._pythons: tuple[int, ...] = ()
        self._skipped: tuple[int, ...] = ()
        self._notes: list[str] = []
        self.run: ProfileRun | None = None

    def __enter__(self) -> Profiler:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def start(self) -> Profiler:
        """Start py-spy; never raises for a target that cannot be profiled (stop() says why)."""
        if self._started is not None or self.run is not None:
            raise RuntimeError("a Profiler is started once")
        self._started = time.monotonic()
        binary = self._binary or pyspy_binary()
        pythons = [p for p in self.pids if is_python(p)]
        self._pythons = tuple(pythons)
        self._skipped = tuple(p for p in self.pids if p not in pythons)
        if self._skipped:
            self._notes.append(f"not profiled (not Python, or not running): {_describe(self._skipped)}")
        if binary is None:
            self._error = NO_BINARY
        elif not self.pids:
            self._error = "no target processes were given to profile"
        elif not pythons:
            self._error = f"no Python process to profile among {_describe(self.pids)}: py-spy reads CPython only"
        elif ptrace_refused() or not all(map(_may_read, pythons)):
            self._error = PTRACE_NEEDED
        else:
            self._binary = binary
            failures = []
            try:
                self.output.parent.mkdir(parents=True, exist_ok=True)
                for root in _roots(pythons):
                    try:
                        self._spies.append(self._spawn(binary, root))
                    except OSError as exc:
                        failures.append(f"py-spy could not be started: {exc}")
            except OSError as exc:
                failures.append(f"py-spy could not be started: {exc}")
            if failures and not self._spies:
                self._error = _join(failures)
            else:
                self._notes += failures
        return self

    def _spawn(self, binary: str, root: int) -> _Spy:
        part = self.output.with_name(f"{self.output.name}.{root}.part")
        cmd = [
            binary, "record", "--pid", str(root), "--rate", str(self.rate_hz), "--format", "raw",
            "--output", str(part), "--nonblocking", "--subprocesses",
            "--full-filenames",  # whole paths: package_of needs site-packages/… to name the package
            "--function",  # one line per function, not per line: a smaller file, the same tables
            "--duration", str(max(1, int(self.max_s))),
        ]  # fmt: skip
        # Affinity and scheduling class set in the child before exec, so that py-spy's
        # sampling threads, created later, inherit them (set from here, they would apply to
        # its main thread only); two system calls, safe between fork and exec.
        preexec = functools.partial(_lowly, self.cpus)
        log = tempfile.TemporaryFile(prefix="redline-py-spy-")  # noqa: SIM115 — closed in stop()
        try:
            proc = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, "RUST_BACKTRACE": "0"},  # one error line, not a Rust backtrace
                preexec_fn=preexec,
                # Its own session: a Ctrl-C at redline's terminal is redline's to handle; the
                # profile is stopped (and written) by stop().
                start_new_session=True,
            )
        except BaseException:
            log.close()
            raise
        return _Spy(root, proc, log, part)

    def stop(self, timeout_s: float = STOP_S) -> ProfileRun:
        """Stop py-spy, gzip its output to `output`, say what it cost. Called again: the same run."""
        if self.run is not None:
            return self.run
        if self._started is None:  # e.g. its window ended before a delayed start came
            self.run = ProfileRun(
                None, (), 0.0, None, "the profile was stopped before it started", rate_hz=self.rate_hz
            )
            return self.run
        seconds = time.monotonic() - self._started
        try:
            self.run = self._finish(seconds, timeout_s)
        finally:
            for spy in self._spies:
                if not spy.reaped:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(spy.proc.pid, signal.SIGKILL)
                    spy.wait()
                spy.log.close()
                with contextlib.suppress(OSError):
                    spy.part.unlink()
        return self.run

    def _finish(self, seconds: float, timeout_s: float) -> ProfileRun:
        spies = self._spies
        ready_by = time.monotonic() + READY_S
        for spy in spies:
            while not spy.poll() and _READY_LINE not in spy.output() and time.monotonic() < ready_by:
                time.sleep(POLL_S)
        for spy in spies:
            if not spy.poll():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(spy.proc.pid, signal.SIGINT)
        deadline = time.monotonic() + timeout_s
        for spy in spies:
            while not spy.poll() and time.monotonic() < deadline:
                time.sleep(POLL_S)
            if not spy.reaped:
                self._notes.append(f"py-spy on process {spy.root} did not stop on SIGINT within {timeout_s:g} s")
                with contextlib.suppress(ProcessLookupError):
                    os.kill(spy.proc.pid, signal.SIGKILL)
                spy.wait()
        costs = [s.cpu_s for s in spies if s.cpu_s is not None]
        cpu_s = sum(costs) if costs else None
        written = [s for s in spies if s.part.is_file()]
        errors = [self._why(s) for s in spies if s not in written]
        error = self._error
        if error is None and not spies:
            error = f"the Python processes among {_describe(self.pids)} ended before py-spy started"
        elif error is None and not written:
            error = _join(errors)
        else:
            self._notes += errors  # some roots sampled, others not: a partial profile
        path, pids = None, self._pythons
        if error is None:
            try:
                text = self._gzip([s.part for s in written])
            except OSError as exc:
                error = f"the profile could not be written to {self.output}: {exc}"
            else:
                path = self.output
                pids = tuple(sorted(set(pids) | set(sampled_pids(text))))
        return ProfileRun(path, pids, seconds, cpu_s, error, self._skipped, tuple(self._notes), self.rate_hz)

    def _why(self, spy: _Spy) -> str:
        """Why a py-spy wrote nothing. With --subprocesses py-spy says "No python processes
        found" whatever the cause (a ptrace refusal included); `py-spy dump` on the root alone
        names the cause, so it is asked when the root still runs."""
        said = spy.output()
        if "no python processes found" in said.lower() and self._binary and alive(spy.root):
            said = _dump_output(self._binary, spy.root) or said
        return _explain(said, spy.root, spy.status)

    def _gzip(self, parts: list[Path]) -> str:
        """Concatenate the parts into `output` (gzip, renamed into place once whole); the text."""
        chunks = []
        for part in parts:
            text = part.read_text(encoding="utf-8", errors="replace")
            chunks.append(text if text.endswith("\n") or not text else text + "\n")
        text = "".join(chunks)
        tmp = self.output.with_name(self.output.name + ".tmp")
        # mtime=0: the same samples give the same bytes
        with open(tmp, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=6, mtime=0) as gz:
            gz.write(text.encode("utf-8"))
        os.replace(tmp, self.output)
        return text


def _lowly(cpus: tuple[int, ...] | None) -> None:
    """In py-spy's child before exec: its CPUs, and SCHED_IDLE, so it samples with what CPU
    the generator leaves and never delays a send (a late send would count against the run)."""
    if cpus:
        os.sched_setaffinity(0, cpus)
    with contextlib.suppress(OSError, AttributeError):
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))


def _roots(pythons: list[int]) -> list[int]:
    """The Python processes none of whose ancestors is one: --subprocesses covers the rest."""
    chosen = set(pythons)
    roots = []
    for pid in pythons:
        try:
            ancestors = {p.pid for p in psutil.Process(pid).parents()}
        except psutil.Error:
            continue
        if not ancestors & chosen:
            roots.append(pid)
    return roots


def _dump_output(binary: str, pid: int) -> str | None:
    try:
        done = subprocess.run(
            [binary, "dump", "--pid", str(pid), "--nonblocking"],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=DUMP_S,
            env={**os.environ, "RUST_BACKTRACE": "0"},
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return (done.stdout + done.stderr).decode("utf-8", errors="replace") if done.returncode else None


def _explain(output: str, root: int, status: int | None) -> str:
    """One sentence for a py-spy that wrote nothing, from what it printed."""
    low = output.lower()
    if any(s in low for s in ("permission denied", "operation not permitted", "os error 1)", "os error 13)")):
        return PTRACE_NEEDED
    if not alive(root):
        return f"process {root} ended before py-spy could read it"
    if "check that the process is running" in low:
        # It runs, yet py-spy could not read /proc/<pid>/exe: the kernel refused it.
        return PTRACE_NEEDED
    if "failed to find python version" in low or "no python processes found" in low:
        return f"py-spy found no Python interpreter it can read in process {root}"
    said = next((line[6:].strip() for line in output.splitlines() if line.startswith("Error:")), None)
    if said:
        return f"py-spy failed on process {root}: {said}"
    how = "was killed" if status is not None and status < 0 else f"exited with status {status}"
    return f"py-spy on process {root} {how} without writing a profile"


def _join(errors: list[str]) -> str:
    unique = list(dict.fromkeys(errors))
    return unique[0] if len(unique) == 1 else "; ".join(unique)


def _describe(pids: Iterable[int]) -> str:
    parts = []
    for pid in pids:
        try:
            parts.append(f"{psutil.Process(pid).name()} ({pid})")
        except psutil.Error:
            parts.append(f"pid {pid} (not running)")
    return ", ".join(parts)


def _may_read(pid: int) -> bool:
    """Whether this process may read where `pid`'s executable is (what py-spy does first, with
    the same credentials): refused for another user's process without CAP_SYS_PTRACE. A pid
    that has gone is not a refusal."""
    try:
        os.readlink(f"/proc/{pid}/exe")
    except PermissionError:
        return False
    except OSError:
        pass
    return True


def _read_int(path: str) -> int | None:
    try:
        return int(Path(path).read_text().strip())
    except (OSError, ValueError):
        return None


def _has_cap(bit: int) -> bool:
    """Whether this process's effective capabilities include `bit` (from /proc/self/status)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("CapEff:"):
                return bool(int(line.split()[1], 16) >> bit & 1)
    except (OSError, ValueError, IndexError):
        pass
    return False
