"""What limits a measurement: the one paragraph a capacity search or a run ends with.

Derived by analysis.diagnosis from the decisive probes' findings (and, when the target was
profiled, its hot code), with the audit checks that match the target's configuration.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from redline.model.codec import JsonRecord


@dataclass(frozen=True)
class AuditLink(JsonRecord):
    """A failing audit check that bears on the limit (`redline audit` explains it in full)."""

    id: str
    title: str
    fix: str
    evidence: tuple[str, ...] = ()


@dataclass(frozen=True)
class Limit(JsonRecord):
    """What limited N (capacity) or the run (run).

    kind:      target_cpu, single_thread, generator, database, cache, io, memory, host_cpu,
               errors, latency_bound, headroom or unknown.
    headline:  one line for the terminal ("target CPU: its 1 CPU 93 % busy at N …").
    paragraph: the full explanation: the resource with its evidence, the hot code, the tuning.
    advice:    what to change, most effective first.
    finding:   the id of the finding the limit rests on; probe: the probe it was judged on.
    """

    kind: str
    headline: str
    paragraph: str
    evidence: tuple[str, ...] = ()
    advice: tuple[str, ...] = ()
    hot_code: str | None = None
    audit: tuple[AuditLink, ...] = ()
    finding: str | None = None
    probe: int | None = None
    figures: dict[str, Any] = field(default_factory=dict)
