"""Live progress of a load run (rich), on stderr so that --json output stays clean."""

from __future__ import annotations

from types import TracebackType

from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from redline.cli.console import err_console
from redline.load.engine import Progress as LoadProgress


class RunProgress:
    def __init__(self, label: str, planned_rate: float) -> None:
        self.planned = planned_rate
        self.bar = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(bar_width=24),
            TextColumn("{task.fields[line]}"),
            TimeElapsedColumn(),
            console=err_console,
            transient=False,
        )
        self.task = self.bar.add_task(label, total=1.0, line="starting workers…")

    def __enter__(self) -> RunProgress:
        self.bar.__enter__()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.bar.__exit__(exc_type, exc, tb)

    def update(self, p: LoadProgress) -> None:
        offered = p.due / p.elapsed_s if p.elapsed_s > 0 else 0.0
        lat = "—" if p.p50_ms is None else f"p50 {p.p50_ms:.1f} ms  p99 {p.p99_ms:.1f} ms"
        phase = "warm-up " if p.warming_up else ""
        line = f"{phase}offered {offered:,.0f}/s  achieved {p.interval_rate:,.0f}/s  {lat}  errors {p.errors:,}"
        self.bar.update(self.task, completed=min(1.0, p.elapsed_s / p.span_s), line=line)
