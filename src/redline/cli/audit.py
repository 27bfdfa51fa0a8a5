"""`redline audit`: read the host (or a snapshot under --root) and report tuning findings."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from redline.cli.app import app
from redline.errors import UserError

# Distinct from 2 (bad input): the audit ran and found what --fail-on gates on.
EXIT_FINDINGS = 1
_FAIL_ON = ("info", "low", "medium", "high")


@app.command("audit")
def audit_command(
    root: Path = typer.Option(
        Path("/"), "--root", help="Audit a copy of a host's files under DIR instead of the live host."
    ),
    json_out: bool = typer.Option(False, "--json", help="Print the findings as JSON."),
    html: Optional[Path] = typer.Option(None, "--html", help="Also write a self-contained HTML report to this file."),
    parallel: int = typer.Option(
        40, "--parallel", min=1, help="Guests booted at once the host should handle (seed 000 used 40)."
    ),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Explain passing checks too."),
    junit: Optional[Path] = typer.Option(
        None, "--junit", help="Also write a JUnit XML file: one test case per check (for CI)."
    ),
    fail_on: Optional[str] = typer.Option(
        None,
        "--fail-on",
        help="Exit 1 when a check fails at this severity or above: info, low, medium or high "
        "(the JUnit cases fail the same way; without it, at high).",
    ),
) -> None:
    """Check libvirt, host kernel, nova, keystone and neutron settings against seeds 000/002. Read-only."""
    from redline.audit import AuditParams, audit
    from redline.audit.render import to_html, to_json, to_text
    from redline.model.finding import Severity, Status

    if not root.is_dir():
        raise UserError(f"--root {root} is not a directory")
    if fail_on is not None and fail_on not in _FAIL_ON:
        raise UserError(f"--fail-on must be one of {', '.join(_FAIL_ON)}, not {fail_on!r}")
    if junit is not None and not junit.parent.is_dir():
        raise UserError(f"--junit {str(junit)!r}: its folder does not exist")
    gate = Severity(fail_on or "high")
    report = audit(root, AuditParams(parallel=parallel))
    if html is not None:
        try:
            html.write_text(to_html(report), encoding="utf-8")
        except OSError as exc:
            raise UserError(f"cannot write {html}: {exc.strerror}") from exc
    print(to_json(report) if json_out else to_text(report, verbose=verbose))
    if junit is not None:
        from redline.report.junit import audit_junit, write_junit

        try:
            write_junit(junit, audit_junit(report, gate))
        except OSError as exc:
            raise UserError(f"cannot write --junit {str(junit)!r}: {exc.strerror}") from None
    if fail_on is not None:
        failing = [f for f in report.by_status(Status.FAIL) if f.severity.rank >= gate.rank]
        if failing:
            ids = ", ".join(f.id for f in failing[:5]) + (f" and {len(failing) - 5} more" if len(failing) > 5 else "")
            raise UserError(f"{len(failing)} check(s) failed at {fail_on} or above: {ids}", EXIT_FINDINGS)
