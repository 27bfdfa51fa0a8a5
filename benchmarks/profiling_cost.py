"""What profiling the target with py-spy costs N, and how much CPU py-spy itself takes.

Searches of the reference identity service with and without `CapacityRequest.profile`,
alternated, on one target.

The target is the embedded one (`redline.embedded_target("identity")`: the reference
identity service on the last CPU, keystone.issue at bcrypt cost 4), the generator and
py-spy on the others, so py-spy's CPU is the generator's, as in `redline capacity
--profile`. The order alternates over the repeats (without, with; with, without; …) so a
busy moment of a shared machine, or the service warming up, does not fall on one arm only.
Prints one markdown table: N without, N with, their ratio, and py-spy's CPU seconds per
profiled probe (and per second of profile, the share of a core it took).

    .venv/bin/python benchmarks/profiling_cost.py [--repeats 2] [--protocol quick] [--results DIR]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import redline


def search(req: Any, desc: dict[str, Any], results: Path, name: str) -> dict[str, Any]:
    began = time.monotonic()
    outcome = redline.run_capacity(req, desc, results, name)
    result = outcome.result
    profiles = [p.profile for p in result.probes if getattr(p, "profile", None) is not None]
    costs = [p.cpu_s for p in profiles if p.cpu_s is not None]
    seconds = [p.duration_s for p in profiles if p.cpu_s is not None]
    errors = sorted({p.error for p in profiles if p.error})
    state = result.outcome.state if result.outcome else outcome.status
    n = result.outcome.n if result.outcome and state == "found" else None
    print(
        f"{name}: N={n} ({state}) in {time.monotonic() - began:.0f} s, {len(profiles)} profiled probes"
        + (f", py-spy {sum(costs):.2f} CPU-s over {sum(seconds):.0f} s" if costs else "")
        + (f"; profile errors: {'; '.join(errors)}" if errors else ""),
        file=sys.stderr,
    )
    return {"n": n, "state": state, "cpu_s": costs, "profile_s": seconds, "folder": str(outcome.folder.path)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=2, help="searches per arm (default 2)")
    ap.add_argument("--protocol", default="quick", choices=sorted(redline.PROTOCOLS))
    ap.add_argument("--results", type=Path, default=None, help="where the run folders go (default: a temp dir)")
    args = ap.parse_args()
    results = args.results or Path(tempfile.mkdtemp(prefix="redline-profiling-cost-"))
    results.mkdir(parents=True, exist_ok=True)
    load_before = os.getloadavg()
    rows: list[tuple[int, dict[str, Any], dict[str, Any]]] = []
    with redline.embedded_target("identity") as t:
        assert t.choice is not None
        scenario = t.choice.scenario
        print(t.banner, file=sys.stderr)
        base = redline.CapacityRequest(
            redline.Target.from_url(t.url),
            scenario.request(60.0),
            redline.PROTOCOLS[args.protocol],
            cpus=t.generator_cpus,
            target_processes=t.processes,
            request_for=scenario.request,
        )
        if hasattr(base, "profile"):
            profiled = dataclasses.replace(base, profile=True)
        else:
            print("CapacityRequest has no `profile` field yet: both arms run unprofiled", file=sys.stderr)
            profiled = base
        for r in range(args.repeats):
            arms = [False, True] if r % 2 == 0 else [True, False]
            got: dict[bool, dict[str, Any]] = {}
            for with_profile in arms:
                name = f"profiling-cost-{r}-{'with' if with_profile else 'without'}"
                got[with_profile] = search(profiled if with_profile else base, t.description, results, name)
            rows.append((r, got[False], got[True]))
    load_after = os.getloadavg()

    def fmt(n: float | None) -> str:
        return "–" if n is None else f"{n:g}"

    print(f"\n{args.protocol} protocol, keystone.issue on the reference identity service; run folders in {results}")
    print("\n| repeat | N without | N with | with / without | py-spy CPU-s per probe | py-spy share of a core |")
    print("|---:|---:|---:|---:|---:|---:|")
    for r, without, with_ in rows:
        ratio = with_["n"] / without["n"] if with_["n"] and without["n"] else None
        costs, secs = with_["cpu_s"], with_["profile_s"]
        per_probe = f"{statistics.mean(costs):.3f}" if costs else "–"
        share = f"{sum(costs) / sum(secs) * 100:.1f} %" if costs and sum(secs) else "–"
        print(
            f"| {r} | {fmt(without['n'])} | {fmt(with_['n'])} | {'–' if ratio is None else f'{ratio:.3f}'} "
            f"| {per_probe} | {share} |"
        )
    n_without = [w["n"] for _, w, _ in rows if w["n"]]
    n_with = [w["n"] for _, _, w in rows if w["n"]]
    if n_without and n_with:
        print(
            f"\nmedian N without {statistics.median(n_without):g}, with {statistics.median(n_with):g}: "
            f"ratio {statistics.median(n_with) / statistics.median(n_without):.3f}"
        )
    print(f"load average before {load_before[0]:.2f}, after {load_after[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
