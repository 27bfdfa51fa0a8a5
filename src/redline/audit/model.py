"""The nouns of an audit: what was read, what a check concluded, and the change it proposes."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum


class Status(str, Enum):
    PASS = "pass"
    FAIL = "fail"
    SKIP = "skip"  # the check's input is absent: not applicable on this host


class Severity(str, Enum):
    INFO = "info"
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"

    @property
    def rank(self) -> int:
        return ["info", "low", "medium", "high"].index(self.value)


@dataclass(frozen=True)
class Evidence:
    """One value read from the host: where it came from and what it said."""

    path: str
    value: str


@dataclass(frozen=True)
class Change:
    """A host change that would make a failing check pass.

    kind "write": write `value` into the file at `path` (sysfs / procfs knobs).
    kind "conf": set `key = value` in the config file at `path`, in `section` for INI files
    (section None means a flat `key = value` file such as libvirtd.conf).
    """

    kind: str
    path: str
    value: str
    key: str | None = None
    section: str | None = None
    persist: str | None = None  # e.g. a sysctl name to persist in /etc/sysctl.d


@dataclass(frozen=True)
class Finding:
    """The verdict of one check.

    `id` is stable (e.g. "libvirt.max_workers") so reports can be compared and filtered.
    `why` explains the effect, `source` names where the advice comes from.
    """

    id: str
    title: str
    status: Status
    severity: Severity
    evidence: tuple[Evidence, ...] = ()
    why: str = ""
    source: str = ""
    fix: str = ""
    changes: tuple[Change, ...] = field(default=())

    @property
    def area(self) -> str:
        return self.id.split(".", 1)[0]

    def to_dict(self) -> dict[str, object]:
        return {
            "id": self.id,
            "title": self.title,
            "status": self.status.value,
            "severity": self.severity.value,
            "evidence": [{"path": e.path, "value": e.value} for e in self.evidence],
            "why": self.why,
            "source": self.source,
            "fix": self.fix,
            "changes": [
                {k: v for k, v in c.__dict__.items() if v is not None} for c in self.changes
            ],
        }


@dataclass(frozen=True)
class AuditReport:
    root: str
    findings: tuple[Finding, ...]
    elapsed_s: float

    def by_status(self, status: Status) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.status is status)

    def to_dict(self) -> dict[str, object]:
        return {
            "schema": "redline.audit/1",
            "root": self.root,
            "elapsed_s": round(self.elapsed_s, 3),
            "summary": {s.value: len(self.by_status(s)) for s in Status},
            "findings": [f.to_dict() for f in self.findings],
        }
