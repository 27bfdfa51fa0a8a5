"""Public entry point: read a host, run every check, return an AuditReport."""

from __future__ import annotations

import os
import time

from redline.audit.registry import AuditParams, run_checks
from redline.audit.snapshot import collect
from redline.model.audit import AuditReport


def audit(root: str | os.PathLike[str] = "/", params: AuditParams = AuditParams()) -> AuditReport:
    start = time.perf_counter()
    snap = collect(root)
    findings = run_checks(snap, params)
    return AuditReport(root=snap.root, findings=findings, elapsed_s=time.perf_counter() - start)
