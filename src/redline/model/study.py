"""A study: cells (a lab configuration × a job × a repeat), what became of each, and the
effect of each factor across them. Written as `study.json` in the study folder."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from redline.model.codec import JsonRecord

TARGETS = ("keystone", "identity", "hypervisor", "url")
COMMANDS = ("capacity", "run", "storm", "scale")
# What a cell's status means: pending (not started), running (started; a study that finds
# one on resume was killed during it), done, failed (the lab or the job failed: the study
# went on), interrupted (Ctrl-C or SIGTERM: re-run on resume).
STATUSES = ("pending", "running", "done", "failed", "interrupted")


@dataclass(frozen=True)
class CellPlan(JsonRecord):
    """One configuration to measure: the lab options and job options that make it."""

    id: str  # "03-r1": ordinal and repeat, the cell's folder name
    label: str  # what a human reads: "database=mariadb server=apache" or a variant's name
    target: str  # one of TARGETS
    factors: dict[str, Any]  # the matrix coordinates (empty for a named variant)
    lab: dict[str, Any]  # options of `redline lab TARGET up` (without the dashes)
    command: str  # one of COMMANDS
    options: dict[str, Any]  # options of `redline COMMAND`
    repeat: int = 1
    variant: str | None = None  # a named variant's name


@dataclass(frozen=True)
class CellRecord(JsonRecord):
    """What happened to a cell: its status, why it failed, where its run folder is."""

    id: str
    status: str = "pending"
    attempts: int = 0
    reason: str | None = None  # a failed or interrupted cell's one line
    run_dir: str | None = None  # relative to the study folder
    started_utc: str | None = None
    duration_s: float | None = None
    exit_code: int | None = None
    commands: tuple[tuple[str, ...], ...] = ()  # the command lines it ran (no secrets: those go by env)
    # The lab's state directory while the cell runs, outside the study folder (it holds
    # keys and database passwords): a resumed study brings a killed cell's lab down by it.
    lab_state: str | None = None


@dataclass(frozen=True)
class StudyState(JsonRecord):
    name: str
    file: str  # the study file it was made from (absolute path at the first start)
    plan_digest: str  # of the normalised plan: a resumed study must be the same study
    cells: tuple[CellPlan, ...]
    records: tuple[CellRecord, ...]
    started_utc: str = ""
    resumed: tuple[str, ...] = ()  # UTC times the study was started again

    def record(self, cell_id: str) -> CellRecord:
        return next(r for r in self.records if r.id == cell_id)


@dataclass(frozen=True)
class Effect(JsonRecord):
    """A factor's level against the factor's first level, as a ratio of the metric.

    `ratio` is the geometric mean over matched pairs (cells equal in every other factor,
    repeats averaged on a log scale); the interval is Student's t on the log ratios of the
    pairs — or, with one pair and repeats, Welch's on the repeats — at `confidence`."""

    factor: str
    level: str
    baseline: str
    metric: str
    ratio: float
    low: float | None = None
    high: float | None = None
    pairs: int = 0
    confidence: float = 0.95
    note: str = ""

    def text(self) -> str:
        if not math.isfinite(self.ratio):
            return f"{self.factor}={self.level} vs {self.baseline}: {self.note or 'not measured'}"
        pct = (self.ratio - 1) * 100
        head = f"{self.factor}={self.level} vs {self.baseline}: {self.metric} {pct:+.0f} %"
        if self.low is None or self.high is None:
            return f"{head} ({self.note or 'no interval'})"
        return f"{head} [{(self.low - 1) * 100:+.0f}, {(self.high - 1) * 100:+.0f}] ({self.pairs} pairs)"


@dataclass(frozen=True)
class CellFigures(JsonRecord):
    """The figures of a done cell, read from its run folder."""

    id: str
    metric: str  # "N /s", "p99 ms", "create median s"
    value: float | None
    p50_ms: float | None = None
    p99_ms: float | None = None
    target_cpu_ms_per_request: float | None = None
    limit: str | None = None  # the limiting resource or finding, when diagnosed
    phases: dict[str, float | None] = field(default_factory=dict)  # storm: phase -> median s
