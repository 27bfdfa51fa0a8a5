#!/usr/bin/env python3
"""Does redline's memory stay the same whatever the duration of a run?

Run from the repository root:

    .venv/bin/python benchmarks/long_run.py [--rate 20000] [--short 30] [--long 300] [--kill-at 180] [--keep] [--skip-kill]

It starts Debian's nginx on loopback (installing it with apt-get when it is missing),
pinned to CPU 1, and runs `redline run --url … --rate R --duration D --cpus 0` three
times, one after the other, in one invocation:

- a short run (--short seconds) and a long run (--long seconds) at the same rate. While
  each runs, psutil reads every 0.25 s the RSS of the redline process and of all its
  descendants (the worker processes, multiprocessing's helpers): the table has the peak
  of the sum over the tree, the peak of the parent alone and the peak of the largest
  worker, and the peak of the tree while the workers were alive (the load window: after
  it the parent gathers the samples and writes report.html). The kernel's own figure,
  the ru_maxrss that wait4() returns for the redline process (the largest single process
  of its tree that was reaped, KiB), is a cross-check of the largest process. After each
  run: the size on disk of what the run wrote for its samples (`samples.npz` and/or a
  `samples/` directory of chunks: everything in the run folder named samples*), the
  requests scheduled (run.json `summary.scheduled`), the rows readable from the folder
  (`RunFolder.open(path).read_samples()` in a subprocess) and bytes per row;
- a third run, --long seconds again, killed with SIGKILL (the whole process group: the
  parent and its workers) --kill-at seconds after it was started. Then
  `redline report <run folder>`: its exit code, its last stderr line, whether
  report.html exists, and how many requests are still readable from the folder (or the
  error that reading them gives).

Two goal lines, PASS or FAIL: peak RSS of the tree, long ÷ short ≤ 1.2; bytes on disk
per request ≤ 12 (both runs). MB are 10^6 bytes. The table and every figure also go to
benchmarks/results/long-run-<UTC time>.json. The run folders go to a temporary directory
that is removed at the end unless --keep is given.

On a 2-core machine run nothing else CPU-heavy at the same time (e.g. wrap the command
in `flock /tmp/redline-cpu.lock …`); the defaults take about 9 minutes.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from engine import (  # benchmarks/ is not a package: imported from its directory
    RESULTS,
    ROOT,
    Fatal,
    Nginx,
    _run_quiet,
    _tail,
    check_redline,
    find_nginx,
    machine,
)

try:
    import psutil
except ImportError:  # pragma: no cover — psutil is a dependency of redline
    psutil = None  # type: ignore[assignment]

POLL_S = 0.25
TIMELINE_EVERY = 4  # one point of the RSS timeline in the JSON every 4 polls (1 s)
GOAL_RSS_RATIO = 1.2  # peak RSS of the tree, long run ÷ short run
GOAL_BYTES_PER_REQUEST = 12.0  # samples on disk ÷ requests, each run
MB = 1e6

READ_SAMPLES = """\
import json, sys
try:
    from redline.store import RunFolder
    n = len(RunFolder.open(sys.argv[1]).read_samples())
except Exception as exc:
    text = str(exc).strip().splitlines()
    print(json.dumps({"error": f"{type(exc).__name__}: {text[-1] if text else ''}".rstrip(": ")}))
else:
    print(json.dumps({"rows": n}))
"""


def say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- tools


def ensure_nginx() -> str:
    nginx = find_nginx()
    if nginx:
        return nginx
    if os.geteuid() != 0:
        raise Fatal("nginx missing and not root: run `apt-get install -y nginx` first")
    if not shutil.which("apt-get"):
        raise Fatal("nginx missing and apt-get not found (this benchmark expects Debian)")
    say("installing nginx with apt-get ...")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    _run_quiet(["apt-get", "update", "-q"], "run apt-get update", env=env)
    _run_quiet(["apt-get", "install", "-y", "-q", "nginx"], "install nginx with apt-get", env=env)
    nginx = find_nginx()
    if not nginx:
        raise Fatal("apt-get finished but nginx is still not on PATH")
    subprocess.run(["service", "nginx", "stop"], capture_output=True)  # the system one, if the package started it
    return nginx


def redline_cmd() -> list[str]:
    """The `redline` console script beside this interpreter, else `python -m redline`."""
    script = Path(sys.executable).parent / "redline"
    return [str(script)] if os.access(script, os.X_OK) else [sys.executable, "-m", "redline"]


# --------------------------------------------------------------------------- one run


@dataclass
class Measured:
    label: str
    duration_s: float
    killed_at_s: float | None = None  # kill run: seconds after the start when SIGKILL was sent
    exit_code: int | None = None
    wall_s: float = 0.0
    run_dir: str | None = None
    status: str | None = None  # run.json status
    scheduled: int | None = None  # run.json summary.scheduled (the measurement window)
    responses: int | None = None
    rows_readable: int | None = None
    read_error: str | None = None
    samples_bytes: int = 0
    samples_files: list[str] = field(default_factory=list)  # the names matching samples* in the run folder
    samples_file_count: int = 0  # regular files among them, recursively (chunks)
    folder_bytes: int = 0
    peak_tree_rss: int = 0
    peak_tree_rss_load: int = 0  # while at least one worker was alive
    peak_parent_rss: int = 0
    peak_parent_rss_after_load: int = 0  # after the last worker had gone
    peak_worker_rss: int = 0
    peak_other_rss: int = 0  # descendants that are not workers (multiprocessing's resource tracker, …)
    max_processes: int = 0
    workers_seen: int = 0
    polls: int = 0
    hwm_parent: int = 0  # kernel's VmHWM (peak RSS so far) of the parent, at its last poll
    hwm_worker: int = 0  # … of the largest worker
    ru_maxrss_kib: int | None = None  # wait4() of the redline process: largest reaped process of its tree
    rusage_children_maxrss_kib: int | None = None  # getrusage(RUSAGE_CHILDREN) of this script after the run
    timeline: list[list[float]] = field(default_factory=list)  # [t_s, tree_MB, parent_MB, largest_worker_MB, procs]
    notes: list[str] = field(default_factory=list)
    report: dict | None = None  # kill run: `redline report` outcome

    @property
    def requests(self) -> int | None:
        """Rows in the folder when readable, else what run.json says was scheduled."""
        return self.rows_readable if self.rows_readable is not None else self.scheduled

    @property
    def bytes_per_request(self) -> float | None:
        n = self.requests
        return self.samples_bytes / n if n and self.samples_bytes else None

    def to_dict(self) -> dict:
        d = asdict(self)
        d.update(requests=self.requests, bytes_per_request=_round(self.bytes_per_request, 3))
        for k in (
            "peak_tree_rss",
            "peak_tree_rss_load",
            "peak_parent_rss",
            "peak_parent_rss_after_load",
            "peak_worker_rss",
            "peak_other_rss",
            "hwm_parent",
            "hwm_worker",
        ):
            d[k + "_mb"] = round(d.pop(k) / MB, 2)
        d["samples_mb"] = round(self.samples_bytes / MB, 3)
        return d


def _round(v: float | None, n: int) -> float | None:
    return None if v is None else round(v, n)


def _is_worker(proc) -> bool:
    try:
        cmd = " ".join(proc.cmdline())
    except (psutil.Error, OSError):
        return False
    return "spawn_main" in cmd  # multiprocessing's spawn start method: redline's generator processes


def _vm_hwm(pid: int) -> int:
    """The kernel's peak RSS of a process so far (VmHWM in /proc/PID/status), bytes; 0 if gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


def _du(path: Path) -> int:
    if path.is_symlink() or not path.exists():
        return 0
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


class Runner:
    def __init__(self, args: argparse.Namespace, url: str, tmp: Path) -> None:
        self.args, self.url, self.tmp = args, url, tmp
        self.proc: subprocess.Popen | None = None  # the redline run in progress, for the cleanup

    def run(self, label: str, duration: float, kill_at: float | None = None) -> Measured:
        a = self.args
        results = self.tmp / f"runs-{label}"
        log = self.tmp / f"redline-{label}.log"
        cmd = [
            *redline_cmd(),
            "run",
            "--url",
            self.url,
            "--rate",
            f"{a.rate:g}",
            "--duration",
            f"{duration:g}",
            "--workers",
            str(a.workers),
            "--cpus",
            str(a.generator_cpu),
            "--results",
            str(results),
            "--name",
            f"long-run-{label}",
        ]
        m = Measured(label, duration)
        say(
            f"{label}: redline at {a.rate:,.0f}/s for {duration:g} s"
            + (f", SIGKILL at {kill_at:g} s" if kill_at is not None else "")
        )
        with open(log, "wb") as out:
            self.proc = proc = subprocess.Popen(
                cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=out, cwd=self.tmp, start_new_session=True
            )
        t0 = time.monotonic()
        deadline = t0 + duration * 3 + 300  # the samples and report.html are written after the window
        root = psutil.Process(proc.pid)
        seen: dict[int, tuple[bool, int, int]] = {}  # pid -> (is a worker, peak RSS polled, kernel VmHWM)
        tree_pids: set[int] = set()
        workers_ever = False
        n = 0
        rusage = None
        status = 0
        while True:
            pid, status, rusage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            now = time.monotonic()
            if kill_at is not None and m.killed_at_s is None and now - t0 >= kill_at:
                tree_pids |= self._tree_pids(root)
                os.killpg(proc.pid, signal.SIGKILL)
                m.killed_at_s = round(now - t0, 2)
            if now > deadline:
                self._kill_group(proc, root)
                raise Fatal(f"{label} run did not end {deadline - t0:.0f} s after its start: {_tail(log.read_bytes())}")
            if m.killed_at_s is None:
                tree, parent, worker_max, procs, workers_alive = self._poll(root, seen, tree_pids)
                n += 1
                m.peak_tree_rss = max(m.peak_tree_rss, tree)
                m.peak_parent_rss = max(m.peak_parent_rss, parent)
                m.max_processes = max(m.max_processes, procs)
                workers_ever |= workers_alive
                if workers_alive:
                    m.peak_tree_rss_load = max(m.peak_tree_rss_load, tree)
                elif workers_ever:
                    m.peak_parent_rss_after_load = max(m.peak_parent_rss_after_load, parent)
                if n % TIMELINE_EVERY == 1:
                    m.timeline.append(
                        [
                            round(now - t0, 2),
                            round(tree / MB, 2),
                            round(parent / MB, 2),
                            round(worker_max / MB, 2),
                            procs,
                        ]
                    )
            time.sleep(POLL_S)
        proc.returncode = os.waitstatus_to_exitcode(status)
        self.proc = None
        m.wall_s = round(time.monotonic() - t0, 2)
        m.exit_code = proc.returncode
        m.polls = n
        m.ru_maxrss_kib = rusage.ru_maxrss if rusage else None
        m.rusage_children_maxrss_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        m.peak_worker_rss = max((rss for w, rss, _ in seen.values() if w), default=0)
        m.peak_other_rss = max((rss for pid, (w, rss, _) in seen.items() if not w and pid != proc.pid), default=0)
        m.workers_seen = sum(1 for w, _, _ in seen.values() if w)
        m.hwm_parent = seen.get(proc.pid, (False, 0, 0))[2]
        m.hwm_worker = max((hwm for w, _, hwm in seen.values() if w), default=0)
        if m.killed_at_s is not None:
            self._reap_orphans(tree_pids - {proc.pid})
        elif kill_at is not None:
            m.notes.append(f"ended by itself (exit {m.exit_code}) before the kill at {kill_at:g} s")
        self._after(m, results, log, killed=m.killed_at_s is not None)
        return m

    @staticmethod
    def _tree_pids(root) -> set[int]:
        try:
            return {root.pid} | {c.pid for c in root.children(recursive=True)}
        except psutil.Error:
            return {root.pid}

    @staticmethod
    def _poll(root, seen: dict[int, tuple[bool, int, int]], tree_pids: set[int]) -> tuple[int, int, int, int, bool]:
        """RSS of the tree now: (sum, parent, largest worker, processes, a worker alive)."""
        try:
            procs = [root, *root.children(recursive=True)]
        except psutil.Error:
            return 0, 0, 0, 0, False
        tree = parent = worker_max = count = 0
        workers_alive = False
        for p in procs:
            try:
                rss = p.memory_info().rss
            except psutil.Error:
                continue
            if p.pid not in seen:
                seen[p.pid] = (p.pid != root.pid and _is_worker(p), 0, 0)
                tree_pids.add(p.pid)
            is_worker, peak, hwm = seen[p.pid]
            seen[p.pid] = (is_worker, max(peak, rss), max(hwm, _vm_hwm(p.pid)))
            tree += rss
            count += 1
            if p.pid == root.pid:
                parent = rss
            elif is_worker:
                workers_alive = True
                worker_max = max(worker_max, rss)
        return tree, parent, worker_max, count, workers_alive

    @staticmethod
    def _reap_orphans(pids: set[int]) -> None:
        """The workers of a killed parent were in its process group: wait until they are gone.

        One that left the group (none should) is killed by its pid.
        """
        procs = []
        for pid in pids:
            with contextlib.suppress(psutil.Error):
                procs.append(psutil.Process(pid))
        _, alive = psutil.wait_procs(procs, timeout=5)
        for p in alive:
            with contextlib.suppress(psutil.Error):
                p.kill()
        psutil.wait_procs(alive, timeout=5)

    def _kill_group(self, proc: subprocess.Popen, root=None) -> None:
        """Stop a redline run: SIGINT to its group (it saves what it measured), SIGKILL after 15 s."""
        if proc.poll() is not None:
            return
        try:
            pids = self._tree_pids(root or psutil.Process(proc.pid))
        except psutil.Error:
            pids = {proc.pid}
        for sig, wait in ((signal.SIGINT, 15), (signal.SIGKILL, 5)):
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                break
            try:
                proc.wait(timeout=wait)
                break
            except subprocess.TimeoutExpired:
                continue
        self._reap_orphans(pids - {proc.pid})

    def stop(self) -> None:
        if self.proc is not None:
            self._kill_group(self.proc)
            self.proc = None

    # -- after a run --

    def _after(self, m: Measured, results: Path, log: Path, killed: bool) -> None:
        folders = sorted(p for p in results.glob("*") if p.is_dir()) if results.is_dir() else []
        if not folders:
            what = f"{m.label} run left no run folder (exit {m.exit_code}): {_tail(log.read_bytes())}"
            if killed:
                m.notes.append(what)
                m.read_error = "no run folder"
                return
            raise Fatal(what)
        run_dir = folders[-1]
        if len(folders) > 1:
            m.notes.append(f"{len(folders)} run folders; the last one is measured")
        m.run_dir = str(run_dir)
        m.folder_bytes = _du(run_dir)
        for p in sorted(run_dir.glob("samples*")):
            m.samples_files.append(p.name + ("/" if p.is_dir() else ""))
            m.samples_bytes += _du(p)
            m.samples_file_count += 1 if p.is_file() else sum(1 for q in p.rglob("*") if q.is_file())
        try:
            doc = json.loads((run_dir / "run.json").read_text())
        except (OSError, ValueError) as exc:
            doc = {}
            m.notes.append(f"run.json unreadable: {exc}")
        m.status = doc.get("status")
        summary = doc.get("summary") or {}
        m.scheduled = summary.get("scheduled")
        m.responses = summary.get("responses")
        if not killed and m.exit_code != 0:
            if not m.samples_files:  # nothing measured: the figures would mean nothing
                raise Fatal(f"{m.label} run failed (exit {m.exit_code}): {_tail(log.read_bytes())}")
            m.notes.append(f"redline exited {m.exit_code}: {_tail(log.read_bytes())}")
        if killed:  # report first: it must cope with the folder as the kill left it
            had_report = (run_dir / "report.html").exists()
            try:
                rep = subprocess.run(
                    [*redline_cmd(), "report", str(run_dir)],
                    capture_output=True,
                    text=True,
                    timeout=900,
                    stdin=subprocess.DEVNULL,
                )
                m.report = {
                    "exit_code": rep.returncode,
                    "last_stderr_line": _tail(rep.stderr),
                    "report_html": (run_dir / "report.html").exists(),
                    "report_html_before": had_report,
                }
            except subprocess.TimeoutExpired:
                m.report = {"exit_code": None, "last_stderr_line": "timed out after 900 s", "report_html": False}
        self._read_rows(m, run_dir)

    @staticmethod
    def _read_rows(m: Measured, run_dir: Path) -> None:
        try:
            r = subprocess.run(
                [sys.executable, "-c", READ_SAMPLES, str(run_dir)],
                capture_output=True,
                text=True,
                timeout=900,
                stdin=subprocess.DEVNULL,
            )
        except subprocess.TimeoutExpired:
            m.read_error = "reading the samples took longer than 900 s"
            return
        try:
            got = json.loads(r.stdout.strip().splitlines()[-1])
        except (ValueError, IndexError):
            m.read_error = f"reader failed (exit {r.returncode}): {_tail(r.stderr)}"
            return
        m.rows_readable, m.read_error = got.get("rows"), got.get("error")
        if m.read_error:  # the run folder's path says nothing here: keep the file's name inside it
            m.read_error = m.read_error.replace(f"{run_dir}/", "")


# --------------------------------------------------------------------------- output

COLUMNS = [
    ("run", "left"),
    ("duration", "right"),
    ("requests", "right"),
    ("peak RSS tree (MB)", "right"),
    ("tree in load (MB)", "right"),
    ("parent (MB)", "right"),
    ("largest worker (MB)", "right"),
    ("samples on disk (MB)", "right"),
    ("bytes/request", "right"),
]


def cells(m: Measured) -> list[str]:
    dur = f"{m.duration_s:g} s" + (f" (killed at {m.killed_at_s:g} s)" if m.killed_at_s is not None else "")
    bpr = m.bytes_per_request
    return [
        m.label,
        dur,
        "—" if m.requests is None else f"{m.requests:,}",
        f"{m.peak_tree_rss / MB:,.1f}",
        f"{m.peak_tree_rss_load / MB:,.1f}",
        f"{m.peak_parent_rss / MB:,.1f}",
        f"{m.peak_worker_rss / MB:,.1f}",
        (f"{m.samples_bytes / MB:,.2f}" if m.samples_bytes else "0 (empty)") if m.samples_files else "none",
        "—" if bpr is None else f"{bpr:.2f}",
    ]


def markdown(rows: list[Measured]) -> str:
    body = [cells(r) for r in rows]
    widths = [max(len(c), *(len(b[i]) for b in body)) for i, (c, _) in enumerate(COLUMNS)]

    def line(values: list[str]) -> str:
        return (
            "| "
            + " | ".join(v.ljust(w) if j == "left" else v.rjust(w) for v, w, (_, j) in zip(values, widths, COLUMNS))
            + " |"
        )

    rule = (
        "|"
        + "|".join(("-" * (w + 2)) if j == "left" else ("-" * (w + 1) + ":") for w, (_, j) in zip(widths, COLUMNS))
        + "|"
    )
    return "\n".join([line([c for c, _ in COLUMNS]), rule, *(line(b) for b in body)])


def kernel_peaks(r: Measured) -> str:
    """ru_maxrss from wait4() of the redline process (the largest process of its tree that
    was reaped: all of it after a normal end, the parent only after a kill -9) and the
    VmHWM read at the last poll of the parent and of the largest worker."""
    ru = "—" if r.ru_maxrss_kib is None else f"{r.ru_maxrss_kib * 1024 / MB:,.1f} MB"
    who = " (parent only)" if r.killed_at_s is not None else ""
    return (
        f"{r.label}: ru_maxrss {ru}{who}, VmHWM parent {r.hwm_parent / MB:,.1f} MB, "
        f"largest worker {r.hwm_worker / MB:,.1f} MB"
    )


def kill_line(k: Measured) -> str:
    if k.killed_at_s is None:
        return f"kill -9: not killed ({'; '.join(k.notes) or 'ended before the kill'})"
    rep = k.report or {}
    if k.rows_readable is not None:
        readable = f"{k.rows_readable:,} requests readable"
    else:
        readable = f"no samples readable: {k.read_error}"
    report = (
        f"report exit {rep.get('exit_code')}, report.html {'written' if rep.get('report_html') else 'absent'}, "
        f"last stderr line: {rep.get('last_stderr_line')}"
        if rep
        else "no report tried"
    )
    if k.samples_files:
        on_disk = f"{', '.join(k.samples_files)} on disk: {k.samples_file_count} files, {k.samples_bytes:,} bytes"
    else:
        on_disk = "nothing named samples* on disk"
    return (
        f"kill -9: killed at {k.killed_at_s:g} s of {k.duration_s:g} s (run.json status {k.status!r}); "
        f"{on_disk}; {report}; {readable}"
    )


# --------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--rate", type=float, default=20_000, help="requests/s offered in every run (default 20000)")
    p.add_argument("--short", type=float, default=30, help="duration of the short run, s (default 30)")
    p.add_argument("--long", type=float, default=300, help="duration of the long run and the kill run, s (default 300)")
    p.add_argument(
        "--kill-at", type=float, default=180, help="SIGKILL the third run this many s after its start (default 180)"
    )
    p.add_argument("--skip-kill", action="store_true", help="leave the kill -9 run out")
    p.add_argument("--keep", action="store_true", help="keep the run folders (their directory is printed)")
    p.add_argument("--workers", type=int, default=1, help="redline --workers (default 1)")
    p.add_argument("--generator-cpu", type=int, default=0, help="core for redline (--cpus, default 0)")
    p.add_argument("--server-cpu", type=int, default=1, help="core for nginx (default 1)")
    a = p.parse_args(argv)
    if not (a.rate > 0 and a.short > 0 and a.long > 0 and a.workers >= 1):
        p.error("--rate, --short and --long must be positive, --workers ≥ 1")
    if a.long <= a.short:
        p.error("--long must be longer than --short")
    if not a.skip_kill and a.kill_at <= 0:
        p.error("--kill-at must be positive")
    return a


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if sys.platform != "linux":
        raise Fatal("this benchmark needs Linux (CPU pinning, /proc)")
    if psutil is None:
        raise Fatal(f"psutil is not importable by {sys.executable}: run `./dev` or `pip install -e .` first")
    cpus = os.sched_getaffinity(0)
    if args.generator_cpu == args.server_cpu or not {args.generator_cpu, args.server_cpu} <= cpus:
        raise Fatal(f"need two different usable cores for redline and nginx; usable: {sorted(cpus)}")
    redline_version = check_redline()
    nginx_exe = ensure_nginx()
    started = datetime.now(UTC)
    facts = {
        "started_utc": started.isoformat(timespec="seconds"),
        "machine": machine(),
        "versions": {
            "redline": redline_version,
            "python": platform.python_version(),
            "psutil": psutil.__version__,
            "nginx": _tail(subprocess.run([nginx_exe, "-v"], capture_output=True, text=True).stderr).replace(
                "nginx version: ", ""
            ),
        },
    }

    tmp = Path(tempfile.mkdtemp(prefix="redline-long-run-"))
    server = Nginx(nginx_exe, args.server_cpu, tmp)
    runner = Runner(args, "", tmp)
    try:
        server.start()
        runner.url = server.url
        say(
            f"nginx on {server.url} pinned to CPU {args.server_cpu}; redline on CPU {args.generator_cpu}; "
            f"RSS polled every {POLL_S:g} s; run folders in {tmp}"
        )
        short = runner.run("short", args.short)
        long = runner.run("long", args.long)
        killed = None if args.skip_kill else runner.run("kill-9", args.long, kill_at=args.kill_at)
    finally:
        runner.stop()
        server.stop()
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)

    rows = [short, long] + ([killed] if killed else [])
    ratio = long.peak_tree_rss / short.peak_tree_rss if short.peak_tree_rss else float("inf")
    ratio_load = long.peak_tree_rss_load / short.peak_tree_rss_load if short.peak_tree_rss_load else float("inf")
    bprs = {r.label: r.bytes_per_request for r in (short, long)}
    worst_bpr = max((v for v in bprs.values() if v is not None), default=None)
    goals = [
        {
            "goal": "peak RSS of the tree, long ÷ short",
            "wanted": f"≤ {GOAL_RSS_RATIO:g}",
            "value": round(ratio, 3),
            "result": "PASS" if ratio <= GOAL_RSS_RATIO else "FAIL",
        },
        {
            "goal": "samples on disk ÷ requests, each run",
            "wanted": f"≤ {GOAL_BYTES_PER_REQUEST:g} B",
            "value": {k: _round(v, 3) for k, v in bprs.items()},
            "result": "PASS" if worst_bpr is not None and worst_bpr <= GOAL_BYTES_PER_REQUEST else "FAIL",
        },
    ]
    m = facts["machine"]
    m["loadavg_after"] = os.getloadavg()[0]
    table = markdown(rows)
    lines = [
        f"redline long-run memory — {started:%Y-%m-%d %H:%M} UTC — {m['cpu_model']}, {m['cpus']} CPUs; "
        f"nginx {facts['versions']['nginx']} on CPU {args.server_cpu}, redline {redline_version} "
        f"(--workers {args.workers} --cpus {args.generator_cpu}) at {args.rate:,.0f}/s",
        "",
        table,
        "",
        f"goal (RSS) {goals[0]['result']}: peak RSS of the tree, long ÷ short ≤ {GOAL_RSS_RATIO:g} — "
        f"{long.peak_tree_rss / MB:,.1f} MB ÷ {short.peak_tree_rss / MB:,.1f} MB = {ratio:.3f} "
        f"(during the load window only: {ratio_load:.3f})",
        f"goal (disk) {goals[1]['result']}: samples on disk ≤ {GOAL_BYTES_PER_REQUEST:g} bytes/request — "
        + ", ".join(f"{k} {'—' if v is None else f'{v:.2f}'}" for k, v in bprs.items()),
    ]
    if killed:
        lines.append(kill_line(killed))
    lines.append(
        f"kernel peaks, a cross-check of the polled ones (a spike shorter than {POLL_S:g} s can fall between polls): "
        + "; ".join(kernel_peaks(r) for r in rows)
    )
    lines.append(
        "requests = rows readable from the run folder, else run.json summary.scheduled; "
        "tree in load = while a worker was alive; MB = 10^6 bytes; "
        f"load average (1 min) before / after: {m['loadavg_before']:.2f} / {m['loadavg_after']:.2f}"
    )
    for r in rows:
        if r.scheduled is not None and r.rows_readable is not None and r.scheduled != r.rows_readable:
            r.notes.append(f"run.json summary.scheduled {r.scheduled:,} ≠ rows readable {r.rows_readable:,}")
        polled = max(r.peak_parent_rss, r.peak_worker_rss, r.peak_other_rss)
        kernel = max(r.hwm_parent, r.hwm_worker, (r.ru_maxrss_kib or 0) * 1024)
        if polled and kernel > 1.05 * polled:
            r.notes.append(
                f"the kernel saw a process at {kernel / MB:,.1f} MB, the polls at most {polled / MB:,.1f} MB: "
                "a short peak fell between polls (the tree's polled peak is low by as much)"
            )
        if r.read_error and r.label != "kill-9":
            r.notes.append(f"samples not readable: {r.read_error}")
        lines += [f"note ({r.label}): {note}" for note in r.notes]
    if args.keep:
        lines.append(f"run folders kept in {tmp}")
    print("\n".join(lines))

    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"long-run-{started:%Y%m%dT%H%M%SZ}.json"
    out.write_text(
        json.dumps(
            {
                **facts,
                "options": vars(args),
                "poll_s": POLL_S,
                "runs": [r.to_dict() for r in rows],
                "ratio_peak_rss_tree": round(ratio, 3),
                "ratio_peak_rss_tree_load": round(ratio_load, 3),
                "goals": goals,
                "kill": kill_line(killed) if killed else None,
                "markdown": table,
                "text": "\n".join(lines),
            },
            indent=2,
        )
        + "\n"
    )
    print(f"written: {out.relative_to(ROOT)}")
    return 0


def _interrupt(signum, _frame):
    raise KeyboardInterrupt


if __name__ == "__main__":
    # Ctrl-C and SIGTERM both end the run through the `finally` that stops redline (its
    # own session, so we signal it) and nginx.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        sys.exit(main())
    except Fatal as exc:
        print(f"benchmarks/long_run.py: error: {exc}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print("benchmarks/long_run.py: interrupted; redline and nginx stopped, nothing written", file=sys.stderr)
        sys.exit(130)
