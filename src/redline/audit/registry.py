"""Checks register here; `run_checks` turns each one's CheckOutcome into a Finding."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from redline.audit.snapshot import Snapshot
from redline.model.finding import Change, Evidence, Finding, Severity, Status


@dataclass(frozen=True)
class AuditParams:
    """What the audit measures against. `parallel` is the number of guests booted at once that
    the host should handle without queueing (seed 000 used 40)."""

    parallel: int = 40


@dataclass(frozen=True)
class CheckOutcome:
    status: Status
    evidence: tuple[Evidence, ...]
    why: str
    fix: str = ""
    severity: Severity = Severity.INFO
    changes: tuple[Change, ...] = ()


CheckFn = Callable[[Snapshot, AuditParams], CheckOutcome]


@dataclass(frozen=True)
class Check:
    id: str
    title: str
    source: str
    run: CheckFn


REGISTRY: list[Check] = []


def check(id: str, title: str, source: str) -> Callable[[CheckFn], CheckFn]:
    def register(fn: CheckFn) -> CheckFn:
        if any(c.id == id for c in REGISTRY):
            raise ValueError(f"duplicate check id {id}")
        REGISTRY.append(Check(id, title, source, fn))
        return fn

    return register


def ev(path: str, value: object) -> Evidence:
    return Evidence(path, str(value))


def ok(why: str, *evidence: Evidence) -> CheckOutcome:
    return CheckOutcome(Status.PASS, tuple(evidence), why)


def bad(severity: Severity, why: str, fix: str, *evidence: Evidence, changes: tuple[Change, ...] = ()) -> CheckOutcome:
    return CheckOutcome(Status.FAIL, tuple(evidence), why, fix, severity, changes)


def skip(why: str, *evidence: Evidence) -> CheckOutcome:
    return CheckOutcome(Status.SKIP, tuple(evidence), why)


def run_checks(snap: Snapshot, params: AuditParams = AuditParams()) -> tuple[Finding, ...]:
    # Importing the areas fills REGISTRY; done here so that importing the model stays cheap.
    from redline.audit import (
        host,  # noqa: F401
        keystone,  # noqa: F401
        libvirt,  # noqa: F401
        neutron,  # noqa: F401
        nova,  # noqa: F401
    )

    findings = []
    for c in REGISTRY:
        out = c.run(snap, params)
        findings.append(
            Finding(
                id=c.id,
                title=c.title,
                status=out.status,
                severity=out.severity if out.status is Status.FAIL else Severity.INFO,
                evidence=out.evidence,
                why=out.why,
                source=c.source,
                fix=out.fix,
                changes=out.changes,
            )
        )
    return tuple(findings)
