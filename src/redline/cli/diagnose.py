"""`redline diagnose RUN_DIR`: derive the findings and what limits N again, offline."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from redline.cli.app import app
from redline.cli.console import out_console
from redline.cli.limit_display import print_limit
from redline.cli.options import write_report
from redline.model.capacity import CapacityResult
from redline.model.run import RunResult


@app.command("diagnose")
def diagnose_command(
    run_dir: Path = typer.Argument(..., help="A capacity, run or storm folder (holds run.json and monitor.npz)."),
    audit_root: Optional[Path] = typer.Option(
        None, "--audit-root", help="Link the limit to the audit of this root (default: the one the run recorded)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the findings and the limit as JSON."),
) -> None:
    """Judge every probe again from its stored monitor samples and profile, name what limits N,
    and rewrite run.json and the report with it (the measurements themselves are not touched)."""
    from redline.jobs.diagnosis import diagnose_folder

    doc = diagnose_folder(run_dir, audit_root)
    write_report(run_dir)
    if as_json:
        d = doc.to_json()
        keys = ("status", "limit", "findings", "phase_cpu")
        out = {k: d[k] for k in keys if k in d}
        if isinstance(doc, CapacityResult):
            out["probes"] = [{"index": p.index, "rate": p.rate, "findings": [f.to_json() for f in p.findings]}
                             for p in doc.probes]  # fmt: skip
        print(json.dumps(out, indent=2))
        return
    if isinstance(doc, CapacityResult):
        for p in doc.probes:
            titles = "; ".join(f.title for f in p.findings) or "—"
            out_console.print(f"probe {p.index + 1:>2} {p.rate:>9g}/s {p.state:<12} {titles}", highlight=False)
        print_limit(doc.limit, doc.findings, [p.profile for p in doc.probes if p.profile is not None])
    elif isinstance(doc, RunResult):
        print_limit(doc.limit, doc.findings, [doc.profile] if doc.profile else [])
    else:
        for f in getattr(doc, "findings", ()):
            out_console.print(f"finding: {f.title} — {f.fix}", highlight=False)
    out_console.print(f"run folder: {run_dir}")
