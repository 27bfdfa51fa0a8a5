#!/usr/bin/env python3
"""Profile one redline load worker in-process with cProfile.

    .venv/bin/python benchmarks/profile_worker.py --url http://127.0.0.1:PORT/ --rate 25000 [--duration 5] [--cpu 0]

Runs the same `WorkerRun` a `redline run --workers 1` would spawn, but in this process
(no pipe to a parent: a dummy one), under cProfile, pinned to one core; prints the
top functions by own time and the CPU-µs per response. Start a target first, e.g.
the nginx that benchmarks/engine.py configures.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import time

import uvloop

from redline.load.request import RequestTemplate, Target
from redline.load.schedule import Schedule
from redline.load.worker import WorkerRun, WorkerSpec


class _NoPipe:
    def poll(self) -> bool:
        return False

    def send(self, _msg) -> None:
        pass


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--url", required=True)
    p.add_argument("--rate", type=float, required=True)
    p.add_argument("--duration", type=float, default=5.0)
    p.add_argument("--connections", type=int, default=32)
    p.add_argument("--cpu", type=int, default=0)
    p.add_argument("--top", type=int, default=18)
    a = p.parse_args()
    os.sched_setaffinity(0, {a.cpu})
    target = Target.from_url(a.url)
    payloads = RequestTemplate(method="GET", path="/", headers=(), body=b"").render(target)
    schedule = Schedule(rate=a.rate, duration_s=a.duration)
    spec = WorkerSpec(0, 1, schedule, int(a.duration * 1e9), payloads, target, a.connections, 5.0, 5.0, None)
    loop = uvloop.new_event_loop()
    run = WorkerRun(loop, spec, _NoPipe(), None, start_ns=time.monotonic_ns() + 200_000_000)
    prof = cProfile.Profile()
    cpu0 = time.process_time()
    prof.enable()
    loop.run_until_complete(run.main())
    prof.disable()
    cpu = time.process_time() - cpu0
    done = run.rec.answered
    print(
        f"offered {a.rate:,.0f}/s for {a.duration:g} s: {done:,} responses, {cpu:.2f} CPU-s "
        f"({cpu / done * 1e6:.1f} CPU-µs per response, under cProfile)"
    )
    pstats.Stats(prof).sort_stats("tottime").print_stats(a.top)


if __name__ == "__main__":
    main()
