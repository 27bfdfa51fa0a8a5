"""One self-contained HTML report: plotly charts with plotly.js inlined once, no network.

Each figure is stored as JSON in a `<script type="application/json" data-figure>` block
and drawn by one small loader, rather than by plotly's per-figure `to_html` snippets:
the data stays machine-readable (tests and other tools parse it back), the page holds
the plotly bundle exactly once, and nothing refers to a CDN or MathJax.
"""

from __future__ import annotations

import html as _html
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import plotly.graph_objects as go
from jinja2 import ChainableUndefined, Environment, FileSystemLoader, Undefined
from plotly.offline import get_plotlyjs
from plotly.subplots import make_subplots

from redline.analysis.limit import decisive_probes
from redline.analysis.profile_stacks import parse_collapsed
from redline.analysis.thresholds import format_value
from redline.model.capacity import CapacityResult
from redline.model.profile import ProfileSummary
from redline.profile.pyspy import read_collapsed
from redline.report.charts import (
    HostSeries,
    LatencySeries,
    ProbePoints,
    Throughput,
)
from redline.report.flamegraph import flamegraph_svg
from redline.report.load import RunData
from redline.report.png import colour

TEMPLATES = Path(__file__).parent / "templates"
PLOTLY_CONFIG = {"displaylogo": False, "responsive": True}
_FONT = dict(family="system-ui, -apple-system, Segoe UI, sans-serif", size=12)


@dataclass(frozen=True)
class ChartBlock:
    """One chart on the page: where it goes, its caption, its plotly JSON."""

    id: str
    title: str
    caption: str
    json: str
    height: int


def _layout(fig: go.Figure, height: int, **kw: Any) -> go.Figure:
    kw.setdefault("legend", dict(orientation="h", yanchor="bottom", y=1.02, x=0))
    kw.setdefault("margin", dict(l=60, r=20, t=40, b=50))
    fig.update_layout(height=height, font=_FONT, template="plotly_white", **kw)
    return fig


def chart_block(id_: str, title: str, caption: str, fig: go.Figure) -> ChartBlock:
    # "</" would end the <script> element early; "<\/" is the same JSON string.
    text = fig.to_json(validate=False).replace("</", "<\\/")
    return ChartBlock(id_, title, caption, text, int(fig.layout.height or 400))


def search_figure(pts: ProbePoints) -> go.Figure:
    fig = go.Figure()
    fig.add_trace(
        go.Scatter(
            x=pts.index, y=pts.rate, mode="lines", line=dict(color="#bdbdbd"), hoverinfo="skip", showlegend=False
        )
    )
    for state in dict.fromkeys(pts.state):
        for full in (False, True):
            m = np.array([s == state for s in pts.state]) & (pts.full == full)
            if not m.any():
                continue
            fig.add_trace(
                go.Scatter(
                    x=pts.index[m], y=pts.rate[m], mode="markers", name=f"{state} ({'full' if full else 'short'} trial)",
                    marker=dict(size=13 if full else 10, color=colour(state), symbol="circle" if full else "circle-open",
                                line=dict(width=2, color=colour(state))),
                    text=[h for h, k in zip(pts.hover, m) if k], hovertemplate="%{text}<extra></extra>",
                )
            )  # fmt: skip
    if pts.n is not None:
        fig.add_hline(y=pts.n, line_dash="dash", annotation_text=f"N = {pts.n:g}/s")
    fig.update_xaxes(title="probe", dtick=1)
    fig.update_yaxes(title="offered rate, requests/s")
    return _layout(fig, 360)


def knee_figure(pts: ProbePoints) -> go.Figure:
    fig = go.Figure()
    order = np.argsort(pts.rate, kind="stable")
    for key, col, c in (("p50", pts.p50_ms, "#1565c0"), ("p90", pts.p90_ms, "#6a1b9a"), ("p99", pts.p99_ms, "#ad1457")):
        fig.add_trace(
            go.Scatter(
                x=pts.rate[order], y=col[order], mode="lines+markers", name=key, line=dict(color=c),
                marker=dict(size=9, color=[colour(pts.state[i]) for i in order], line=dict(width=1, color=c)),
                text=[pts.hover[i] for i in order], hovertemplate=f"{key} %{{y:.2f}} ms<br>%{{text}}<extra></extra>",
            )
        )  # fmt: skip
    if pts.n is not None:
        fig.add_vline(x=pts.n, line_dash="dash", annotation_text=f"N = {pts.n:g}/s")
    positive = pts.p50_ms[np.isfinite(pts.p50_ms)]
    log = bool(positive.size and positive.min() > 0)
    # dtick=1 on a log axis: labels at powers of ten only (plotly's default adds 2 and 5).
    fig.update_yaxes(title="latency, ms", type="log" if log else "linear", dtick=1 if log else None)
    fig.update_xaxes(title="offered rate, requests/s")
    return _layout(fig, 360)


def throughput_figure(tp: Throughput | None, pts: ProbePoints | None) -> go.Figure:
    per_probe = pts is not None and len(pts) > 1
    fig = make_subplots(rows=1, cols=2 if per_probe else 1, column_widths=[0.65, 0.35] if per_probe else None)
    if tp is not None:
        fig.add_trace(go.Scatter(x=tp.t_s, y=tp.offered, name="offered (scheduled)", line=dict(color="#1565c0")), 1, 1)
        fig.add_trace(
            go.Scatter(x=tp.t_s, y=tp.achieved, name="achieved (2xx/3xx done)", line=dict(color="#2e7d32")), 1, 1
        )
        if np.nansum(tp.errors) > 0:
            fig.add_trace(go.Scatter(x=tp.t_s, y=tp.errors, name="errors", line=dict(color=colour("degraded"))), 1, 1)
    fig.update_xaxes(title_text="seconds since the first probe started", row=1, col=1)
    fig.update_yaxes(title_text="requests per second", row=1, col=1)
    if per_probe:
        assert pts is not None
        hi = float(np.nanmax(np.r_[pts.offered_rps, pts.achieved_rps, 1.0]))
        fig.add_trace(
            go.Scatter(
                x=[0, hi], y=[0, hi], mode="lines", line=dict(dash="dash", color="#9e9e9e"), name="achieved = offered"
            ),
            1,
            2,
        )
        fig.add_trace(
            go.Scatter(x=pts.offered_rps, y=pts.achieved_rps, mode="markers", name="probes",
                       marker=dict(size=10, color=[colour(s) for s in pts.state]), text=list(pts.hover),
                       hovertemplate="offered %{x:.1f}/s, achieved %{y:.1f}/s<br>%{text}<extra></extra>"),
            1, 2,
        )  # fmt: skip
        fig.update_xaxes(title_text="offered, requests/s", row=1, col=2)
        fig.update_yaxes(title_text="achieved, requests/s", row=1, col=2)
    return _layout(fig, 360)


def latency_figure(series: LatencySeries) -> go.Figure:
    fig = go.Figure()
    if series.t_s.size and series.t_s.min() < 0:
        fig.add_vrect(x0=float(series.t_s.min() - series.width_s / 2), x1=0, fillcolor="#eeeeee", line_width=0, layer="below",
                      annotation_text="warm-up", annotation_position="top left")  # fmt: skip
    if series.scatter_t_s.size:
        fig.add_trace(go.Scatter(x=series.scatter_t_s, y=series.scatter_ms, mode="markers", name="answers",
                                 marker=dict(size=3, color="#90a4ae", opacity=0.35), hoverinfo="skip"))  # fmt: skip
    w = f"{series.width_s:g} s"
    fig.add_trace(go.Scatter(x=series.t_s, y=series.p50_ms, name=f"p50 per {w}", line=dict(color="#1565c0", width=2)))
    if np.isfinite(series.p90_ms).any():
        fig.add_trace(go.Scatter(x=series.t_s, y=series.p90_ms, name="p90", line=dict(color="#6a1b9a", width=1)))
    fig.add_trace(go.Scatter(x=series.t_s, y=series.p99_ms, name="p99", line=dict(color="#ad1457", width=1.5)))
    for tr in series.trends:
        fig.add_trace(go.Scatter(x=tr.t_s, y=tr.ms, mode="lines", name=tr.label, line=dict(color="black", dash="dash"),
                                 hovertemplate=f"{tr.text}<extra></extra>"))  # fmt: skip
    if series.error_t_s.size:
        lo = float(np.nanmin(series.p50_ms)) if np.isfinite(series.p50_ms).any() else 0.0
        fig.add_trace(go.Scatter(x=series.error_t_s, y=np.full(series.error_t_s.size, lo), mode="markers", name=f"errors ({series.error_t_s.size:,})",
                                 marker=dict(symbol="line-ns-open", size=10, color=colour("degraded"))))  # fmt: skip
    fig.update_xaxes(title="s since the window began (intended send time)")
    fig.update_yaxes(title="latency, ms", rangemode="tozero")
    return _layout(
        fig,
        340,
        legend=dict(font=dict(size=10), orientation="h", yanchor="bottom", y=1.02, x=0),
        margin=dict(l=55, r=10, t=30, b=45),
    )


def host_figure(host: HostSeries) -> go.Figure:
    fig = make_subplots(rows=3, cols=1, shared_xaxes=True, vertical_spacing=0.07,
                        subplot_titles=("host CPU: busy cores", "per-process CPU, % of one core", "disk busy %"))  # fmt: skip
    for span in host.spans:
        fig.add_vrect(
            x0=span.t0_s, x1=span.t1_s, fillcolor=colour(span.state), opacity=0.07, line_width=0, layer="below"
        )
    fig.add_trace(go.Scatter(x=host.t_s, y=host.busy_cores, name="busy cores", line=dict(color="#37474f")), 1, 1)
    fig.add_trace(go.Scatter(x=[host.t_s.min(), host.t_s.max()], y=[host.cpus, host.cpus], mode="lines", name=f"{host.cpus} CPUs",
                             line=dict(color="#9e9e9e", dash="dot")), 1, 1)  # fmt: skip
    for label, v in host.groups.items():
        fig.add_trace(go.Scatter(x=host.t_s, y=v, name=f"group {label}", line=dict(width=2)), 2, 1)
    for label, v in host.processes.items():
        fig.add_trace(go.Scatter(x=host.t_s, y=v, name=label, line=dict(width=1, dash="dash")), 2, 1)
    for name, v in host.disks.items():
        fig.add_trace(go.Scatter(x=host.t_s, y=v, name=f"disk {name}"), 3, 1)
    fig.update_xaxes(title_text="seconds since the first probe started", row=3, col=1)
    return _layout(fig, 640, legend=dict(font=dict(size=10)))


# -- the page -----------------------------------------------------------------------------


def fmt(value: Any, digits: int = 1, unit: str = "") -> str:
    """Numbers for tables: thousands separators, '—' for missing, units glued on."""
    if value is None or isinstance(value, Undefined) or (isinstance(value, float) and not math.isfinite(value)):
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (int, np.integer)):
        return f"{int(value):,}{unit}"
    if isinstance(value, (float, np.floating)):
        return f"{float(value):,.{digits}f}{unit}"
    return f"{value}{unit}"


def render_html(run: RunData, charts: list[ChartBlock], notes: list[str], png_names: list[str]) -> str:
    # ChainableUndefined: a key absent from a partial run.json renders as "—", not a crash.
    env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=True, undefined=ChainableUndefined,
                      trim_blocks=True, lstrip_blocks=True)  # fmt: skip
    env.filters["fmt"] = fmt
    env.filters["colour"] = colour
    env.filters["pretty"] = lambda v: json.dumps(v, indent=1, default=str)
    template = env.get_template("report.html.j2")
    return template.render(
        run=run,
        doc=run.doc,
        title=_title(run),
        main_charts=[c for c in charts if not c.id.startswith("latency-") and c.id != "host"],
        latency_charts=[c for c in charts if c.id.startswith("latency-")],
        host_charts=[c for c in charts if c.id == "host"],
        notes=notes,
        png_names=png_names,
        profiles=profile_blocks(run),
        gates=threshold_rows(run),
        plotly_js=get_plotlyjs(),
        plotly_config=json.dumps(PLOTLY_CONFIG),
        escape=_html.escape,
    )


@dataclass(frozen=True)
class GateRow:
    """One --threshold as the report's Thresholds section shows it."""

    expression: str
    limit: str  # the gate in its metric's unit: "< 1.0 µs", ">= 40.0/s"
    measured: str  # the figure judged, or "not measured"
    passed: bool
    source: str
    samples: str
    reason: str


def threshold_rows(run: RunData) -> list[GateRow]:
    """The gates judged on this result (run.json `thresholds`), in the order given."""
    report = run.result.thresholds
    if report is None:
        return []
    rows = []
    for c in report.checks:
        t = c.threshold
        rows.append(
            GateRow(
                expression=t.expression,
                limit=f"{t.op} {format_value(t.value, t.unit)}",
                measured="not measured" if c.measured is None else format_value(c.measured, t.unit),
                passed=c.passed,
                source=c.source,
                samples="—" if c.samples is None else f"{c.samples:,}",
                reason=c.reason,
            )
        )
    return rows


@dataclass(frozen=True)
class ProfileBlock:
    key: str
    label: str
    summary: ProfileSummary
    svg: str | None  # the flame graph, inline (works offline)


def profile_blocks(run: RunData) -> list[ProfileBlock]:
    """The profiles worth showing: a run's, or a search's decisive probes' (at N, first degraded)."""
    if not run.is_capacity:
        p = run.probes[0] if run.probes else None
        chosen = [(p, "the run")] if p is not None and p.profile is not None else []
    else:
        doc = run.result
        n = doc.outcome.n if isinstance(doc, CapacityResult) and doc.outcome else None
        at_n, over = decisive_probes(run.probes, n)
        chosen = [
            (q, f"{why}: probe {q.index} at {q.rate:g}/s")
            for q, why in ((at_n, "at N"), (over, "first degraded"))
            if q is not None and q.profile is not None
        ]
    blocks = []
    for q, label in chosen:
        assert q.profile is not None
        svg = None
        raw = run.path / q.profile.file
        if q.profile.samples and raw.exists():
            try:
                svg = flamegraph_svg(parse_collapsed(read_collapsed(raw)), label)
            except (OSError, ValueError):
                svg = None  # the tables above still stand
        blocks.append(ProfileBlock(str(q.index), label, q.profile, svg))
    return blocks


def fallback_html(run_dir: Path, notes: list[str], error: str) -> str:
    """The page written when the full template cannot be rendered: still says what happened."""
    items = "".join(f"<li>{_html.escape(n)}</li>" for n in notes)
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>redline report (partial)</title></head>'
        f"<body><h1>redline report of {_html.escape(run_dir.name)}</h1>"
        f"<p>The full report could not be rendered: {_html.escape(error)}</p><ul>{items}</ul>"
        "<p>run.json in this folder holds the figures.</p></body></html>"
    )


def _title(run: RunData) -> str:
    url = run.target.get("url", "")
    if run.is_capacity:
        n = run.outcome.n if run.outcome else None
        head = f"N = {n:g} requests/s" if n is not None else (run.outcome.state if run.outcome else run.status)
        return f"redline capacity — {head} — {url}"
    return f"redline {run.command} — {url}"
