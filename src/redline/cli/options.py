"""Parsing and display helpers shared by commands (no measurement logic here)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from rich.console import Console

from redline.errors import UserError
from redline.load.request import RequestTemplate, parse_header

err_console = Console(stderr=True)
# Piped output (CI logs, files) gets room for the result tables instead of rich's 80 columns.
out_console = Console(width=None if sys.stdout.isatty() else 140)


def parse_cpus(text: str | None) -> tuple[int, ...] | None:
    """'0,2-3' → (0, 2, 3); checked against the CPUs this process may use."""
    if not text:
        return None
    cpus: set[int] = set()
    try:
        for part in text.split(","):
            part = part.strip()
            if "-" in part:
                lo, hi = part.split("-", 1)
                cpus.update(range(int(lo), int(hi) + 1))
            elif part:
                cpus.add(int(part))
    except ValueError:
        raise UserError(f"bad CPU list {text!r}: expected e.g. 0,2-3") from None
    allowed = os.sched_getaffinity(0)
    if not cpus or not cpus <= allowed:
        raise UserError(f"CPU list {text!r} is not within the CPUs available here ({sorted(allowed)})")
    return tuple(sorted(cpus))


def read_body(body: str | None, body_file: Path | None) -> bytes:
    if body is not None and body_file is not None:
        raise UserError("give --body or --body-file, not both")
    if body_file is not None:
        try:
            return body_file.read_bytes()
        except OSError as exc:
            raise UserError(f"cannot read body file {str(body_file)!r}: {exc.strerror}") from None
    return body.encode() if body is not None else b""


def build_template(method: str, path: str, headers: list[str] | None, body: bytes) -> RequestTemplate:
    method = method.upper()
    if not method.isalpha():
        raise UserError(f"bad HTTP method {method!r}")
    return RequestTemplate(
        method=method,
        path=path or "/",
        headers=tuple(parse_header(h) for h in headers or ()),
        body=body,
    )


def positive(value: float, name: str) -> float:
    if not value > 0:
        raise UserError(f"{name} must be positive (got {value:g})")
    return value


def write_report(run_dir: Path) -> Path | None:
    """Write the run's HTML/PNG report; a failure to draw is a warning, never a lost run."""
    from redline.report import REPORT_HTML, write_reports

    try:
        write_reports(run_dir)
    except Exception as exc:  # the measurements are already safe on disk
        err_console.print(f"[yellow]warning: could not write the report: {exc}[/yellow]")
        return None
    return run_dir / REPORT_HTML


EXIT_INTERRUPTED = 130
EXIT_ABANDONED = 3


def publish(doc: dict, run_dir: Path, as_json: bool, json_doc: dict, print_human) -> None:
    """Write the report, print the result (JSON or tables), and exit as the status says.

    An interrupted run exits 130 and an abandoned one (target gone) 3, each saying where
    what was measured is kept.
    """
    report = write_report(run_dir)
    if as_json:
        print(json.dumps(json_doc | {"run_dir": str(run_dir), "report": str(report) if report else None}, indent=2))
    else:
        print_human(doc, run_dir)
        if report:
            out_console.print(f"report: {report}")
    if doc["status"] == "interrupted":
        print(f"redline: {doc['command']} interrupted; what was measured is in {run_dir}", file=sys.stderr)
        raise SystemExit(EXIT_INTERRUPTED)
    if doc["status"] == "abandoned":
        raise UserError(f"{doc['abandoned_because']}; what was measured is in {run_dir}", EXIT_ABANDONED)
