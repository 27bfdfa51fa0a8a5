"""`redline audit`: read the host (or a snapshot under --root) and report tuning findings."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from redline.cli.app import app
from redline.errors import UserError


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
) -> None:
    """Check libvirt, host kernel, nova, keystone and neutron settings against seeds 000/002. Read-only."""
    from redline.audit import AuditParams, audit
    from redline.audit.render import to_html, to_json, to_text

    if not root.is_dir():
        raise UserError(f"--root {root} is not a directory")
    report = audit(root, AuditParams(parallel=parallel))
    if html is not None:
        try:
            html.write_text(to_html(report), encoding="utf-8")
        except OSError as exc:
            raise UserError(f"cannot write {html}: {exc.strerror}") from exc
    print(to_json(report) if json_out else to_text(report, verbose=verbose))
