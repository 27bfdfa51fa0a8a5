"""Where a target's Python processes spent their time while a probe ran: py-spy's samples,
summarised per function and per package.

Shares are fractions (0–1) of the samples that were not idle, so a package's self share
reads as "of the CPU the target's Python code used, this much was spent in it". The raw
collapsed stacks stay in the run folder (`file`); these tables are what run.json keeps.
"""

from __future__ import annotations

from dataclasses import dataclass

from redline.model.codec import JsonRecord

# Buckets that name no package one could act on: the interpreter (frozen modules, code of
# unknown origin), the standard library, and idle threads. A top package is never one of them.
NOT_A_PACKAGE = frozenset({"python", "python (stdlib)", "<idle>"})


@dataclass(frozen=True)
class FunctionShare(JsonRecord):
    """One function (a name in one file). self_share: samples with it as the leaf frame;
    total_share: samples with it anywhere on the stack, counted once per stack."""

    function: str
    file: str
    package: str
    self_share: float
    total_share: float


@dataclass(frozen=True)
class PackageShare(JsonRecord):
    """One package (see analysis.profile_stacks.package_of): self_share as the leaf frame's
    package, total_share with any of its frames on the stack."""

    package: str
    self_share: float
    total_share: float


@dataclass(frozen=True)
class ProfileSummary(JsonRecord):
    """A profile of the target during one probe.

    file: the raw collapsed stacks (gzip), relative to the run folder; flamegraph: the SVG,
    likewise, None when none was drawn. samples: the non-idle samples the shares are of.
    idle_share: idle samples over all samples, None when the stacks do not mark idle ones
    (py-spy's raw format does not). cpu_s: py-spy's own CPU seconds, what profiling cost.
    error: one sentence when profiling failed or was refused; the tables are then empty.
    """

    pids: tuple[int, ...]
    rate_hz: int
    duration_s: float
    samples: int
    idle_share: float | None
    file: str
    flamegraph: str | None
    top_self: tuple[FunctionShare, ...]
    top_total: tuple[FunctionShare, ...]
    packages: tuple[PackageShare, ...]
    error: str | None = None
    cpu_s: float | None = None

    @property
    def top_package(self) -> str | None:
        """The package with the highest self share, the interpreter, stdlib and idle aside."""
        ranked = sorted(
            (p for p in self.packages if p.package not in NOT_A_PACKAGE and p.self_share > 0),
            key=lambda p: -p.self_share,
        )
        return ranked[0].package if ranked else None

    def headline(self, n: int = 3) -> str:
        """The `n` packages with the highest self share in one line, e.g.
        "bcrypt 81 % self, sqlalchemy 9 %, keystone.assignment 4 %"."""
        if self.error is not None:
            return f"no profile: {self.error}"
        ranked = sorted((p for p in self.packages if p.package != "<idle>"), key=lambda p: -p.self_share)[:n]
        if not ranked or self.samples == 0:
            return "no samples"
        parts = [f"{p.package} {_pct(p.self_share)} %" for p in ranked]
        parts[0] += " self"
        return ", ".join(parts)


def _pct(share: float) -> str:
    pct = share * 100
    return f"{pct:.0f}" if pct >= 1 or pct == 0 else f"{pct:.1f}"
