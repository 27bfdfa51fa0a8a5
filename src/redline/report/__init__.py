"""Reports of a run folder: one self-contained HTML page and PNG charts.

`write_reports(run_dir)` is what every measuring command calls at its end and what
`redline report RUN_DIR` calls; it reads the folder, prepares each chart's data once
(`charts`), and draws it twice (`html` with plotly, `png` with matplotlib).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    import plotly.graph_objects as go

    from redline.report import charts as _charts
    from redline.report import html as _html
    from redline.report.load import RunData

# Nothing heavy is imported at module level: every command imports this package, so
# plotly, matplotlib and scipy (~1.5 s) are loaded only when a report is actually written.
from redline.store import layout as _layout
from redline.store.layout import PNG_DIR, REPORT_HTML

__all__ = ["PNG_DIR", "REPORT_HTML", "write_any_report", "write_reports"]

T = TypeVar("T")


def write_any_report(run_dir: Path) -> tuple[list[Path], tuple[str, ...]]:
    """The report of any run folder (run, capacity, storm, scale): the paths written and the
    notes on what the folder lacks. UserError when it is no run folder or a newer one."""
    from redline.model.storm import ScaleResult, StormRunResult
    from redline.report.load import read_run
    from redline.store import RunFolder

    run_dir = Path(run_dir)
    loaded = RunFolder.open(run_dir).load()
    if isinstance(loaded.result, (StormRunResult, ScaleResult)):
        from redline.report.scale import write_scale_report
        from redline.report.storm import write_storm_report

        page = (write_storm_report if isinstance(loaded.result, StormRunResult) else write_scale_report)(run_dir)
        return [page, *sorted((run_dir / PNG_DIR).glob("*.png"))], ()
    run = read_run(run_dir, loaded)
    return _write(run), run.missing


def write_reports(run_dir: Path) -> list[Path]:
    """Write `report.html` and `png/*.png` into `run_dir`; return the paths written.

    Never raises on a partial or interrupted folder: what exists is drawn and what is
    missing is said on the page. Raises UserError only when `run_dir` has no readable
    run.json (it is not a run folder at all), or OSError if the folder cannot be written.
    """
    from redline.report.load import read_run

    return _write(read_run(Path(run_dir)))


def _write(run: RunData) -> list[Path]:
    from redline.atomic import write_text
    from redline.report import charts as _charts
    from redline.report import html as _html
    from redline.report import png as _png

    run_dir = run.path
    notes = list(run.missing)
    png_dir = run_dir / PNG_DIR

    points = _guard("probe table", lambda: _charts.probe_points(run), notes)
    tput = _guard("throughput", lambda: _charts.throughput(run), notes)
    host = _guard("host series", lambda: _charts.host_series(run), notes)
    latency = [
        (p, s)
        for p in run.probes
        if (s := _guard(f"latency of probe {p.index}", partial(_charts.latency_over_time, p), notes)) is not None
    ]

    blocks: list[_html.ChartBlock | None] = []
    png_jobs: list[tuple[str, Callable[[], Path]]] = []
    if run.is_capacity and points is not None:
        blocks.append(
            _block(
                "search",
                "Search trace",
                "Rate of each probe in the order run, coloured by verdict; hollow markers are short trials, filled ones full-length confirmations.",
                lambda: _html.search_figure(points),
                notes,
            )
        )
        blocks.append(
            _block(
                "knee",
                "Latency against rate (the knee)",
                "p50, p90 and p99 of each probe's measurement window against its offered rate; markers coloured by verdict.",
                lambda: _html.knee_figure(points),
                notes,
            )
        )
        png_jobs += [(_layout.SEARCH_PNG, lambda: _png.search_png(points, png_dir / _layout.SEARCH_PNG)),
                     (_layout.KNEE_PNG, lambda: _png.knee_png(points, png_dir / _layout.KNEE_PNG))]  # fmt: skip
    if tput is not None or (points is not None and len(points) > 1):
        blocks.append(
            _block(
                "throughput",
                "Offered vs achieved throughput",
                "Left: requests scheduled and 2xx/3xx answers completed, per second over the run (gaps between probes left blank; answers that outlive a probe's schedule drain after it). Right, when there are several probes: each probe's averages against the line achieved = offered.",
                lambda: _html.throughput_figure(tput, points),
                notes,
            )
        )
        png_jobs.append(
            (_layout.THROUGHPUT_PNG, lambda: _png.throughput_png(tput, points, png_dir / _layout.THROUGHPUT_PNG))
        )
    for p, s in latency:
        name = _layout.probe_png(p.index, p.rate) if run.is_capacity else _layout.RUN_LATENCY_PNG
        title = (
            f"probe {p.index}: {p.rate:g}/s · {p.phase} · {p.state}"
            if run.is_capacity
            else f"{p.label} · latency over time"
        )
        blocks.append(_block(f"latency-{p.index}", title, _latency_caption(s), partial(_html.latency_figure, s), notes))
        png_jobs.append((name, partial(_png.latency_png, s, png_dir / name, title)))
    if host is not None:
        blocks.append(
            _block(
                "host",
                "Host CPU, disk and per-process CPU",
                "From the host monitor (one reading per interval); shaded bands are the probes, coloured by verdict. A process pinned near 100 % of one core while the host has idle CPU is single-threaded at its limit.",
                lambda: _html.host_figure(host),
                notes,
            )
        )
        png_jobs.append((_layout.HOST_PNG, lambda: _png.host_png(host, png_dir / _layout.HOST_PNG)))
    shown = [b for b in blocks if b is not None]

    pngs = _png.render_all(png_jobs, notes)
    try:
        page = _html.render_html(run, shown, notes, [p.name for p in pngs])
    except Exception as exc:  # noqa: BLE001 — see _guard; a bare page beats no page
        page = _html.fallback_html(run_dir, notes, f"{type(exc).__name__}: {exc}")
    return [write_text(run_dir / REPORT_HTML, page), *pngs]


def _latency_caption(s: _charts.LatencySeries) -> str:
    parts = [
        f"{s.answered:,} answers, {s.thinned_to:,} drawn as points"
        if s.source == "samples"
        else "samples missing: the verdict's own windowed series"
    ]
    if s.stride > 1:
        parts.append(f"percentiles, points and error ticks from every k-th request of this long run (k = {s.stride})")
    if s.error_t_s.size:
        parts.append(f"{s.error_t_s.size * s.stride:,} errors (red ticks)")
    parts += [f"{t.label}: {t.text}" for t in s.trends]
    return "; ".join(parts) + "."


def _guard(what: str, build: Callable[[], T], notes: list[str]) -> T | None:
    """Chart data that cannot be prepared is a note on the page, never a lost report."""
    try:
        return build()
    except Exception as exc:  # noqa: BLE001 — the report must survive odd or damaged data
        notes.append(f"{what} could not be prepared ({type(exc).__name__}: {exc})")
        return None


def _block(
    id_: str, title: str, caption: str, make: Callable[[], go.Figure], notes: list[str]
) -> _html.ChartBlock | None:
    fig = _guard(f"chart {title!r}", make, notes)
    from redline.report import html as _html

    return None if fig is None else _html.chart_block(id_, title, caption, fig)
