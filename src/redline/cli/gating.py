"""CI gating for `run` and `capacity`: --threshold and --junit, and the exit codes they add.

Exit codes: a broken threshold exits 99 (as k6 does), but never hides a worse one: bad input
(2), an unreachable target (3), a search without an answer (4, 5) or an interrupt (130/143)
are reported first. `run` with no successful request exits 1.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Optional, TypeVar

import typer

from redline.analysis.thresholds import ThresholdError, evaluate_capacity, evaluate_run, parse_thresholds
from redline.cli.console import out_console
from redline.errors import UserError
from redline.model.capacity import CapacityResult
from redline.model.run import RunResult
from redline.model.thresholds import Threshold, ThresholdReport
from redline.store import RunFolder

EXIT_THRESHOLDS = 99
EXIT_NO_SUCCESS = 1

D = TypeVar("D", RunResult, CapacityResult)


@dataclass(frozen=True)
class GatingOptions:
    """Pass/fail gates for CI."""

    threshold: Annotated[
        Optional[list[str]],
        typer.Option(
            "--threshold",
            help="Gate on a figure, e.g. 'p99<250ms', 'errors<0.1%', 'n>=500'; repeatable or comma-separated "
            "(docs/thresholds.md). A broken one exits 99.",
        ),
    ] = None
    junit: Annotated[
        Optional[Path], typer.Option("--junit", help="Also write the gates as a JUnit XML file (for CI).")
    ] = None

    def thresholds(self, command: str) -> tuple[Threshold, ...]:
        """Parsed before any load is offered: a typo costs no run."""
        try:
            parsed = parse_thresholds(self.threshold or (), command)
        except ThresholdError as exc:
            raise UserError(str(exc)) from None
        if self.junit is not None and not self.junit.parent.is_dir():
            raise UserError(f"--junit {str(self.junit)!r}: its folder does not exist")
        return parsed

    def judge(self, doc: D, thresholds: tuple[Threshold, ...], folder: RunFolder) -> D:
        """The result with its gates judged, stored in run.json, and the JUnit file written."""
        if thresholds:
            report: ThresholdReport = (
                evaluate_capacity(thresholds, doc) if isinstance(doc, CapacityResult) else evaluate_run(thresholds, doc)
            )
            doc = dataclasses.replace(doc, thresholds=report)
            folder.write(doc)
        if self.junit is not None:
            from redline.report.junit import result_junit, write_junit

            try:
                write_junit(self.junit, result_junit(doc, folder.path))
            except OSError as exc:
                raise UserError(f"cannot write --junit {str(self.junit)!r}: {exc.strerror}") from None
        return doc


def print_thresholds(report: ThresholdReport | None) -> None:
    if report is None or not report.checks:
        return
    for c in report.checks:
        mark = "[green]pass[/green]" if c.passed else "[red]BROKEN[/red]"
        out_console.print(f"threshold {mark} {c.reason}")


def no_success_line(doc: RunResult) -> str | None:
    """'no request succeeded: 2,000 errors (http 503 ×2,000)' when none did, else None."""
    s = doc.summary
    if s is None or s.outcomes.get("ok", 0) > 0 or s.scheduled == 0:
        return None
    causes: Counter[str] = Counter()
    for kind, count in s.outcomes.items():
        if kind == "ok" or kind.startswith("unsent"):
            continue
        if kind == "http" and s.status_codes:
            for code, n in s.status_codes.items():
                if not code.startswith(("2", "3")):
                    causes[f"HTTP {code}"] += n
        else:
            causes[kind.replace("_", " ")] += count
    for info in s.unsent.values():
        causes[f"not sent: {info.reason}"] += info.count
    why = ", ".join(f"{k} ×{n:,}" for k, n in causes.most_common())
    return f"no request succeeded: {s.errors:,} errors of {s.scheduled:,} requests ({why or 'none answered'})"


def exit_after_run(doc: RunResult, run_dir: Path) -> None:
    """After `publish` (which exits first for an interrupted or abandoned run)."""
    line = no_success_line(doc)
    if line is not None:
        raise UserError(f"{line}; the run folder is kept: {run_dir}", EXIT_NO_SUCCESS)
    _exit_if_broken(doc.thresholds)


def exit_after_capacity(doc: CapacityResult, search_code: int) -> None:
    """The search's own code when it has no answer (4, 5), else 99 for a broken gate."""
    if search_code == 0:
        _exit_if_broken(doc.thresholds)
    raise typer.Exit(search_code)


def _exit_if_broken(report: ThresholdReport | None) -> None:
    if report is not None and not report.passed:
        raise typer.Exit(EXIT_THRESHOLDS)
