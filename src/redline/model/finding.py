"""One `Finding` for every conclusion redline draws: an audit check's verdict and a
measurement's diagnosis share a shape, so a report, a compare table or a JUnit file reads
them alike."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from redline.model.codec import JsonRecord, SchemaError


class Status(str, Enum):
    PASS = "pass"
    FAIL = "fail"
    SKIP = "skip"  # the check's input is absent: not applicable on this host

    def __str__(self) -> str:
        return self.value


class Severity(str, Enum):
    INFO = "info"
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"

    def __str__(self) -> str:
        return self.value

    @property
    def rank(self) -> int:
        return ["info", "low", "medium", "high"].index(self.value)


@dataclass(frozen=True)
class Evidence:
    """One fact behind a finding: a value read at `path` (audit), or a sentence with its
    figures (measurement; `path` empty). Written as a plain string when it has no path, so
    measurement findings keep their sentence lists."""

    path: str
    value: str

    @classmethod
    def say(cls, sentence: str) -> Evidence:
        return cls("", sentence)

    @property
    def text(self) -> str:
        return f"{self.path}: {self.value}" if self.path else self.value

    def __str__(self) -> str:
        return self.text


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
class Finding(JsonRecord):
    """What a check or a measurement concluded.

    `id` is stable (e.g. "libvirt.max_workers", "bottleneck.single_thread") so reports can be
    compared and filtered; `why` explains the effect, `fix` what to change, `source` where the
    advice comes from; `figures` holds the raw numbers (JSON-able); `changes` the host edits
    that would make a failing audit check pass.
    """

    id: str
    title: str
    severity: Severity
    status: Status = Status.FAIL
    evidence: tuple[Evidence, ...] = ()
    why: str = ""
    fix: str = ""
    source: str = ""
    figures: dict[str, Any] = field(default_factory=dict)
    changes: tuple[Change, ...] = ()

    @property
    def area(self) -> str:
        return self.id.split(".", 1)[0]

    def _json_out(self, d: dict[str, Any]) -> dict[str, Any]:
        d["evidence"] = [e.value if not e.path else {"path": e.path, "value": e.value} for e in self.evidence]
        d["changes"] = [{k: v for k, v in c.items() if v is not None} for c in d["changes"]]
        return d

    @classmethod
    def _json_in(cls, d: dict[str, Any]) -> dict[str, Any]:
        ev = d.get("evidence")
        if isinstance(ev, list):
            d = dict(d)
            d["evidence"] = [{"path": "", "value": e} if isinstance(e, str) else e for e in ev]
        if "severity" in d and not isinstance(d["severity"], str):
            raise SchemaError(f"severity must be a string, got {d['severity']!r}")
        return d
