"""Named capacity-search protocols: trial lengths, search policy and verdict criterion."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from redline.analysis.degradation import Criterion, PaperCriterion, RobustCriterion
from redline.analysis.search import SearchConfig


@dataclass(frozen=True)
class SearchProtocol:
    name: str
    short_warmup_s: float  # bracketing and bisection trials
    short_window_s: float
    full_warmup_s: float  # confirmation trials
    full_window_s: float
    search: SearchConfig
    criterion: Criterion
    description: str

    def trial(self, full: bool) -> tuple[float, float]:
        """(warm-up, window) of a trial."""
        if full:
            return self.full_warmup_s, self.full_window_s
        return self.short_warmup_s, self.short_window_s

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "short_warmup_s": self.short_warmup_s,
            "short_window_s": self.short_window_s,
            "full_warmup_s": self.full_warmup_s,
            "full_window_s": self.full_window_s,
            "description": self.description,
        }


PROTOCOLS: dict[str, SearchProtocol] = {
    p.name: p
    for p in (
        SearchProtocol(
            "quick", 2, 8, 2, 12,
            SearchConfig(start_rate=100, resolution_rel=0.02),
            RobustCriterion(),
            "demos and CI: 8 s trials while searching, 12 s to confirm, 2 % resolution",
        ),
        SearchProtocol(
            "thorough", 10, 30, 30, 120,
            SearchConfig(start_rate=100, resolution_rel=0.01),
            RobustCriterion(),
            "30 s trials while searching, 2 min to confirm, 1 % resolution",
        ),
        SearchProtocol(
            "paper", 10, 50, 60, 300,
            SearchConfig(min_rate=1, max_rate=200, resolution_abs=1, resolution_rel=0, full_after_contradiction=False),
            PaperCriterion(),
            "the Keystone study (seed 003): bisect 1..200 in steps of 1; N and N+1 confirmed with "
            "60 s warm-up + 300 s window under the study's rule (errors, slope a < 0.01)",
        ),
    )
}  # fmt: skip


def criterion_named(name: str, slo_p99_ms: float | None = None) -> Criterion:
    if name == "paper":
        return PaperCriterion()
    if name == "robust":
        return RobustCriterion(slo_p99_ms=slo_p99_ms)
    raise ValueError(f"unknown criterion {name!r} (robust or paper)")


def customised(
    protocol: SearchProtocol,
    criterion: str | None = None,
    min_rate: float | None = None,
    max_rate: float | None = None,
    start_rate: float | None = None,
    resolution: str | None = None,
    slo_p99_ms: float | None = None,
) -> SearchProtocol:
    """The protocol with the user's overrides; resolution is '5' (requests/s) or '2%'."""
    search = protocol.search
    if min_rate is not None or max_rate is not None:
        search = replace(search, min_rate=min_rate, max_rate=max_rate)
    if start_rate is not None:
        search = replace(search, start_rate=start_rate)
    if resolution is not None:
        text = resolution.strip()
        try:
            if text.endswith("%"):
                search = replace(search, resolution_rel=float(text[:-1]) / 100, resolution_abs=0.0)
            else:
                search = replace(search, resolution_abs=float(text), resolution_rel=0.0)
        except ValueError:
            raise ValueError(f"bad resolution {resolution!r}: give requests/s (5) or a percentage (2%)") from None
    crit = protocol.criterion
    if criterion is not None or slo_p99_ms is not None:
        crit = criterion_named(criterion or crit.name, slo_p99_ms)
    return replace(protocol, search=replace(search), criterion=crit)
