"""The results redline writes, as frozen typed values with a JSON form.

Nothing here does I/O: `redline.store` writes and reads them, `redline.report` renders
them, the use cases in `redline.jobs` return them.
"""

from redline.model.audit import AuditReport
from redline.model.capacity import CapacityResult, ProbeResult, SearchOutcome
from redline.model.codec import SchemaError
from redline.model.document import SCHEMA_VERSION, RunDocument, Tool
from redline.model.finding import Change, Evidence, Finding, Severity, Status
from redline.model.health import GeneratorHealth, WorkerStats
from redline.model.run import RunResult
from redline.model.samples import RequestOutcome, Samples
from redline.model.series import MonitorSeries, ProcessInfo
from redline.model.storm import (
    InstanceRecord,
    Interval,
    PhaseStats,
    ScaleFit,
    ScalePoint,
    ScaleResult,
    StormRunResult,
    StormSummary,
)
from redline.model.summary import RunSummary, Unsent
from redline.model.verdict import Verdict

__all__ = [
    "SCHEMA_VERSION",
    "AuditReport",
    "CapacityResult",
    "Change",
    "Evidence",
    "Finding",
    "GeneratorHealth",
    "InstanceRecord",
    "Interval",
    "MonitorSeries",
    "PhaseStats",
    "ProbeResult",
    "ProcessInfo",
    "RequestOutcome",
    "RunDocument",
    "RunResult",
    "RunSummary",
    "Samples",
    "ScaleFit",
    "ScalePoint",
    "ScaleResult",
    "SchemaError",
    "SearchOutcome",
    "Severity",
    "Status",
    "StormRunResult",
    "StormSummary",
    "Tool",
    "Unsent",
    "Verdict",
    "WorkerStats",
]
