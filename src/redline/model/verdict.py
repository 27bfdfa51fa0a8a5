"""The judgement of one probe (made by analysis.degradation, stored in run.json)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from redline.model.codec import JsonRecord

State = Literal["stable", "degraded", "inconclusive"]


@dataclass(frozen=True)
class Verdict(JsonRecord):
    """reasons: sentences a reviewer can check, each with its figures, failures first.
    figures: every number the judgement used (JSON-serialisable)."""

    state: State
    criterion: str
    reasons: tuple[str, ...]
    figures: dict[str, Any] = field(default_factory=dict)

    @property
    def stable(self) -> bool:
        return self.state == "stable"

    @property
    def degraded(self) -> bool:
        return self.state == "degraded"

    @property
    def inconclusive(self) -> bool:
        return self.state == "inconclusive"
