"""Where a storm's time went: the host's CPU by process group during each phase.

Written into a storm's run.json (`phase_cpu`) beside the findings drawn from it, so a
report or a comparison reads the figures without the monitor's arrays.
"""

from __future__ import annotations

from dataclasses import dataclass

from redline.model.codec import JsonRecord

# The share of the host busy that no monitored group accounts for: other processes on the
# machine (another benchmark, the kernel's own threads) — named, so it is never hidden.
OTHER = "other"


@dataclass(frozen=True)
class PhaseCpu(JsonRecord):
    """The host's CPU over one phase's window, in cores (1.0 = one CPU fully busy).

    The window runs from the first instance entering the phase to the last one leaving it,
    in seconds since the storm started; windows of different phases overlap when instances
    are in different phases at once, and the CPU of the overlap counts in each of them.
    `groups` holds each monitor group's mean cores plus "other" (host busy minus the
    groups); a process in several groups counts once, in the most specific one (a qemu
    forked by libvirtd is qemu; the driver's tree only keeps what no other group claims).
    """

    phase: str
    start_s: float
    end_s: float
    groups: dict[str, float]  # group -> mean cores over the window, OTHER included
    idle_cores: float
    busiest: str  # the group (or OTHER) with the most cores
    cpus: int = 0  # the host's CPUs, so idle_cores reads as "0.9 of 2"
    mean_waiting: float = 0.0  # instances in this phase, averaged over the window
    saturated_share: float = 0.0  # share of the window the host's CPUs were saturated (≥ 90 % busy)
    label: str = ""  # what a human reads for the phase when the driver names it otherwise ("guest up …")

    @property
    def title(self) -> str:
        return self.label or self.phase

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s

    @property
    def busy_cores(self) -> float:
        """The host's busy cores (what is not idle; the groups' sum can exceed it by a hair,
        as the host's and the processes' counters are read a few ms apart)."""
        return self.cpus - self.idle_cores if self.cpus else sum(self.groups.values())
