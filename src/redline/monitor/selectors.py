"""Which processes make up a group (the target, the generator): re-resolved every tick.

Services fork and re-fork (uWSGI respawns workers, Apache scales its pool), so a group
is a rule, not a fixed list of pids.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Protocol

import psutil


class ProcessSelector(Protocol):
    def resolve(self) -> set[int]:
        """The pids that belong to the group right now (dead ones are simply absent)."""
        ...


@dataclass(frozen=True)
class PidTree:
    """A root process and all its descendants, e.g. a server started by the lab, plus the
    trees of `more` roots (its helpers: uWSGI behind nginx, memcached, a database)."""

    root: int
    more: tuple[int, ...] = ()

    def resolve(self) -> set[int]:
        out: set[int] = set()
        for root in (self.root, *self.more):
            try:
                proc = psutil.Process(root)
                out |= {root} | {c.pid for c in proc.children(recursive=True)}
            except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                pass
        return out


@dataclass(frozen=True)
class PidList:
    """Fixed pids, e.g. the load generator's worker processes."""

    members: tuple[int, ...]

    def resolve(self) -> set[int]:
        return {p for p in self.members if psutil.pid_exists(p)}


@dataclass(frozen=True)
class NamePattern:
    """Processes whose name or command line matches a regex (e.g. r"keystone|uwsgi").

    The monitoring process itself never matches: its own command line often names the
    target it is watching.
    """

    pattern: str
    _regex: re.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_regex", re.compile(self.pattern))

    def resolve(self) -> set[int]:
        me = os.getpid()
        out: set[int] = set()
        for proc in psutil.process_iter(["name", "cmdline"]):
            if proc.pid == me:
                continue
            name = proc.info.get("name") or ""
            cmd = " ".join(proc.info.get("cmdline") or ())
            if self._regex.search(name) or self._regex.search(cmd):
                out.add(proc.pid)
        return out
