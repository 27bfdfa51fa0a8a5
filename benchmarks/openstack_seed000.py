"""Seed 000's before/after through a real Nova: 8 instances at once on the OpenStack lab, with
the lab's defaults and with seed 000's reconfiguration (`--seed-000`), N storms each.

    python benchmarks/openstack_seed000.py [--repeats 3] [--count 8] [--results DIR]

Brings the lab up with each configuration in turn (down in between; ~2.5 min each), runs the
storms through `redline storm --driver openstack`, and prints one markdown table: per phase,
the median over the storms of each storm's median, and the totals, with the run folders.
Needs root and the lab's packages (`./dev setup`). Takes ~20 minutes on two CPUs.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

CONFIGS = (("defaults", []), ("seed 000", ["--seed-000"]))
# One knob group at a time (--config NAME=FLAGS): which knob moved which phase.

PHASES = ("create", "create: scheduling", "create: spawning", "ssh", "delete", "delete: deleting")


def redline(*args: str, timeout: float = 1200) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "redline", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)


def storm(count: int, results: Path) -> dict:
    proc = redline("storm", "--driver", "openstack", "--count", str(count), "--results", str(results), "--json")
    if proc.returncode not in (0, 1):
        raise SystemExit(f"storm failed: {proc.stderr.strip().splitlines()[-1:]}")
    out = json.loads(proc.stdout)
    return json.loads((Path(out["run_dir"]) / "run.json").read_text())


def medians(doc: dict) -> dict[str, float | None]:
    rows = {p["phase"]: p["median_s"] for p in doc["summary"]["phases"]}
    req = [i["requested"] for i in doc["instances"] if i["requested"] is not None]
    up = [i["ssh"] for i in doc["instances"] if i["ssh"] is not None]
    out: dict[str, float | None] = {p: rows.get(p) for p in PHASES}
    out["last guest up"] = max(up) - min(req) if up and len(up) == len(req) else None
    out["total"] = doc["summary"]["total_s"]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--count", type=int, default=8)
    ap.add_argument("--results", type=Path, default=Path("results/openstack-seed000"))
    ap.add_argument("--config", action="append", default=[],
                    help="NAME=FLAGS instead of defaults/seed 000, e.g. 'conductor=--conductor-workers 4' (repeatable)")  # fmt: skip
    a = ap.parse_args()
    configs = tuple((c.split("=", 1)[0], c.split("=", 1)[1].split()) for c in a.config) or CONFIGS
    table: dict[str, list[dict[str, float | None]]] = {}
    folders: dict[str, list[str]] = {}
    busiest: dict[str, list[str]] = {}
    for name, flags in configs:
        redline("lab", "openstack", "down", timeout=300)
        up = redline("lab", "openstack", "up", *flags)
        if up.returncode != 0:
            raise SystemExit(f"lab up ({name}) failed: {up.stderr.strip().splitlines()[-1:]}")
        print(f"{name}: lab up", file=sys.stderr)
        for r in range(a.repeats):
            doc = storm(a.count, a.results)
            table.setdefault(name, []).append(medians(doc))
            folders.setdefault(name, []).append(doc["run_id"])
            busiest.setdefault(name, []).append(
                ", ".join(f"{p['phase']}: {p['busiest']}" for p in doc["phase_cpu"] if p.get("busiest"))
            )
            print(f"{name}: storm {r + 1}/{a.repeats} {doc['status']} total {doc['summary']['total_s']:.1f} s",
                  file=sys.stderr)  # fmt: skip
    redline("lab", "openstack", "down", timeout=300)
    keys = [*PHASES, "last guest up", "total"]
    print(f"| phase (median of {a.repeats} storms' medians, s) | " + " | ".join(n for n, _ in configs) + " | change |")
    print("|---|" + "---:|" * (len(configs) + 1))
    for k in keys:
        vals = []
        for name, _ in configs:
            got = [m[k] for m in table[name] if m[k] is not None]
            vals.append(statistics.median(got) if got else None)
        change = f"{(vals[1] / vals[0] - 1) * 100:+.0f} %" if vals[0] and vals[1] is not None else "—"
        label = "guest up (console marker)" if k == "ssh" else k
        print(f"| {label} | " + " | ".join("—" if v is None else f"{v:.1f}" for v in vals) + f" | {change} |")
    for name, _ in configs:
        print(f"\n{name}: runs {', '.join(folders[name])}; busiest group per phase: {busiest[name][0]}")


if __name__ == "__main__":
    main()
