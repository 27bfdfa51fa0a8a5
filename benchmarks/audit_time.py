"""How long `redline audit` takes on this machine, next to libvirt's own host check.

Runs `redline audit --json` and `virt-host-validate qemu` (Debian libvirt-clients, when
present) five times each, interleaved, and prints a table of wall times. Goal (issue 6):
redline's audit of the live host in under 2 s.

    .venv/bin/python benchmarks/audit_time.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path


def _timed(cmd: list[str]) -> float:
    began = time.perf_counter()
    subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL, check=False)
    return time.perf_counter() - began


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    redline = str(Path(sys.executable).with_name("redline"))
    tools = {"redline audit --json": [redline, "audit", "--json"]}
    if shutil.which("virt-host-validate"):
        tools["virt-host-validate qemu"] = ["virt-host-validate", "qemu"]
    times: dict[str, list[float]] = {name: [] for name in tools}
    for _ in range(args.repeats):
        for name, cmd in tools.items():
            times[name].append(_timed(cmd))
    print("| tool | median s | min s | max s |")
    print("|---|---:|---:|---:|")
    for name, ts in times.items():
        print(f"| {name} | {statistics.median(ts):.2f} | {min(ts):.2f} | {max(ts):.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
