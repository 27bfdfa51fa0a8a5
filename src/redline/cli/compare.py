"""`redline compare RUN...`: one table and one HTML page across capacity runs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from redline.cli.app import app
from redline.cli.console import out_console
from redline.errors import UserError
from redline.report.compare import load_rows, rows_json, to_html
from redline.store.layout import COMPARE_HTML


@app.command("compare")
def compare_command(
    runs: list[Path] = typer.Argument(..., help="Capacity run folders, or study folders (their done cells)."),
    html_path: Optional[Path] = typer.Option(
        None, "--html", help="Where to write the HTML page (default: compare.html beside the first run)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the rows as JSON."),
) -> None:
    """Compare capacity runs: N, p50/p99 at N, target CPU per request, each target's configuration."""
    rows = load_rows(runs)
    out = html_path or (runs[0].parent / COMPARE_HTML)
    try:
        out.write_text(to_html(rows))
    except OSError as exc:
        raise UserError(f"cannot write {out}: {exc.strerror}") from None
    if as_json:
        print(json.dumps({"rows": rows_json(rows), "html": str(out)}, indent=2))
        return
    table = Table(title="capacity runs", header_style="bold")
    for col in ("scenario", "target", "N /s", "outcome", "p50 ms", "p99 ms", "CPU ms/req", "run"):
        table.add_column(col, justify="right" if col in ("N /s", "p50 ms", "p99 ms", "CPU ms/req") else "left")
    for r in rows:
        table.add_row(
            r.scenario, r.target, "—" if r.n is None else f"{r.n:g}", r.outcome,
            "—" if r.p50_ms is None else f"{r.p50_ms:.1f}", "—" if r.p99_ms is None else f"{r.p99_ms:.1f}",
            "—" if r.target_cpu_ms_per_request is None else f"{r.target_cpu_ms_per_request:.2f}", r.run,
        )  # fmt: skip
    out_console.print(table)
    out_console.print(f"report: {out}")
