"""`redline import rally TASK` and `redline export rally RUN_DIR`: Rally's task files in, its task results out."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from redline.atomic import write_text
from redline.cli.app import app
from redline.cli.console import err_console, out_console
from redline.errors import UserError
from redline.interop.rally_results import rally_results
from redline.interop.rally_task import translate_task
from redline.store import RunFolder

import_app = typer.Typer(help="Translate another tool's files into redline commands.", no_args_is_help=True)
export_app = typer.Typer(help="Write a redline run in another tool's result format.", no_args_is_help=True)
app.add_typer(import_app, name="import")
app.add_typer(export_app, name="export")


@import_app.command("rally")
def import_rally(
    task: Path = typer.Argument(..., help="A Rally task file (JSON or YAML, format v1 or v2; not a Jinja2 template)."),
    as_json: bool = typer.Option(False, "--json", help="Print the translations as JSON."),
) -> None:
    """Print the redline command equivalent to each workload of a Rally task, and what cannot map."""
    try:
        text = task.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"cannot read {task}: {getattr(exc, 'strerror', None) or exc}") from None
    translations = translate_task(text, str(task))
    if as_json:
        print(json.dumps([t.to_json() for t in translations], indent=2))
    else:
        for t in translations:
            out_console.print(f"# {t.scenario} (subtask {t.subtask}, workload {t.workload})", highlight=False)
            out_console.print(t.command or "# no redline equivalent", highlight=False, soft_wrap=True)
            for note in t.notes:
                out_console.print(f"#   note: {note}", highlight=False, soft_wrap=True)
            for item in t.unmapped:
                out_console.print(f"#   not mapped: {item}", highlight=False, soft_wrap=True)
    if all(t.argv is None for t in translations):
        raise typer.Exit(1)


@export_app.command("rally")
def export_rally(
    run_dir: Path = typer.Argument(..., help="A run folder of `redline run`."),
    output: Optional[Path] = typer.Option(
        None, "--output", "-o", help="Where to write the JSON (default: <run folder>/rally-results.json)."
    ),
) -> None:
    """Write the run as Rally task results, for `rally task import --file` and `rally task report`."""
    folder = RunFolder.open(run_dir)
    doc = folder.read_document()
    if doc.get("command") != "run":
        raise UserError(
            f"{run_dir} holds a `redline {doc.get('command')}` result; export rally takes `redline run` folders"
        )
    if not folder.has_samples():
        raise UserError(f"{run_dir} has no samples (the run recorded no request)")
    results = rally_results(doc, folder.read_samples(), run_dir.resolve().name)
    dest = output if output is not None else folder.file("rally-results.json")
    try:
        write_text(dest, json.dumps(results, indent=1) + "\n")
    except OSError as exc:
        raise UserError(f"cannot write {dest}: {exc.strerror or exc}") from None
    workload = results["tasks"][0]["subtasks"][0]["workloads"][0]
    err_console.print(
        f"{workload['total_iteration_count']:,} iterations ({workload['failed_iteration_count']:,} failed) as"
        f" {next(iter(workload['scenario']))}"
    )
    out_console.print(str(dest), highlight=False)
