"""The CPU list syntax of Linux, libvirt and nova: "0-3,8,^2" means CPUs 0, 1, 3 and 8.

One parser for every place a CPU list is read: sysfs and procfs files, domain XML,
nova.conf, and the `--cpus` / `--reserve` options. Callers turn ValueError into their
own message, since only they know where the text came from.
"""

from __future__ import annotations

from collections.abc import Iterable


def parse_cpuset(spec: str) -> frozenset[int]:
    """The CPUs a list names; ranges are inclusive and ^N removes N. "" is the empty set.

    Raises ValueError on anything else (a word, a dangling "-", a space inside a number).
    """
    include: set[int] = set()
    exclude: set[int] = set()
    for part in (p.strip() for p in spec.split(",")):
        if not part:
            continue
        target = include
        if part.startswith("^"):
            target, part = exclude, part[1:]
        if "-" in part:
            lo, hi = part.split("-", 1)
            target.update(range(int(lo), int(hi) + 1))
        else:
            target.add(int(part))
    return frozenset(include - exclude)


def format_cpuset(cpus: Iterable[int]) -> str:
    """{0, 1, 2, 5} -> "0-2,5": the shortest list the parser reads back as the same set."""
    ordered = sorted(set(cpus))
    parts: list[str] = []
    i = 0
    while i < len(ordered):
        j = i
        while j + 1 < len(ordered) and ordered[j + 1] == ordered[j] + 1:
            j += 1
        parts.append(str(ordered[i]) if i == j else f"{ordered[i]}-{ordered[j]}")
        i = j + 1
    return ",".join(parts)
