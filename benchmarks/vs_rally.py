#!/usr/bin/env python3
"""redline next to real Rally: the same target, the same core, the same offered rates.

Run from the repository root:

    .venv/bin/python benchmarks/vs_rally.py [--rates 10,20,40,80,160,320] [--duration 12]
        [--target reference|keystone]

It starts the target pinned to one core with a timing log (one line per request, the
server's view) — the reference identity service (`redline lab identity up`, one worker) or,
with --target keystone, real Keystone from PyPI under uWSGI with memcached (`redline lab
keystone up --processes 2 --cache memcached`), both with 4 users at bcrypt cost 4 —
creates a Rally "existing users" environment for it, and at each offered rate of
the ladder runs, pinned to the other core:

- Rally (PyPI rally-openstack, cached venv): `rally task start`, scenario
  Authenticate.keystone, rps runner (`rps` R, `times` R × duration);
- redline: `redline run --scenario keystone.issue --rate R --duration D --workers 1`.

Per tool and rate it prints: achieved rate, generator CPU per request (the tool's whole
process tree, sampled with psutil until it exits), p50/p99 as the tool reports them, the
start lag of Rally's iterations against its intended schedule (i / rps), the p99 counted
from the intended send time, and p50/p99 of POST /v3/auth/tokens as the server saw them.
The ladder stops one rate after the one where Rally first falls behind. The table also
goes to benchmarks/results/vs_rally-<UTC time>.json. See benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from engine import machine  # benchmarks/engine.py: the same machine facts in every result

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
USERS = 4
HASH_ROUNDS = 4
TOKENS_PATH = "/v3/auth/tokens"
BEHIND = 0.95  # achieved below this share of offered: the tool fell behind
SAMPLE_S = 0.1


class Fatal(Exception):
    """Ends the benchmark with one line on stderr."""


def say(msg: str) -> None:
    print(f"[{datetime.now(UTC):%H:%M:%S}] {msg}", file=sys.stderr, flush=True)


def _tail(text: str | None, n: int = 1) -> str:
    lines = [ln.strip() for ln in (text or "").splitlines() if ln.strip()]
    return " / ".join(lines[-n:]) if lines else "(no output)"


def _pin(cpu: int):
    def preexec() -> None:
        os.sched_setaffinity(0, {cpu})

    return preexec


def pct(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100); None for no values."""
    if not values:
        return None
    s = sorted(values)
    k = max(0, min(len(s) - 1, int(-(-q / 100 * len(s) // 1)) - 1))
    return s[k]


# --------------------------------------------------------------------------- process tree CPU


@dataclass
class TreeRun:
    """One command run to its end, with its process tree's CPU sampled over time."""

    returncode: int
    wall_start: float
    wall_end: float
    cpu_s: float  # the larger of the psutil sum and the kernel's rusage of the reaped tree
    cpu_psutil_s: float
    cpu_rusage_s: float
    series: list[tuple[float, float]]  # (wall time, tree CPU seconds so far)

    def cpu_between(self, t0: float, t1: float) -> float:
        """Tree CPU spent between two wall times, interpolated from the samples."""

        def at(t: float) -> float:
            pts = self.series
            if not pts or t <= pts[0][0]:
                return pts[0][1] if pts else 0.0
            for (ta, ca), (tb, cb) in itertools.pairwise(pts):
                if ta <= t <= tb:
                    return ca + (cb - ca) * ((t - ta) / (tb - ta) if tb > ta else 0.0)
            return pts[-1][1]

        return max(0.0, at(t1) - at(t0))


class Child:
    """The one tool process running now, so that Ctrl-C can end it and its children."""

    proc: subprocess.Popen | None = None

    @classmethod
    def kill(cls) -> None:
        p = cls.proc
        if p is not None and p.returncode is None:
            try:
                os.killpg(p.pid, signal.SIGKILL)
                os.waitpid(p.pid, 0)
            except (ProcessLookupError, ChildProcessError):
                pass
        cls.proc = None


def run_tree(cmd: list[str], cpu: int, out: Path, env: dict[str, str], timeout: float, cwd: Path) -> TreeRun:
    """Run `cmd` pinned to `cpu` (stdout+stderr to `out`), sampling its tree's CPU with psutil."""
    import psutil

    seen: dict[int, float] = {}  # pid -> last user+system seen (a child's last slice before it exits is lost)
    series: list[tuple[float, float]] = []
    with open(out, "wb") as f:
        wall_start = time.time()
        proc = subprocess.Popen(
            cmd, stdout=f, stderr=subprocess.STDOUT, env=env, cwd=cwd, preexec_fn=_pin(cpu), start_new_session=True
        )
    Child.proc = proc
    try:
        root = psutil.Process(proc.pid)
    except psutil.NoSuchProcess:
        root = None
    deadline = time.monotonic() + timeout
    rusage = None
    while True:
        pid, status, ru = os.wait4(proc.pid, os.WNOHANG)
        if pid == proc.pid:
            proc.returncode = os.waitstatus_to_exitcode(status)
            rusage = ru
            break
        if root is not None:
            try:
                procs = [root, *root.children(recursive=True)]
            except psutil.NoSuchProcess:
                procs = []
            for p in procs:
                try:
                    ct = p.cpu_times()
                    seen[p.pid] = ct.user + ct.system
                except psutil.NoSuchProcess:
                    pass
        series.append((time.time(), sum(seen.values())))
        if time.monotonic() > deadline:
            Child.kill()
            raise Fatal(f"{Path(cmd[0]).name} {' '.join(cmd[1:4])} took longer than {timeout:.0f} s")
        time.sleep(SAMPLE_S)
    wall_end = time.time()
    Child.proc = None
    cpu_ps = sum(seen.values())
    cpu_ru = rusage.ru_utime + rusage.ru_stime
    total = max(cpu_ps, cpu_ru)
    series.append((wall_end, total))
    return TreeRun(proc.returncode, wall_start, wall_end, total, cpu_ps, cpu_ru, series)


# --------------------------------------------------------------------------- the server's view


def _span_ns(parts: list[str], target: str) -> tuple[int, int]:
    """(received, written) in ns since the epoch from one timing-log line: the reference
    service writes `recv_ns sent_ns`, uWSGI (the Keystone lab) `start_us duration_us`."""
    if target == "keystone":
        recv = int(parts[0]) * 1000
        return recv, recv + int(parts[1]) * 1000
    return int(parts[0]), int(parts[1])


def server_view(log: Path, t0: float, t1: float, target: str) -> dict:
    """Lines of the timing log whose receive time falls in [t0, t1] (wall seconds)."""
    lo, hi = int(t0 * 1e9), int(t1 * 1e9)
    lat: list[float] = []
    total = posts = bad = 0
    by_kind: dict[str, int] = {}
    try:
        text = log.read_text()
    except OSError:
        text = ""
    for line in text.splitlines():
        parts = line.split(" ", 4)
        if len(parts) < 5:
            continue
        recv, sent = _span_ns(parts, target)
        if not lo <= recv <= hi:
            continue
        total += 1
        path = parts[4].split("?", 1)[0]
        kind = f"{parts[3]} {path}"
        by_kind[kind] = by_kind.get(kind, 0) + 1
        if not parts[2].startswith(("2", "3")):
            bad += 1
        if parts[3] == "POST" and path == TOKENS_PATH:
            posts += 1
            lat.append((sent - recv) / 1e6)
    return {
        "requests": total,
        "token_posts": posts,
        "non_2xx": bad,
        "by_kind": by_kind,
        "p50_ms": pct(lat, 50),
        "p99_ms": pct(lat, 99),
    }


# --------------------------------------------------------------------------- rows


@dataclass
class Row:
    tool: str
    offered_rps: float
    iterations: int  # successful iterations (Rally) / requests (redline)
    errors: int
    achieved_rps: float
    cpu_s: float  # whole process tree, start to exit
    load_cpu_s: float  # the same tree, during the load window only
    p50_ms: float | None  # as the tool reports it
    p99_ms: float | None
    lag_p99_ms: float | None  # Rally: iteration start − (t0 + i/rps); redline: schedule lag
    lag_max_ms: float | None
    intended_p99_ms: float | None  # latency counted from the intended start
    server: dict = field(default_factory=dict)
    window: tuple[float, float] = (0.0, 0.0)
    wall_s: float = 0.0
    notes: list[str] = field(default_factory=list)

    @property
    def cpu_ms(self) -> float | None:
        return self.cpu_s / self.iterations * 1e3 if self.iterations else None

    @property
    def load_cpu_ms(self) -> float | None:
        return self.load_cpu_s / self.iterations * 1e3 if self.iterations else None

    @property
    def server_per_iter(self) -> float | None:
        n = self.iterations + self.errors
        return self.server.get("requests", 0) / n if n else None

    @property
    def behind(self) -> bool:
        return self.achieved_rps < BEHIND * self.offered_rps

    def to_dict(self) -> dict:
        d = asdict(self)
        d.update(
            cpu_ms_per_iter=self.cpu_ms, load_cpu_ms_per_iter=self.load_cpu_ms, server_per_iter=self.server_per_iter
        )
        return d


class Bench:
    def __init__(self, args, tmp: Path, rally: Path, url: str, password: str, log: Path) -> None:
        self.args, self.tmp, self.rally, self.url, self.password, self.log = args, tmp, rally, url, password, log
        self.conf = tmp / "rally.conf"
        self.env = os.environ | {"OS_PASSWORD": password}
        self.env.pop("REDLINE_LAB_PASSWORD", None)

    # -- Rally --

    def rally_cmd(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
        try:
            proc = subprocess.run(
                [str(self.rally), "--config-file", str(self.conf), *args],
                capture_output=True,
                text=True,
                cwd=self.tmp,
                timeout=timeout,
                env=self.env,
            )
        except subprocess.TimeoutExpired:
            raise Fatal(f"rally {' '.join(args[:2])} took longer than {timeout:.0f} s") from None
        if proc.returncode != 0:
            # never echo stdout: `env create` prints the spec, password included
            raise Fatal(f"rally {' '.join(args[:2])} failed: {_tail(proc.stderr).replace(self.password, '***')}")
        return proc

    def rally_setup(self) -> None:
        self.conf.write_text(f"[database]\nconnection = sqlite:///{self.tmp / 'rally.sqlite'}\n")
        self.rally_cmd("db", "create")
        spec = self.tmp / "env.json"
        users = [
            {
                "username": f"bench-{i}",
                "password": self.password,
                "project_name": "bench",
                "user_domain_name": "Default",
                "project_domain_name": "Default",
            }
            for i in range(USERS)
        ]
        spec.write_text(json.dumps({"openstack": {"auth_url": self.url, "users": users}}))
        spec.chmod(0o600)
        self.rally_cmd("env", "create", "--name", "vs-redline", "--spec", str(spec))

    def rally_run(self, rate: float) -> Row:
        a = self.args
        times = round(rate * a.duration)
        task = self.tmp / f"task-{rate:g}.json"
        runner = {"type": "rps", "rps": rate, "times": times, "max_cpu_count": a.rally_processes}
        task.write_text(
            json.dumps({"Authenticate.keystone": [{"runner": runner, "sla": {"failure_rate": {"max": 100}}}]})
        )
        out = self.tmp / f"rally-{rate:g}.out"
        cmd = [str(self.rally), "--config-file", str(self.conf), "task", "start", "--env", "vs-redline", str(task)]
        run = run_tree(cmd, a.generator_cpu, out, self.env, timeout=a.duration * 15 + 120, cwd=self.tmp)
        text = out.read_text(errors="replace")
        m = re.search(r"Task ([0-9a-f-]{36})", text)
        if not m:
            raise Fatal(f"rally task start (rate {rate:g}) printed no task id (exit {run.returncode}): {_tail(text)}")
        report = self.tmp / f"rally-{rate:g}.json"
        self.rally_cmd("task", "report", "--uuid", m.group(1), "--json", "--out", str(report))
        tasks = json.loads(report.read_text())["tasks"]
        wl = tasks[0]["subtasks"][0]["workloads"][0]
        data = sorted(wl["data"], key=lambda it: it["timestamp"])
        ok = [it for it in data if not it["error"]]
        errors = len(data) - len(ok)
        if not data:
            raise Fatal(f"Rally ran no iteration at rate {rate:g} (task status {tasks[0]['status']})")
        t0 = data[0]["timestamp"]
        lags = [(it["timestamp"] - (t0 + i / rate)) * 1e3 for i, it in enumerate(data)]
        durations = [it["duration"] * 1e3 for it in ok]
        from_intended = [lag + it["duration"] * 1e3 for lag, it in zip(lags, data, strict=True) if not it["error"]]
        w0, w1 = t0, max(it["timestamp"] + (it["duration"] or 0) for it in data)
        load_s = wl["load_duration"] or (w1 - w0)
        row = Row(
            tool="Rally",
            offered_rps=rate,
            iterations=len(ok),
            errors=errors,
            achieved_rps=len(ok) / load_s if load_s else 0.0,
            cpu_s=run.cpu_s,
            load_cpu_s=run.cpu_between(w0, w1),
            p50_ms=pct(durations, 50),
            p99_ms=pct(durations, 99),
            lag_p99_ms=pct(lags, 99),
            lag_max_ms=max(lags),
            intended_p99_ms=pct(from_intended, 99),
            server=server_view(self.log, w0 - 0.05, w1 + 0.05, a.target),
            window=(w0, w1),
            wall_s=run.wall_end - run.wall_start,
        )
        if len(data) < times:
            row.notes.append(f"{times - len(data)} of {times} iterations not run (task status {tasks[0]['status']})")
        if errors:
            first = next(it["error"] for it in data if it["error"])
            row.notes.append(f"{errors} failed iterations, first: {str(first[:2])[:160]}")
        row.notes.append(f"psutil {run.cpu_psutil_s:.2f} s, rusage {run.cpu_rusage_s:.2f} s of tree CPU")
        return row

    # -- redline --

    def redline_run(self, rate: float) -> Row:
        import numpy as np

        a = self.args
        results = self.tmp / f"redline-{rate:g}"
        cmd = [
            sys.executable,
            "-m",
            "redline",
            "run",
            "--scenario",
            "keystone.issue",
            "--os-auth-url",
            self.url,
            "--os-username",
            "bench-0",
            "--os-project-name",
            "bench",
            "--os-user-domain-name",
            "Default",
            "--os-project-domain-name",
            "Default",
            "--users",
            f"bench-{{0..{USERS - 1}}}",
            "--users-project",
            "bench",
            "--rate",
            f"{rate:g}",
            "--duration",
            f"{a.duration:g}",
            "--workers",
            "1",
            "--cpus",
            str(a.generator_cpu),
            "--no-profile",
            "--json",
            "--results",
            str(results),
        ]
        out = self.tmp / f"redline-{rate:g}.out"
        run = run_tree(cmd, a.generator_cpu, out, self.env, timeout=a.duration * 10 + 120, cwd=self.tmp)
        text = out.read_text(errors="replace")
        try:
            doc = json.loads(text[text.index("{") :])
        except ValueError:
            raise Fatal(f"redline run (rate {rate:g}) failed (exit {run.returncode}): {_tail(text)}") from None
        s, h = doc["summary"], doc["health"]
        with np.load(Path(doc["run_dir"]) / "samples.npz") as z:
            _start, _from, mono, wall = (int(v) for v in z["clock"])
            intended, done = z["intended_ns"], z["done_ns"]
            w0 = (int(intended.min()) - mono + wall) / 1e9
            w1 = (int(done.max()) - mono + wall) / 1e9
        ok = int(s.get("outcomes", {}).get("ok", 0))
        errors = int(s.get("errors", 0)) + sum(v["count"] for v in (s.get("unsent") or {}).values())
        lat, lag = s.get("latency_ms") or {}, h.get("schedule_lag_ms") or {}
        row = Row(
            tool="redline",
            offered_rps=rate,
            iterations=ok,
            errors=errors,
            achieved_rps=float(s.get("achieved_rps") or 0.0),
            cpu_s=run.cpu_s,
            load_cpu_s=run.cpu_between(w0, w1),
            p50_ms=lat.get("p50"),
            p99_ms=lat.get("p99"),
            lag_p99_ms=lag.get("p99"),
            lag_max_ms=lag.get("max"),
            intended_p99_ms=lat.get("p99"),  # redline counts from the intended send time
            server=server_view(self.log, w0 - 0.05, w1 + 0.05, a.target),
            window=(w0, w1),
            wall_s=run.wall_end - run.wall_start,
        )
        svc = s.get("service_ms") or {}
        row.notes.append(f"service time (from the actual send) p50 {svc.get('p50')} / p99 {svc.get('p99')} ms")
        row.notes.append(f"psutil {run.cpu_psutil_s:.2f} s, rusage {run.cpu_rusage_s:.2f} s of tree CPU")
        if doc.get("status") != "complete":
            row.notes.append(f"status {doc.get('status')}")
        if h.get("generator_bound"):
            row.notes.append("generator_bound: " + "; ".join(h.get("reasons", [])))
        shutil.rmtree(results, ignore_errors=True)
        return row


# --------------------------------------------------------------------------- lab


class Lab:
    def __init__(self, args, tmp: Path, password: str) -> None:
        self.kind = "keystone" if args.target == "keystone" else "identity"
        self.state = tmp / self.kind
        self.log = tmp / "timing.log"
        self.args = args
        self.env = os.environ | {"REDLINE_LAB_PASSWORD": password}
        self.up_done = False

    def _redline(self, *args: str, timeout: float = 180) -> subprocess.CompletedProcess:
        try:
            return subprocess.run(
                [sys.executable, "-m", "redline", "lab", self.kind, *args],
                capture_output=True,
                text=True,
                env=self.env,
                timeout=timeout,
            )
        except subprocess.TimeoutExpired:
            raise Fatal(f"redline lab {self.kind} {args[0]} took longer than {timeout:.0f} s") from None

    def up(self) -> str:
        self.up_done = True
        if self.kind == "keystone":
            workers = ("--processes", str(self.args.keystone_processes), "--cache", "memcached")
        else:
            workers = ("--workers", "1")
        proc = self._redline(
            "up",
            "--port",
            "0",
            "--cpus",
            str(self.args.server_cpu),
            *workers,
            "--users",
            str(USERS),
            "--hash-rounds",
            str(HASH_ROUNDS),
            "--state-dir",
            str(self.state),
            "--timing-log",
            str(self.log),
            "--json",
            timeout=900,  # the first Keystone lab installs Keystone from PyPI
        )
        if proc.returncode != 0:
            raise Fatal(f"redline lab {self.kind} up failed: {_tail(proc.stderr or proc.stdout)}")
        return json.loads(proc.stdout)["url"]

    def down(self) -> None:
        if self.up_done:
            self._redline("down", "--state-dir", str(self.state))
            self.up_done = False


# --------------------------------------------------------------------------- output

COLUMNS = [
    ("offered/s", "right"),
    ("tool", "left"),
    ("achieved/s", "right"),
    ("errors", "right"),
    ("CPU-ms/iter (tree)", "right"),
    ("CPU-ms/iter (load)", "right"),
    ("tool p50 ms", "right"),
    ("tool p99 ms", "right"),
    ("start lag p99 / max ms", "right"),
    ("p99 from intended ms", "right"),
    ("server p50 ms", "right"),
    ("server p99 ms", "right"),
    ("server req/iter", "right"),
]


def _f(v: float | None, fmt: str = "{:.1f}") -> str:
    return "—" if v is None else fmt.format(v)


def _ms(v: float | None) -> str:
    if v is None:
        return "—"
    return f"{v:,.0f}" if abs(v) >= 100 else f"{v:.1f}" if abs(v) >= 10 else f"{v:.2f}"


def cells(r: Row) -> list[str]:
    return [
        f"{r.offered_rps:g}",
        r.tool,
        _f(r.achieved_rps) + (" ⚠" if r.behind else ""),
        str(r.errors),
        _f(r.cpu_ms, "{:.2f}"),
        _f(r.load_cpu_ms, "{:.2f}"),
        _ms(r.p50_ms),
        _ms(r.p99_ms),
        f"{_ms(r.lag_p99_ms)} / {_ms(r.lag_max_ms)}",
        _ms(r.intended_p99_ms),
        _ms(r.server.get("p50_ms")),
        _ms(r.server.get("p99_ms")),
        _f(r.server_per_iter, "{:.2f}"),
    ]


def markdown(rows: list[Row]) -> str:
    head = "| " + " | ".join(c for c, _ in COLUMNS) + " |"
    rule = "|" + "|".join("---" if j == "left" else "---:" for _, j in COLUMNS) + "|"
    return "\n".join([head, rule] + ["| " + " | ".join(cells(r)) + " |" for r in rows])


def render(title: str, rows: list[Row], footer: list[str]) -> None:
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:
        print(title)
        print(markdown(rows))
        for line in footer:
            print(line)
        return
    table = Table(title=title, header_style="bold", title_justify="left")
    for name, just in COLUMNS:
        table.add_column(name, justify=just)
    for i, r in enumerate(rows):
        table.add_row(*cells(r), end_section=i + 1 < len(rows) and rows[i + 1].offered_rps != r.offered_rps)
    console = Console(width=max(170, shutil.get_terminal_size((170, 40)).columns))
    console.print(table)
    for line in footer:
        console.print(line, highlight=False)


def findings(rows: list[Row]) -> list[str]:
    """Where Rally's achieved rate or its reported latency departs from the server's view."""
    out = []
    for r in rows:
        if r.tool != "Rally":
            continue
        srv = r.server.get("p99_ms")
        bits = []
        if r.behind:
            bits.append(f"achieved {r.achieved_rps:.1f}/s of {r.offered_rps:g}/s offered")
        if (r.lag_p99_ms or 0) > 100:
            bits.append(f"iterations started up to {r.lag_max_ms / 1e3:.1f} s late (p99 {r.lag_p99_ms / 1e3:.2f} s)")
        if r.intended_p99_ms and r.p99_ms and r.intended_p99_ms > 2 * r.p99_ms:
            bits.append(f"reported p99 {_ms(r.p99_ms)} ms vs {_ms(r.intended_p99_ms)} ms from the intended start")
        if srv and r.p99_ms and r.p99_ms > 3 * srv:
            bits.append(f"reported p99 {_ms(r.p99_ms)} ms vs server's {_ms(srv)} ms (time inside Rally)")
        out.append(f"Rally at {r.offered_rps:g}/s: " + ("; ".join(bits) if bits else "keeps up with the schedule"))
    return out


# --------------------------------------------------------------------------- main


def versions(vdir: Path) -> dict:
    import redline

    probe = "import importlib.metadata as m; print(m.version('rally'), m.version('rally-openstack'), m.version('keystoneauth1'))"
    out = subprocess.run([str(vdir / "bin" / "python"), "-c", probe], capture_output=True, text=True).stdout.split()
    v = {"redline": redline.__version__, "python": platform.python_version()}
    if len(out) == 3:
        v.update(rally=out[0], rally_openstack=out[1], keystoneauth1=out[2])
    return v


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--rates", default="10,20,40,80,160,320", help="offered rates, /s (default 10,20,40,80,160,320)")
    p.add_argument("--duration", type=float, default=12, help="seconds of load per run (default 12)")
    p.add_argument(
        "--beyond",
        type=int,
        default=1,
        help="rates still run after the first where Rally falls behind (default 1; -1: the whole ladder)",
    )
    p.add_argument(
        "--rally-processes",
        type=int,
        default=1,
        help="Rally's rps runner max_cpu_count: worker processes (default 1, one core; Rally's own default is "
        "the machine's CPU count, whatever the affinity)",
    )
    p.add_argument(
        "--target",
        choices=("reference", "keystone"),
        default="reference",
        help="reference: redline's reference identity service (1 worker); keystone: real Keystone (PyPI) "
        "under uWSGI with memcached (default reference)",
    )
    p.add_argument("--keystone-processes", type=int, default=2, help="uWSGI processes of --target keystone (default 2)")
    p.add_argument("--generator-cpu", type=int, default=0, help="core for both tools (default 0)")
    p.add_argument("--server-cpu", type=int, default=1, help="core for the target (default 1)")
    a = p.parse_args(argv)
    try:
        a.rate_list = [float(x) for x in a.rates.split(",") if x.strip()]
    except ValueError:
        p.error("--rates: comma-separated numbers")
    if a.keystone_processes < 1:
        p.error("--keystone-processes must be at least 1")
    if not a.rate_list or min(a.rate_list) <= 0 or a.duration < 2:
        p.error("--rates must be positive, --duration ≥ 2")
    return a


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if sys.platform != "linux":
        raise Fatal("this benchmark needs Linux (CPU pinning)")
    cpus = os.sched_getaffinity(0)
    if args.generator_cpu == args.server_cpu or not {args.generator_cpu, args.server_cpu} <= cpus:
        raise Fatal(f"need two different usable cores for the tools and the server; usable: {sorted(cpus)}")
    try:
        import numpy  # noqa: F401
        import psutil  # noqa: F401
    except ImportError as exc:
        raise Fatal(f"{exc.name} is not importable by {sys.executable}: run from redline's venv") from None

    from redline.errors import UserError
    from redline.lab import lab_venv

    say("Rally: the cached venv (rally-openstack from PyPI; installed on first use) ...")
    try:
        vdir = lab_venv.ensure("rally", ("rally-openstack",), on_line=lambda ln: None)
    except UserError as exc:
        raise Fatal(str(exc)) from None
    rally = vdir / "bin" / "rally"
    started = datetime.now(UTC)
    facts = {"started_utc": started.isoformat(timespec="seconds"), "machine": machine(), "versions": versions(vdir)}

    if args.target == "keystone":
        target = f"Keystone (uWSGI {args.keystone_processes} processes, memcached)"
    else:
        target = "reference identity service (1 worker)"
    facts["target"] = target
    tmp = Path(tempfile.mkdtemp(prefix="redline-vs-rally-"))
    password = "vs-rally-" + secrets.token_hex(8)
    lab = Lab(args, tmp, password)
    rows: list[Row] = []
    try:
        say(f"{target}: up, pinned to CPU {args.server_cpu}, {USERS} users, bcrypt cost {HASH_ROUNDS}")
        url = lab.up()
        bench = Bench(args, tmp, rally, url, password, lab.log)
        say(f"Rally: database and existing-users environment for {url}")
        bench.rally_setup()
        left = None
        for rate in args.rate_list:
            say(f"{rate:g}/s: Rally (rps runner, {round(rate * args.duration)} iterations) on CPU {args.generator_cpu}")
            r = bench.rally_run(rate)
            say(
                f"{rate:g}/s: Rally achieved {r.achieved_rps:.1f}/s, p99 {_ms(r.p99_ms)} ms, "
                f"start lag p99 {_ms(r.lag_p99_ms)} ms, server p99 {_ms(r.server.get('p99_ms'))} ms ({r.wall_s:.0f} s)"
            )
            rows.append(r)
            say(
                f"{rate:g}/s: redline run --scenario keystone.issue for {args.duration:g} s on CPU {args.generator_cpu}"
            )
            r2 = bench.redline_run(rate)
            say(
                f"{rate:g}/s: redline achieved {r2.achieved_rps:.1f}/s, p99 {_ms(r2.p99_ms)} ms, "
                f"server p99 {_ms(r2.server.get('p99_ms'))} ms ({r2.wall_s:.0f} s)"
            )
            rows.append(r2)
            if left is None and r.behind:
                left = args.beyond
                if left >= 0:
                    say(f"Rally fell behind at {rate:g}/s: {left} more rate(s)")
            elif left is not None and left > 0:
                left -= 1
            if left == 0:
                break
    finally:
        Child.kill()
        say(f"{target}: down; temp dir removed")
        lab.down()
        shutil.rmtree(tmp, ignore_errors=True)

    m = facts["machine"]
    m["loadavg_after"] = os.getloadavg()[0]
    v = facts["versions"]
    title = (
        f"redline vs Rally — {started:%Y-%m-%d %H:%M} UTC — {m['cpu_model']}, {m['cpus']} CPUs, Linux {m['kernel']}\n"
        f"Rally {v.get('rally', '?')} / rally-openstack {v.get('rally_openstack', '?')} "
        f"(keystoneauth1 {v.get('keystoneauth1', '?')}), redline {v['redline']}, Python {v['python']}; "
        f"both tools pinned to CPU {args.generator_cpu}, {target} (bcrypt cost {HASH_ROUNDS}) "
        f"to CPU {args.server_cpu}; {args.duration:g} s per run; Rally rps runner, "
        f"max_cpu_count {args.rally_processes}"
    )
    footer = [
        "CPU-ms/iter: tool's process tree CPU ÷ successful iterations (tree: start to exit; load: during the load only).",
        "start lag: Rally = iteration start − (first start + i/rps); redline = dispatch − intended send time.",
        "p99 from intended: Rally = start lag + duration per iteration (computed here); redline = its reported p99.",
        "server: POST /v3/auth/tokens, response written − request received, in the tool's load window; "
        "req/iter: all server requests in that window ÷ iterations.",
        f"⚠: achieved < {BEHIND:.0%} of offered.",
        *findings(rows),
        f"load average (1 min) before / after: {m['loadavg_before']:.2f} / {m['loadavg_after']:.2f}",
    ]
    for r in rows:
        for note in r.notes:
            footer.append(f"note ({r.tool}, {r.offered_rps:g}/s): {note}")
    render(title, rows, footer)

    RESULTS.mkdir(parents=True, exist_ok=True)
    kind = "-keystone" if args.target == "keystone" else ""
    out = RESULTS / f"vs_rally{kind}-{started:%Y%m%dT%H%M%SZ}.json"
    doc = {
        **facts,
        "options": {k: v for k, v in vars(args).items()},
        "rows": [r.to_dict() for r in rows],
        "findings": findings(rows),
        "markdown": markdown(rows),
    }
    out.write_text(json.dumps(doc, indent=2) + "\n")
    print(f"written: {out.relative_to(ROOT)}")
    return 0


def _interrupt(signum, _frame):
    raise KeyboardInterrupt


if __name__ == "__main__":
    # Ctrl-C and SIGTERM both end the run through the `finally` that stops the tool, the
    # target and removes the temp dir.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        sys.exit(main())
    except Fatal as exc:
        print(f"benchmarks/vs_rally.py: error: {exc}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print("benchmarks/vs_rally.py: interrupted; tool stopped, target down, nothing written", file=sys.stderr)
        sys.exit(130)
