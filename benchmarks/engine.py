#!/usr/bin/env python3
"""How much CPU does redline's engine spend per request, next to wrk and Locust?

Run from the repository root:

    .venv/bin/python benchmarks/engine.py [--duration 8] [--repeats 3] [--connections 32] [--skip-locust]

It starts Debian's nginx on loopback (installing nginx and wrk with apt-get when they
are missing), pins nginx to one core and every generator to another, and prints one
table from one run:

- the maximum of each generator, best of N: redline's engine (open loop, offered more
  than it can send, one worker), wrk (Debian, 1 thread) and Locust FastHttpUser
  (PyPI, headless, one process): requests/s on the wall clock, requests/s per core of
  generator CPU, CPU-µs per request;
- redline open loop at 25 / 50 / 75 % of its own maximum: achieved rate, schedule-lag
  p99 and the generator's CPU.

The table also goes to benchmarks/results/engine-<UTC time>.json. See
benchmarks/README.md for what each figure means and how it is measured.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PEERS = ROOT / "benchmarks" / ".peers"
RESULTS = ROOT / "benchmarks" / "results"
LOCUST_VENV = PEERS / "locust"

OPEN_LOOP_SHARES = (0.25, 0.50, 0.75)


class Fatal(Exception):
    """Ends the benchmark with one line on stderr."""


# --------------------------------------------------------------------------- helpers


def _tail(text: str | bytes | None, n: int = 1) -> str:
    if isinstance(text, bytes):
        text = text.decode(errors="replace")
    lines = [ln.strip() for ln in (text or "").splitlines() if ln.strip()]
    return " / ".join(lines[-n:]) if lines else "(no output)"


def _pin(cpu: int):
    def preexec() -> None:
        os.sched_setaffinity(0, {cpu})

    return preexec


def _children_cpu_s() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run_quiet(cmd: list[str], what: str, timeout: float = 900, **kw) -> subprocess.CompletedProcess:
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kw)
    except FileNotFoundError:
        raise Fatal(f"cannot {what}: {cmd[0]} not found") from None
    except subprocess.TimeoutExpired:
        raise Fatal(f"cannot {what}: {' '.join(cmd[:3])} took longer than {timeout:g} s") from None
    if proc.returncode != 0:
        raise Fatal(f"cannot {what}: {_tail(proc.stderr or proc.stdout)}")
    return proc


# --------------------------------------------------------------------------- tools


def find_nginx() -> str | None:
    return shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx",) if os.access(p, os.X_OK)), None)


def ensure_debian_tools() -> tuple[str, str]:
    nginx, wrk = find_nginx(), shutil.which("wrk")
    if nginx and wrk:
        return nginx, wrk
    missing = [name for name, path in (("nginx", nginx), ("wrk", wrk)) if not path]
    if os.geteuid() != 0:
        raise Fatal(f"{' and '.join(missing)} missing and not root: run `apt-get install -y nginx wrk` first")
    if not shutil.which("apt-get"):
        raise Fatal(f"{' and '.join(missing)} missing and apt-get not found (this benchmark expects Debian)")
    print(f"installing {' '.join(missing)} with apt-get ...", file=sys.stderr)
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    _run_quiet(["apt-get", "update", "-q"], "run apt-get update", env=env)
    _run_quiet(["apt-get", "install", "-y", "-q", "nginx", "wrk"], "install nginx and wrk with apt-get", env=env)
    nginx, wrk = find_nginx(), shutil.which("wrk")
    if not (nginx and wrk):
        raise Fatal("apt-get finished but nginx or wrk is still not on PATH")
    # Debian's package may start the system nginx; it listens on :80 and does not
    # disturb us, but it would take CPU: stop it if it is running.
    subprocess.run(["service", "nginx", "stop"], capture_output=True)
    return nginx, wrk


def ensure_locust() -> str:
    exe = LOCUST_VENV / "bin" / "locust"
    if exe.exists():
        return str(exe)
    print(f"installing locust into {LOCUST_VENV.relative_to(ROOT)} ...", file=sys.stderr)
    PEERS.mkdir(parents=True, exist_ok=True)
    _run_quiet([sys.executable, "-m", "venv", str(LOCUST_VENV)], "create the Locust venv")
    _run_quiet([str(LOCUST_VENV / "bin" / "python"), "-m", "pip", "install", "-q", "locust"], "install locust with pip")
    if not exe.exists():
        raise Fatal("pip installed locust but its `locust` command is missing")
    return str(exe)


def check_redline() -> str:
    proc = subprocess.run(
        [sys.executable, "-c", "import redline; print(redline.__version__)"], capture_output=True, text=True
    )
    if proc.returncode != 0:
        raise Fatal(f"redline is not importable by {sys.executable}: run `./dev` or `pip install -e .` first")
    return proc.stdout.strip()


def versions(nginx: str, wrk: str, locust: str | None, redline: str) -> dict:
    v = {"redline": redline, "python": platform.python_version()}
    v["nginx"] = _tail(subprocess.run([nginx, "-v"], capture_output=True, text=True).stderr).replace(
        "nginx version: ", ""
    )
    wrk_out = subprocess.run([wrk, "-v"], capture_output=True, text=True)
    v["wrk"] = ((wrk_out.stdout or wrk_out.stderr).splitlines() or ["?"])[0].split(" Copyright")[0]
    if locust:
        v["locust"] = _tail(subprocess.run([locust, "--version"], capture_output=True, text=True).stdout).split(
            " from "
        )[0]
    return v


def machine() -> dict:
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu_model": model,
        "cpus": os.cpu_count(),
        "kernel": platform.release(),
        "hostname": platform.node(),
        "loadavg_before": os.getloadavg()[0],
    }


# --------------------------------------------------------------------------- nginx

NGINX_CONF = """\
daemon off;
master_process on;
worker_processes 1;
worker_cpu_affinity {mask};
pid {tmp}/nginx.pid;
error_log {tmp}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    keepalive_requests 100000000;
    keepalive_timeout 300s;
    client_body_temp_path {tmp}/client_body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    server {{
        listen 127.0.0.1:{port};
        location / {{ return 200 "ok"; }}
    }}
}}
"""


class Nginx:
    """Debian's nginx with a private config, one worker pinned to `cpu`, in the foreground."""

    def __init__(self, exe: str, cpu: int, tmp: Path) -> None:
        self.exe, self.cpu, self.tmp = exe, cpu, tmp
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        conf = self.tmp / "nginx.conf"
        conf.write_text(NGINX_CONF.format(mask=format(1 << self.cpu, "b"), tmp=self.tmp, port=self.port))
        with open(self.tmp / "stderr.log", "wb") as log:  # the child keeps its own copy of the fd
            self.proc = subprocess.Popen(
                [self.exe, "-c", str(conf), "-p", str(self.tmp), "-e", str(self.tmp / "error.log")],
                stdout=log,
                stderr=log,
                preexec_fn=_pin(self.cpu),
                start_new_session=True,  # Ctrl-C reaches us; we stop nginx ourselves
            )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise Fatal(f"nginx exited at start: {self._log_tail()}")
            try:
                with urllib.request.urlopen(self.url, timeout=1) as r:
                    if r.status == 200 and r.read() == b"ok":
                        return
            except OSError:
                time.sleep(0.1)
        raise Fatal(f"nginx did not answer on {self.url} within 10 s: {self._log_tail()}")

    def _log_tail(self) -> str:
        texts = []
        for name in ("stderr.log", "error.log"):
            p = self.tmp / name
            if p.exists():
                texts.append(p.read_text(errors="replace"))
        return _tail("\n".join(texts))

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)  # fast shutdown: master and worker
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=5)


# --------------------------------------------------------------------------- measurements


@dataclass
class Row:
    tool: str
    mode: str
    offered_rps: float | None  # None: closed loop
    requests: int
    wall_s: float
    cpu_s: float
    lag_p99_ms: float | None = None
    latency_p99_ms: float | None = None
    errors: int = 0
    unsent: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def wall_rps(self) -> float:
        return self.requests / self.wall_s if self.wall_s > 0 else 0.0

    @property
    def per_core_rps(self) -> float:
        return self.requests / self.cpu_s if self.cpu_s > 0 else 0.0

    @property
    def cpu_us(self) -> float:
        return self.cpu_s / self.requests * 1e6 if self.requests else float("inf")

    @property
    def cpu_share(self) -> float:
        return self.cpu_s / self.wall_s if self.wall_s > 0 else 0.0

    def to_dict(self) -> dict:
        d = asdict(self)
        d.update(
            wall_rps=round(self.wall_rps, 1),
            per_core_rps=round(self.per_core_rps, 1),
            cpu_us_per_request=round(self.cpu_us, 3),
            cpu_share=round(self.cpu_share, 4),
        )
        return d


class Bench:
    def __init__(self, args, url: str, wrk: str, locust: str | None, tmp: Path) -> None:
        self.args, self.url, self.wrk, self.locust, self.tmp = args, url, wrk, locust, tmp
        self.gen_cpu = args.generator_cpu
        self.n = 0

    # -- redline --

    def redline(self, rate: float, mode: str, duration: int | None = None) -> Row:
        a = self.args
        cmd = [
            sys.executable,
            "-m",
            "redline",
            "run",
            "--url",
            self.url,
            "--rate",
            f"{rate:.0f}",
            "--duration",
            str(duration or a.duration),
            "--connections",
            str(a.connections),
            "--workers",
            "1",
            "--cpus",
            str(self.gen_cpu),
            "--timeout",
            "5",
            "--json",
            "--results",
            str(self.tmp / "redline-runs"),
        ]
        doc = None
        for attempt in (1, 2):
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=a.duration * 10 + 60)
            try:
                doc = json.loads(proc.stdout)
                break
            except json.JSONDecodeError:
                if attempt == 2:
                    raise Fatal(f"redline run failed (exit {proc.returncode}): {_tail(proc.stderr)}") from None
        shutil.rmtree(self.tmp / "redline-runs", ignore_errors=True)  # the samples are large; we keep the summary
        s, h = doc["summary"], doc["health"]
        outcomes = s.get("outcomes", {})
        ok = int(outcomes.get("ok", 0))
        workers = h["workers"]
        cpu_s = sum(w["cpu_s"] for w in workers)
        wall_s = max((w["cpu_s"] / w["cpu_share"] for w in workers if w["cpu_share"]), default=s["window_s"])
        row = Row(
            tool="redline",
            mode=mode,
            offered_rps=rate,
            requests=ok,
            wall_s=wall_s,
            cpu_s=cpu_s,
            lag_p99_ms=(h.get("schedule_lag_ms") or {}).get("p99"),
            latency_p99_ms=(s.get("latency_ms") or {}).get("p99"),
            errors=int(s.get("errors", 0)),
        )
        unsent = sum(v["count"] for v in (s.get("unsent") or {}).values())
        if unsent:
            row.notes.append(f"{unsent:,} not sent (offered more than it could send)")
        row.unsent = unsent
        if doc.get("status") not in ("complete", "completed", None):
            row.notes.append(f"status {doc.get('status')}")
        if h.get("generator_bound") and "% of max" in mode:
            row.notes.append("marked generator_bound: " + "; ".join(h.get("reasons", [])))
        return row

    # -- wrk --

    def wrk_run(self) -> Row:
        a = self.args
        cmd = [self.wrk, "-t1", f"-c{a.connections}", f"-d{a.duration}s", "--timeout", "5s", self.url]
        before = _children_cpu_s()
        try:
            proc = subprocess.run(
                cmd, capture_output=True, text=True, preexec_fn=_pin(self.gen_cpu), timeout=a.duration * 5 + 30
            )
        except subprocess.TimeoutExpired:
            raise Fatal("wrk did not finish in time") from None
        cpu = _children_cpu_s() - before
        out = proc.stdout
        m = re.search(r"(\d+) requests in ([\d.]+)(us|ms|s|m)\b", out)
        if proc.returncode != 0 or not m:
            raise Fatal(f"wrk failed (exit {proc.returncode}): {_tail(proc.stderr or out)}")
        unit = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0}[m.group(3)]
        row = Row("wrk", "max, closed loop, 1 thread", None, int(m.group(1)), float(m.group(2)) * unit, cpu)
        bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
        sock = re.search(r"Socket errors: (.*)", out)
        if bad:
            row.errors += int(bad.group(1))
            row.notes.append(f"{bad.group(1)} non-2xx")
        if sock:
            row.notes.append(f"socket errors: {sock.group(1).strip()}")
        return row

    # -- Locust --

    LOCUSTFILE = """\
import json, os, time
from locust import FastHttpUser, constant, events, task

_mark = {}


@events.test_start.add_listener
def _start(environment, **_):
    _mark["cpu"], _mark["t"] = time.process_time(), time.monotonic()


@events.test_stop.add_listener
def _stop(environment, **_):
    total = environment.stats.total
    with open(os.environ["REDLINE_BENCH_OUT"], "w") as f:
        json.dump({"cpu_s": time.process_time() - _mark["cpu"], "wall_s": time.monotonic() - _mark["t"],
                   "requests": total.num_requests, "failures": total.num_failures}, f)


class Bench(FastHttpUser):
    wait_time = constant(0)

    @task
    def get(self):
        self.client.get("/")
"""

    def locust_run(self) -> Row:
        a = self.args
        d = self.tmp / "locust"
        d.mkdir(exist_ok=True)
        lf = d / "locustfile.py"
        lf.write_text(self.LOCUSTFILE)
        out = d / "out.json"
        out.unlink(missing_ok=True)
        host = self.url.rstrip("/")
        cmd = [
            self.locust,
            "-f",
            str(lf),
            "--host",
            host,
            "--headless",
            "-u",
            str(a.connections),
            "-r",
            str(a.connections),
            "-t",
            f"{a.duration}s",
            "--only-summary",
            "--csv",
            str(d / "run"),
            "--loglevel",
            "WARNING",
        ]
        before = _children_cpu_s()
        try:
            proc = subprocess.run(
                cmd,
                capture_output=True,
                text=True,
                preexec_fn=_pin(self.gen_cpu),
                cwd=d,
                env=dict(os.environ, REDLINE_BENCH_OUT=str(out)),
                timeout=a.duration * 5 + 60,
            )
        except subprocess.TimeoutExpired:
            raise Fatal("locust did not finish in time") from None
        tree_cpu = _children_cpu_s() - before
        if not out.exists():
            raise Fatal(f"locust failed (exit {proc.returncode}): {_tail(proc.stderr or proc.stdout)}")
        r = json.loads(out.read_text())
        row = Row(
            "Locust", f"max, FastHttpUser, {a.connections} users", None, int(r["requests"]), r["wall_s"], r["cpu_s"]
        )
        row.errors = int(r["failures"])
        row.notes.append(f"whole process incl. start-up {tree_cpu:.2f} CPU-s")
        return row


# --------------------------------------------------------------------------- output


def _fmt(v, spec: str, none: str = "—") -> str:
    return none if v is None else format(v, spec)


COLUMNS = [
    ("generator", "left"),
    ("mode", "left"),
    ("offered/s", "right"),
    ("requests", "right"),
    ("wall req/s", "right"),
    ("gen CPU", "right"),
    ("req/s per core", "right"),
    ("CPU-µs/req", "right"),
    ("sched-lag p99", "right"),
]


def cells(row: Row) -> list[str]:
    return [
        row.tool,
        row.mode,
        _fmt(row.offered_rps, ",.0f", "closed loop"),
        f"{row.requests:,}",
        f"{row.wall_rps:,.0f}",
        f"{row.cpu_share:.0%}",
        f"{row.per_core_rps:,.0f}",
        f"{row.cpu_us:.1f}",
        _fmt(row.lag_p99_ms, ".3f") + (" ms" if row.lag_p99_ms is not None else ""),
    ]


def render(title: str, rows: list[Row], footer: list[str]) -> None:
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:
        print(title)
        print(" | ".join(c for c, _ in COLUMNS))
        for r in rows:
            print(" | ".join(cells(r)))
        for line in footer:
            print(line)
        return
    table = Table(title=title, header_style="bold", title_justify="left")
    for name, just in COLUMNS:
        table.add_column(name, justify=just)
    for i, r in enumerate(rows):
        table.add_row(*cells(r), end_section=i in _section_ends(rows))
    console = Console(width=max(150, shutil.get_terminal_size((150, 40)).columns))
    console.print(table)
    for line in footer:
        console.print(line, highlight=False)


def _section_ends(rows: list[Row]) -> set[int]:
    ends = set()
    for i in range(len(rows) - 1):
        if rows[i].mode.startswith("open loop") != rows[i + 1].mode.startswith("open loop"):
            ends.add(i)
    return ends


def markdown(rows: list[Row]) -> str:
    head = "| " + " | ".join(c for c, _ in COLUMNS) + " |"
    rule = "|" + "|".join("---" if j == "left" else "---:" for _, j in COLUMNS) + "|"
    return "\n".join([head, rule] + ["| " + " | ".join(cells(r)) + " |" for r in rows])


# --------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--duration", type=int, default=8, help="seconds per measurement (default 8)")
    p.add_argument(
        "--repeats", type=int, default=3, help="runs per generator for the maximum; the best counts (default 3)"
    )
    p.add_argument(
        "--connections", type=int, default=32, help="connections (wrk, redline's cap) and Locust users (default 32)"
    )
    p.add_argument("--skip-locust", action="store_true", help="leave Locust out (no PyPI access needed)")
    p.add_argument(
        "--flood-rate",
        type=float,
        default=300_000,
        help="rate offered to redline for its maximum, far above what it can send (default 300000/s)",
    )
    p.add_argument("--generator-cpu", type=int, default=0, help="core for every generator (default 0)")
    p.add_argument("--server-cpu", type=int, default=1, help="core for nginx (default 1)")
    a = p.parse_args(argv)
    if a.duration < 2 or a.repeats < 1 or a.connections < 1:
        p.error("--duration must be ≥ 2, --repeats and --connections ≥ 1")
    return a


def best(rows: list[Row]) -> Row:
    return max(rows, key=lambda r: r.per_core_rps)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if sys.platform != "linux":
        raise Fatal("this benchmark needs Linux (CPU pinning, Debian packages)")
    cpus = os.sched_getaffinity(0)
    if args.generator_cpu == args.server_cpu or not {args.generator_cpu, args.server_cpu} <= cpus:
        raise Fatal(f"need two different usable cores for generator and server; usable: {sorted(cpus)}")

    redline_version = check_redline()
    nginx_exe, wrk_exe = ensure_debian_tools()
    locust_exe = None if args.skip_locust else ensure_locust()
    started = datetime.now(UTC)
    facts = {
        "started_utc": started.isoformat(timespec="seconds"),
        "machine": machine(),
        "versions": versions(nginx_exe, wrk_exe, locust_exe, redline_version),
    }

    tmp = Path(tempfile.mkdtemp(prefix="redline-bench-"))
    server = Nginx(nginx_exe, args.server_cpu, tmp)
    try:
        server.start()
        bench = Bench(args, server.url, wrk_exe, locust_exe, tmp)
        say = lambda msg: print(msg, file=sys.stderr, flush=True)  # noqa: E731
        say(
            f"nginx on {server.url} pinned to CPU {args.server_cpu}; generators pinned to CPU {args.generator_cpu}; "
            f"{args.repeats} rounds of {args.duration} s per generator"
        )

        flood: list[Row] = []
        wrk: list[Row] = []
        locust: list[Row] = []
        # Rounds interleave the generators, so that a busy moment of the machine does
        # not fall on one generator only. redline is open loop: its maximum is what it
        # completes when offered far more than it can send, with a fixed connection cap.
        for k in range(1, args.repeats + 1):
            say(f"round {k}/{args.repeats}: redline, offered {args.flood_rate:,.0f}/s")
            flood.append(bench.redline(args.flood_rate, "max, open loop, over capacity"))
            say(f"round {k}/{args.repeats}: wrk")
            wrk.append(bench.wrk_run())
            if locust_exe:
                say(f"round {k}/{args.repeats}: Locust")
                locust.append(bench.locust_run())

        top_red = best(flood)
        max_rate = max(r.wall_rps for r in flood)
        table_rows = [top_red, best(wrk)] + ([best(locust)] if locust else [])
        for share in OPEN_LOOP_SHARES:
            rate = share * max_rate
            say(f"open loop at {share:.0%} of redline's max: {rate:,.0f}/s")
            row = bench.redline(rate, f"open loop, {share:.0%} of max")
            table_rows.append(row)
    finally:
        server.stop()
        shutil.rmtree(tmp, ignore_errors=True)

    w = best(wrk)
    ratios = {"redline_vs_wrk": top_red.per_core_rps / w.per_core_rps}
    if locust:
        ratios["redline_vs_locust"] = top_red.per_core_rps / best(locust).per_core_rps
    m = facts["machine"]
    m["loadavg_after"] = os.getloadavg()[0]
    title = (
        f"redline engine benchmark — {started:%Y-%m-%d %H:%M} UTC — {m['cpu_model']}, {m['cpus']} CPUs\n"
        f"nginx {facts['versions']['nginx']} (1 worker, return 200) pinned to CPU {args.server_cpu}; "
        f"every generator pinned to CPU {args.generator_cpu}; {args.connections} connections, {args.duration} s per run; "
        f"max rows: best of {args.repeats}; open-loop rates from redline's best wall req/s ({max_rate:,.0f}/s)"
    )
    footer = [
        "req/s per core = responses / generator CPU seconds; CPU-µs/req = its inverse; gen CPU = share of one core.",
        f"redline max ÷ wrk (per core): {ratios['redline_vs_wrk']:.2f} (goal ≥ 0.5: "
        f"{'met' if ratios['redline_vs_wrk'] >= 0.5 else 'NOT met'})",
    ]
    if "redline_vs_locust" in ratios:
        footer.append(
            f"redline max ÷ Locust FastHttpUser (per core): {ratios['redline_vs_locust']:.1f} (goal ≥ 3: "
            f"{'met' if ratios['redline_vs_locust'] >= 3 else 'NOT met'})"
        )
    footer.append(f"load average (1 min) before / after: {m['loadavg_before']:.2f} / {m['loadavg_after']:.2f}")
    for r in table_rows:
        for note in r.notes:
            footer.append(f"note ({r.tool}, {r.mode}): {note}")
    render(title, table_rows, footer)

    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"engine-{started:%Y%m%dT%H%M%SZ}.json"
    out.write_text(
        json.dumps(
            {
                **facts,
                "options": vars(args),
                "pinning": {"generator_cpu": args.generator_cpu, "server_cpu": args.server_cpu},
                "table": [r.to_dict() for r in table_rows],
                "ratios": {k: round(v, 3) for k, v in ratios.items()},
                "all_runs": {
                    "redline": [r.to_dict() for r in flood],
                    "wrk": [r.to_dict() for r in wrk],
                    "locust": [r.to_dict() for r in locust],
                },
                "markdown": markdown(table_rows),
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
    # Ctrl-C and SIGTERM both end the run through the `finally` that stops nginx (SIGINT
    # explicitly, as a shell may hand it to us ignored when started in the background).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        sys.exit(main())
    except Fatal as exc:
        print(f"benchmarks/engine.py: error: {exc}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print("benchmarks/engine.py: interrupted; nginx stopped, nothing written", file=sys.stderr)
        sys.exit(130)
