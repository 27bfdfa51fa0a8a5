"""Quick-protocol N for keystone.issue (bcrypt cost 4) and keystone.validate on real
Keystone with cache none, real Keystone with memcached, and the reference identity
service — one run, one markdown table (the issue's closing note, docs/benchmarks.md).

The target (Keystone and memcached, or the reference service) is pinned to the last CPU
and the generator to the first, so N is what one core of target sustains; the table
shows the generator's own CPU share at N. Every search is bounded (timeout per search).

    .venv/bin/python benchmarks/keystone_n.py [--results DIR] [--server uwsgi]   (~15-20 min)
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RL = [sys.executable, "-m", "redline"]
SEARCH_TIMEOUT_S = 1200
# Where each search starts (requests/s): near the expected N, so few probes bracket it.
STARTS = {
    ("keystone-none", "keystone.issue"): 4,
    ("keystone-none", "keystone.validate"): 2,
    ("keystone-memcached", "keystone.issue"): 30,
    ("keystone-memcached", "keystone.validate"): 80,
    ("identity", "keystone.issue"): 200,
    ("identity", "keystone.validate"): 1000,
}


def sh(args: list[str], env: dict, timeout: float = 600) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        args, env=env, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL, cwd=ROOT
    )
    if proc.returncode != 0 and "capacity" not in args:
        sys.exit(f"{' '.join(args[2:])} failed: {proc.stderr.strip().splitlines()[-1:]}")
    return proc


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "?"


def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--results", type=Path, default=ROOT / "results" / "keystone-n")
    ap.add_argument("--server", default="uwsgi", help="Keystone's web server (lab keystone up --server)")
    args = ap.parse_args()
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        sys.exit("needs two CPUs: one for the target, one for the generator")
    gen, target = str(cpus[0]), str(cpus[-1])
    results = args.results.resolve()
    results.mkdir(parents=True, exist_ok=True)
    password = secrets.token_urlsafe(16)
    labdir = tempfile.mkdtemp(prefix="redline-keystone-n-")
    env = dict(os.environ, REDLINE_LAB_DIR=labdir, REDLINE_LAB_PASSWORD=password, OS_USERNAME="admin",
               OS_PASSWORD=password, OS_PROJECT_NAME="admin", OS_USER_DOMAIN_NAME="Default",
               OS_PROJECT_DOMAIN_NAME="Default")  # fmt: skip
    started = datetime.datetime.now(datetime.UTC)
    load_before = loadavg()
    runs: list[tuple[str, str, Path | None, float]] = []

    def search(label: str, scenario: str, url: str) -> None:
        t0 = time.monotonic()
        proc = sh(
            [*RL, "capacity", "--scenario", scenario, "--os-auth-url", url, "--users", "bench-{0..3}",
             "--users-project", "bench", "--token-pool", "20", "--protocol", "quick",
             "--start", str(STARTS[(label, scenario)]), "--cpus", gen, "--results", str(results),
             "--name", f"{label}-{scenario.split('.')[1]}", "--json"],
            env, SEARCH_TIMEOUT_S,
        )  # fmt: skip
        took = time.monotonic() - t0
        try:
            run_dir = Path(json.loads(proc.stdout)["run_dir"])
        except (ValueError, KeyError):
            print(f"{label} {scenario}: no result ({proc.stderr.strip().splitlines()[-1:]})", file=sys.stderr)
            run_dir = None
        runs.append((label, scenario, run_dir, took))
        print(f"{label} {scenario}: done in {took:.0f} s", file=sys.stderr)

    def state_url(kind: str) -> str:
        return json.loads((Path(labdir) / kind / "state.json").read_text())["url"]

    try:
        for cache in ("none", "memcached"):
            sh([*RL, "lab", "keystone", "up", "--server", args.server, "--cache", cache, "--cpus", target], env)
            for scenario in ("keystone.issue", "keystone.validate"):
                search(f"keystone-{cache}", scenario, state_url("keystone"))
            sh([*RL, "lab", "keystone", "down"], env)
        sh([*RL, "lab", "identity", "up", "--cpus", target, "--workers", "1", "--users", "4"], env)
        for scenario in ("keystone.issue", "keystone.validate"):
            search("identity", scenario, state_url("identity"))
        sh([*RL, "lab", "identity", "down"], env)
    finally:
        for kind in ("keystone", "identity"):
            subprocess.run([*RL, "lab", kind, "down"], env=env, capture_output=True, cwd=ROOT)

    done = [r for r in runs if r[2] is not None]
    cmp = sh([*RL, "compare", *(str(r[2]) for r in done), "--html", str(results / "compare.html"), "--json"], env)
    rows = {r["run"]: r for r in json.loads(cmp.stdout)["rows"]}
    names = {"keystone-none": f"Keystone 30, {args.server} 2×1, cache none", "keystone-memcached": f"Keystone 30, {args.server} 2×1, memcached",
             "identity": "reference identity service, 1 worker"}  # fmt: skip

    def num(v, fmt: str) -> str:
        return "—" if v is None else format(v, fmt)

    print(f"Keystone N, quick protocol — {started:%Y-%m-%d %H:%M} UTC, {platform.node()}: {cpu_model()}, "
          f"{os.cpu_count()} CPUs, Linux {platform.release()}, Python {platform.python_version()}")  # fmt: skip
    print(f"Target (server + memcached) pinned to CPU {target}, generator to CPU {gen}; SQLite, Fernet, bcrypt cost 4, "
          f"4 users, token pool 20. Load average before {load_before}, after {loadavg()}.\n")  # fmt: skip
    print(
        "| target | scenario | N (req/s) | outcome | p50 at N (ms) | p99 at N (ms) | target CPU ms/req | generator CPU | search time |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for label, scenario, run_dir, took in runs:
        r = rows.get(run_dir.name) if run_dir else None
        if r is None:
            print(f"| {names[label]} | {scenario} | — | failed | | | | | {took:.0f} s |")
            continue
        print(f"| {names[label]} | {scenario} | {num(r['n'], 'g')} | {r['outcome']} | {num(r['p50_ms'], '.1f')} | "
              f"{num(r['p99_ms'], '.1f')} | {num(r['target_cpu_ms_per_request'], '.2f')} | "
              f"{num(r['generator_cpu_pct'], '.0f')}% | {took:.0f} s |")  # fmt: skip
    print(f"\nrun folders: {results}; HTML: {results / 'compare.html'}")


if __name__ == "__main__":
    main()
