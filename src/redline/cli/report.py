"""`redline report RUN_DIR`: (re)write a run folder's HTML report and PNG charts."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import typer

from redline.cli.app import app
from redline.cli.console import err_console, out_console


@app.command("report")
def report_command(
    run_dir: Path = typer.Argument(..., help="A run folder (holds run.json), e.g. results/20260101T120000Z-capacity-…"),
    open_png: bool = typer.Option(
        False, "--open-png", help="Open the PNG charts in the desktop's image viewer (xdg-open)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the files written and the notes as JSON."),
) -> None:
    """Write report.html (self-contained, no network needed) and png/*.png into a run folder."""
    # Imported here: plotly and matplotlib would slow every other command's start.
    from redline.report import write_any_report

    paths, notes = write_any_report(run_dir)
    for note in notes:
        err_console.print(f"[yellow]note:[/yellow] {note}")
    if as_json:
        print(json.dumps({"run_dir": str(run_dir), "files": [str(p) for p in paths], "notes": list(notes)}, indent=2))
    else:
        for p in paths:
            out_console.print(str(p))
    if open_png:
        _open([p for p in paths if p.suffix == ".png"])


def _open(pngs: list[Path]) -> None:
    viewer = shutil.which("xdg-open")
    if viewer is None:
        err_console.print("note: no image viewer (xdg-open) on this host; the PNGs are listed above")
        return
    for p in pngs:
        # Detached: the viewer outlives this command, and its chatter is not ours to print.
        subprocess.Popen([viewer, str(p)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
