"""The terminal's "what limits N" block: the limit's paragraph, its advice and the findings."""

from __future__ import annotations

from collections.abc import Sequence

from rich.markup import escape

from redline.cli.console import out_console
from redline.model.diagnosis import Limit
from redline.model.finding import Finding
from redline.model.profile import ProfileSummary


def print_limit(limit: Limit | None, findings: Sequence[Finding], profiles: Sequence[ProfileSummary]) -> None:
    refused = next((p.error for p in profiles if p.error), None)
    if refused and not any(p.samples for p in profiles):
        out_console.print(f"[yellow]profile: {escape(refused)}[/yellow]")
    if limit is None:
        out_console.print("[yellow]what limits it: not judged (no decisive probe was measured)[/yellow]")
        return
    out_console.print(f"[bold]what limits it:[/bold] {escape(limit.headline)}")
    out_console.print(f"  {escape(limit.paragraph)}", highlight=False)
    others = [f for f in findings if f.id != limit.finding]
    for f in others:
        out_console.print(f"  [dim]also: {escape(f.title)}[/dim]")
