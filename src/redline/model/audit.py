"""The result of `redline audit`: every check's finding."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from redline.model.finding import Finding, Status


@dataclass(frozen=True)
class AuditReport:
    root: str
    findings: tuple[Finding, ...]
    elapsed_s: float

    def by_status(self, status: Status) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.status is status)

    def to_json(self) -> dict[str, Any]:
        return {
            "schema": "redline.audit/1",
            "root": self.root,
            "elapsed_s": round(self.elapsed_s, 3),
            "summary": {s.value: len(self.by_status(s)) for s in Status},
            "findings": [f.to_json() for f in self.findings],
        }
