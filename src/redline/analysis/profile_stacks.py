"""Collapsed stacks (py-spy's raw format) turned into shares per function and per package.

A line of py-spy 0.4 `record --format raw --subprocesses --full-filenames --function` is

    process 41:"uwsgi …";process 57:"uwsgi …";<module> (/x/app.py:1);hash (/x/site-packages/bcrypt/__init__.py:79) 12

root → leaf, frames separated by ";", the sample count last. The leading `process PID:"cmdline"`
frames are the process and its ancestors up to the profiled root (a forked worker sits under
its master); they are stripped here, so the same code in several workers adds up.

py-spy's raw output does not mark idle samples: without `--idle` they are simply absent, with
it they look like any other stack. A stack whose leaf frame is IDLE_FRAME is taken for idle
(a marker other tools or a caller may write); otherwise idle_share is None.
"""

from __future__ import annotations

import re
import sys
from collections import Counter
from collections.abc import Iterable, Mapping

from redline.model.profile import FunctionShare, PackageShare, ProfileSummary

Stack = tuple[str, ...]

IDLE_FRAME = "<idle>"
STDLIB = "python (stdlib)"
INTERPRETER = "python"  # frozen modules, <string>, code of unknown origin

# Packages big enough that their top level says little: "keystone" is all of Keystone, while
# keystone.assignment vs keystone.token tells which subsystem is busy.
TWO_LEVEL = frozenset({"keystone", "nova", "glance", "neutron", "placement", "cinder", "redline"})

# `process 123:"cmdline";` — the cmdline is quoted but not escaped, and may hold ";"
# (bash -c 'a; b'), so the frame ends at the first `";`, not at the first ";".
_PROCESS = re.compile(r'process (\d+):"(.*?)";')
_FRAME = re.compile(r"^(?P<function>.*) \((?P<file>.*):(?P<line>\d+)\)$")
_STDLIB_DIR = re.compile(r"(^|/)lib(64)?/python\d+(\.\d+)?t?/")
_SITE = ("site-packages", "dist-packages")


def parse_collapsed(text: str) -> dict[Stack, int]:
    """Stack (root → leaf, process frames stripped) → samples; equal stacks of different
    processes are summed. Lines that are not `frames COUNT` are skipped."""
    return _parse(text)[0]


def sampled_pids(text: str) -> tuple[int, ...]:
    """The processes that have samples in `text` (each line's innermost process frame)."""
    return tuple(sorted(_parse(text)[1]))


def _parse(text: str) -> tuple[dict[Stack, int], set[int]]:
    stacks: Counter[Stack] = Counter()
    pids: set[int] = set()
    for raw in text.splitlines():
        line = raw.rstrip()
        head, sep, count = line.rpartition(" ")
        if not sep or not count.isdigit():
            continue
        pos = 0
        while m := _PROCESS.match(head, pos):
            pids.add(int(m.group(1)))
            pos = m.end()
        rest = head[pos:]
        if rest.startswith("process ") and rest.endswith('"'):
            continue  # a process frame and nothing under it: no Python frame was read
        frames = tuple(f for f in rest.split(";") if f)
        if frames:
            stacks[frames] += int(count)
    return dict(stacks), pids


def split_frame(frame: str) -> tuple[str, str]:
    """(function, file) of a frame `function (file:line)`; a frame without a location (a
    marker such as IDLE_FRAME) is its own function with file ""."""
    m = _FRAME.match(frame)
    if m is None:
        return frame, ""
    return m.group("function"), m.group("file")


def package_of(file: str) -> str:
    """The package a source file belongs to.

    …/site-packages/<pkg>/… (or dist-packages) → pkg, with two levels for TWO_LEVEL packages
    and oslo_* (keystone.assignment, oslo_db.sqlalchemy, redline.identity), also where they
    are checked out rather than installed (/opt/stack/keystone/keystone/…); the standard
    library (…/lib/python3.X/…) → "python (stdlib)"; `<frozen …>`, `<string>` and anything
    else → "python". A relative path (py-spy without --full-filenames) is read as a path
    under site-packages unless its top module is in the standard library.
    """
    if not file or file.startswith("<"):
        return INTERPRETER
    path = file.replace("\\", "/")
    parts = [p for p in path.split("/") if p and p != "."]
    if not parts:
        return INTERPRETER
    for i in range(len(parts) - 1, -1, -1):
        if parts[i] in _SITE:
            rest = [p for p in parts[i + 1 :] if not p.endswith((".egg", ".egg-link"))]
            return _named(rest) if rest else INTERPRETER
    # The last directory named like a big package: a source checkout (devstack) or this project.
    for i in range(len(parts) - 2, -1, -1):
        if _two_level(parts[i]):
            return _named(parts[i:])
    if _STDLIB_DIR.search(path if path.startswith("/") else "/" + path):
        return STDLIB
    if not path.startswith("/"):
        return STDLIB if _module(parts[0]) in sys.stdlib_module_names else _named(parts)
    return INTERPRETER


def _two_level(name: str) -> bool:
    return name in TWO_LEVEL or name.startswith("oslo_")


def _module(name: str) -> str:
    """A path part as a module name: `core.py` → core, `_speedups.cpython-311-x86_64-linux-gnu.so` → _speedups."""
    return name.split(".", 1)[0]


def _named(rest: list[str]) -> str:
    top = _module(rest[0])
    if len(rest) < 2 or not _two_level(top):
        return top
    second = _module(rest[1])
    return top if second == "__init__" else f"{top}.{second}"


def summarise(
    stacks: Mapping[Stack, int],
    pids: Iterable[int],
    rate_hz: int,
    duration_s: float,
    file: str,
    flamegraph: str | None,
    top: int = 15,
    cpu_s: float | None = None,
    error: str | None = None,
) -> ProfileSummary:
    """Self and total shares per function and per package, of all samples not idle.

    Self: the leaf frame. Total: the frame anywhere on the stack, once per stack, so a
    recursive function is not counted twice and no total exceeds 1. `top` rows are kept in
    each table (functions by self share, functions by total share, packages by self share).
    Given an `error` (profiling failed or was refused), the stacks are ignored: the summary
    carries the sentence and empty tables.
    """
    if error is not None:
        stacks = {}
    idle = sum(n for s, n in stacks.items() if s and s[-1] == IDLE_FRAME)
    busy = {s: n for s, n in stacks.items() if s and s[-1] != IDLE_FRAME and n > 0}
    samples = sum(busy.values())
    fn_self: Counter[tuple[str, str]] = Counter()
    fn_total: Counter[tuple[str, str]] = Counter()
    pkg_self: Counter[str] = Counter()
    pkg_total: Counter[str] = Counter()
    # Each distinct frame and file is parsed once: a deep framework repeats them in every stack.
    packages: dict[str, str] = {}
    parsed: dict[str, tuple[str, str]] = {}

    def package(f: str) -> str:
        got = packages.get(f)
        if got is None:
            got = packages[f] = package_of(f)
        return got

    def frame(f: str) -> tuple[str, str]:
        got = parsed.get(f)
        if got is None:
            got = parsed[f] = split_frame(f)
        return got

    for stack, n in busy.items():
        frames = [frame(f) for f in stack]
        fn_self[frames[-1]] += n
        pkg_self[package(frames[-1][1])] += n
        for fn in set(frames):
            fn_total[fn] += n
        for p in {package(f) for _, f in frames}:
            pkg_total[p] += n

    def share(n: int) -> float:
        return round(n / samples, 4) if samples else 0.0

    def row(fn: tuple[str, str]) -> FunctionShare:
        return FunctionShare(fn[0], fn[1], package(fn[1]), share(fn_self[fn]), share(fn_total[fn]))

    # Ties are broken by name so that the same stacks always give the same tables.
    by_self = sorted(fn_self, key=lambda fn: (-fn_self[fn], -fn_total[fn], fn))[:top]
    by_total = sorted(fn_total, key=lambda fn: (-fn_total[fn], -fn_self[fn], fn))[:top]
    by_pkg = sorted(pkg_total, key=lambda p: (-pkg_self[p], -pkg_total[p], p))[:top]
    return ProfileSummary(
        pids=tuple(sorted(set(pids))),
        rate_hz=rate_hz,
        duration_s=round(duration_s, 2),
        samples=samples,
        idle_share=round(idle / (idle + samples), 4) if idle and idle + samples else None,
        file=file,
        flamegraph=flamegraph,
        top_self=tuple(row(fn) for fn in by_self),
        top_total=tuple(row(fn) for fn in by_total),
        packages=tuple(PackageShare(p, share(pkg_self[p]), share(pkg_total[p])) for p in by_pkg),
        error=error,
        cpu_s=None if cpu_s is None else round(cpu_s, 3),
    )
