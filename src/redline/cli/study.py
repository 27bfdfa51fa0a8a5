"""`redline study FILE`: every cell of a study file (lab up, job, lab down), resumable."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import typer
import typer.main
from rich.table import Table

from redline import interrupts
from redline.cli.app import app
from redline.cli.console import err_console, out_console
from redline.errors import UserError
from redline.lab.state import study_labs_root
from redline.store.layout import STUDY_HTML, STUDY_JSON
from redline.study.figures import cell_figures, effects, matrix_levels
from redline.study.runner import Event, Study, StudyInterrupted
from redline.study.spec_file import load_study_file


def _command_of(words: tuple[str, ...]) -> Any:
    """The click command behind `redline WORDS…`: a study file's options are checked by it."""
    command = typer.main.get_command(app)
    for w in words:
        command = command.commands[w]  # type: ignore[attr-defined]  # a group, for every word but the last
    return command


def _fmt_eta(eta_s: float | None) -> str:
    if eta_s is None:
        return ""
    return f" · ETA {eta_s / 60:.0f} min" if eta_s >= 90 else f" · ETA {eta_s:.0f} s"


@app.command("study")
def study_command(
    file: Path = typer.Argument(..., help="The study file (YAML; docs/study.md)."),
    results: Path = typer.Option(
        Path("results"), "--results", help="Where the study folder (named after the study) goes."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the cells and effects as JSON."),
) -> None:
    """Measure every cell of a study: its lab up with the cell's options, the job, the lab down.

    Started again with the same file and --results, it resumes: finished cells are kept,
    the cell that was running is run again."""
    from redline.report.study import study_rows, to_html

    spec = load_study_file(file, _command_of)
    folder = results / spec.name
    resumed = (folder / STUDY_JSON).is_file()
    labs = study_labs_root(spec.name)
    study = Study(spec, folder, _command_of, file.read_text(encoding="utf-8"), labs)
    done_before = sum(1 for r in study.state.records if r.status in ("done", "failed"))
    if resumed:
        err_console.print(
            f"resuming {folder}: {done_before} of {len(spec.cells)} cells finished before, running the rest",
            soft_wrap=True,
        )
    status = err_console.status("")

    def on_event(e: Event) -> None:
        head = f"[{e.index}/{e.total}] {e.cell.id} {e.cell.label}"
        if e.kind == "skip":
            err_console.print(f"[dim]{head}: {e.text} (kept)[/dim]", soft_wrap=True)
        elif e.kind == "again":
            err_console.print(f"{head}: {e.text}", soft_wrap=True)
        elif e.kind == "start":
            err_console.print(
                f"[bold]{head}[/bold]: {e.cell.target} → {e.cell.command}{_fmt_eta(e.eta_s)}", soft_wrap=True
            )
            status.start()
        elif e.kind == "line":
            status.update(f"[dim]{head}: {e.text[:110]}[/dim]")
        else:
            status.stop()
            rec = study.state.record(e.cell.id)
            reason = f" — {rec.reason}" if rec.reason else ""
            err_console.print(f"{head}: {rec.status}{reason}{_fmt_eta(e.eta_s)}", soft_wrap=True)

    try:
        state = study.run(on_event)
    except (StudyInterrupted, KeyboardInterrupt):  # Ctrl-C may also land between two cells
        status.stop()
        code, word = interrupts.exit_status()
        # One line, as `run` says it (a KeyboardInterrupt raised here would reach click, not main).
        print(f"redline: study {word}; started again with the same file and --results it resumes ({folder})",
              file=sys.stderr)  # fmt: skip
        raise SystemExit(code) from None
    finally:
        status.stop()
    figures = cell_figures(folder, state)
    levels = matrix_levels(state)
    found = effects(state, levels, figures)
    rows = study_rows(state, figures)
    page = folder / STUDY_HTML
    try:
        page.write_text(to_html(state, rows, found, spec.description))
    except OSError as exc:
        raise UserError(f"cannot write {page}: {exc.strerror}") from None
    failed = [r for r in rows if r.status != "done"]
    if as_json:
        from dataclasses import asdict

        doc = {
            "study": str(folder),
            "html": str(page),
            "cells": [asdict(r) for r in rows],
            "effects": [e.to_json() for e in found],
        }
        print(json.dumps(doc, indent=2))
    else:
        table = Table(title=f"study {spec.name}", header_style="bold")
        metric = next((r.metric for r in rows if r.metric), "value")
        p99 = metric != "p99 ms" and any(r.p99_ms is not None for r in rows)
        for col in ("cell", "configuration", "status", metric, *(["p99 ms"] if p99 else []), "limit / reason"):
            table.add_column(col, justify="right" if col in (metric, "p99 ms") else "left")
        for r in rows:
            cells = [r.id, r.label, r.status, "—" if r.value is None else f"{r.value:.4g}"]
            if p99:
                cells.append("—" if r.p99_ms is None else f"{r.p99_ms:.1f}")
            table.add_row(*cells, (r.limit or "")[:90])
        out_console.print(table)
        for e in found:
            out_console.print(e.text())
        out_console.print(f"report: {page}")
    if failed:
        raise UserError(f"study complete: {len(rows) - len(failed)} of {len(rows)} cells done, {len(failed)} failed", 1)
