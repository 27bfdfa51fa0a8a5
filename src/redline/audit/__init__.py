"""Tuning audit: read a host (or a snapshot under a root) and judge it against seeds 000/002."""

from redline.audit.registry import AuditParams
from redline.audit.runner import audit
from redline.model.audit import AuditReport
from redline.model.finding import Change, Evidence, Finding, Severity, Status

__all__ = ["AuditParams", "AuditReport", "Change", "Evidence", "Finding", "Severity", "Status", "audit"]
