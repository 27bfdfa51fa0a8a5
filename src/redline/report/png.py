"""PNG charts (matplotlib) for papers, tickets and terminals without a browser.

Figures are built on `matplotlib.figure.Figure` with the Agg canvas directly instead of
pyplot: no global backend switch, no figure registry to leak between calls, and it works
on a headless host or inside a worker thread. `figure` and `save` are the one way every
report module (storm and scale pages too) makes and writes a chart.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from redline.report.charts import (
    HostSeries,
    LatencySeries,
    ProbePoints,
    Throughput,
)

STATE_COLOURS = {"stable": "#2e7d32", "degraded": "#c62828", "inconclusive": "#ef6c00"}
OTHER_COLOUR = "#616161"
DPI = 110


def colour(state: str) -> str:
    return STATE_COLOURS.get(state, OTHER_COLOUR)


def save(fig: Figure, path: Path) -> Path:
    FigureCanvasAgg(fig)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp.png")
    fig.savefig(tmp, dpi=DPI)
    tmp.replace(path)  # a viewer never sees half a file
    return path


def figure(w: float, h: float) -> Figure:
    return Figure(figsize=(w, h), layout="constrained")


def latency_png(series: LatencySeries, path: Path, title: str) -> Path:
    """Latency over time of one probe with the verdict's fitted trend (the study's Fig. 1–2)."""
    fig = figure(8, 4.2)
    ax = fig.add_subplot()
    if series.scatter_t_s.size:
        ax.scatter(
            series.scatter_t_s,
            series.scatter_ms,
            s=3,
            alpha=0.25,
            color="#90a4ae",
            linewidths=0,
            label=f"answers ({series.thinned_to:,} of {series.answered:,} shown)",
        )
    ax.plot(series.t_s, series.p50_ms, color="#1565c0", lw=1.6, label="p50 per window")
    if np.isfinite(series.p90_ms).any():
        ax.plot(series.t_s, series.p90_ms, color="#6a1b9a", lw=1.0, alpha=0.8, label="p90")
    ax.plot(series.t_s, series.p99_ms, color="#ad1457", lw=1.2, label="p99")
    for tr in series.trends:
        ax.plot(tr.t_s, tr.ms, color="black", lw=1.4, ls="--", label=f"{tr.label}: {tr.text}")
    if series.error_t_s.size:
        lo = np.nanmin(series.p50_ms) if np.isfinite(series.p50_ms).any() else 0.0
        ax.plot(
            series.error_t_s,
            np.full(series.error_t_s.size, lo),
            "|",
            color=colour("degraded"),
            ms=10,
            label=f"errors ({series.error_t_s.size:,})",
        )
    if series.t_s.size and series.t_s.min() < 0:
        ax.axvspan(series.t_s.min() - series.width_s / 2, 0, color="#eeeeee", zorder=0, label="warm-up (not judged)")
    ax.set_xlabel("seconds since the measurement window began (by intended send time)")
    ax.set_ylabel("latency, ms")
    ax.set_title(title, color=colour(series.state), fontsize=11)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper left")
    return save(fig, path)


def search_png(pts: ProbePoints, path: Path) -> Path:
    """Rate per probe, coloured by verdict; hollow markers are short trials."""
    fig = figure(8, 3.8)
    ax = fig.add_subplot()
    ax.plot(pts.index, pts.rate, color="#bdbdbd", lw=1, zorder=1)
    for state in dict.fromkeys(pts.state):
        m = np.array([s == state for s in pts.state])
        for full in (True, False):
            k = m & (pts.full == full)
            if k.any():
                ax.scatter(pts.index[k], pts.rate[k], s=60 if full else 45, zorder=2,
                           facecolors=colour(state) if full else "white", edgecolors=colour(state), linewidths=1.8,
                           label=f"{state} ({'full' if full else 'short'} trial)")  # fmt: skip
    if pts.n is not None:
        ax.axhline(pts.n, color="black", ls="--", lw=1, label=f"N = {pts.n:g}/s")
    ax.set_xlabel("probe")
    ax.set_ylabel("offered rate, requests/s")
    ax.set_title("Search trace")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return save(fig, path)


def knee_png(pts: ProbePoints, path: Path) -> Path:
    """Latency percentiles against the offered rate: where the curve bends is the knee."""
    fig = figure(8, 3.8)
    ax = fig.add_subplot()
    order = np.argsort(pts.rate, kind="stable")
    for key, col, c in (("p50", pts.p50_ms, "#1565c0"), ("p90", pts.p90_ms, "#6a1b9a"), ("p99", pts.p99_ms, "#ad1457")):
        ax.plot(pts.rate[order], col[order], marker="o", ms=3, color=c, label=key)
    for i in range(len(pts)):
        if np.isfinite(pts.p99_ms[i]):
            ax.scatter(pts.rate[i], pts.p99_ms[i], s=40, facecolors="none", edgecolors=colour(pts.state[i]), zorder=3)
    if pts.n is not None:
        ax.axvline(pts.n, color="black", ls="--", lw=1, label=f"N = {pts.n:g}/s")
    if np.nanmin(np.r_[pts.p50_ms, np.inf]) > 0 and np.isfinite(pts.p99_ms).any():
        ax.set_yscale("log")
    ax.set_xlabel("offered rate, requests/s")
    ax.set_ylabel("latency, ms")
    ax.set_title("Latency percentiles against rate (circles: p99 coloured by verdict)")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    return save(fig, path)


def throughput_png(tp: Throughput | None, pts: ProbePoints | None, path: Path) -> Path:
    """Offered vs achieved: per second over the run, and per probe when there are several."""
    per_probe = pts is not None and len(pts) > 1
    fig = figure(12 if per_probe else 8, 3.8)
    axes = fig.subplots(1, 2, width_ratios=[2, 1]) if per_probe else [fig.add_subplot()]
    ax = axes[0]
    if tp is not None:
        ax.plot(tp.t_s, tp.offered, color="#1565c0", lw=1.2, label="offered (scheduled)")
        ax.plot(tp.t_s, tp.achieved, color="#2e7d32", lw=1.2, label="achieved (2xx/3xx done)")
        if np.nansum(tp.errors) > 0:
            ax.plot(tp.t_s, tp.errors, color=colour("degraded"), lw=1, label="errors")
        ax.legend(fontsize=8)
    else:
        ax.text(0.5, 0.5, "no samples", ha="center", va="center", transform=ax.transAxes)
    ax.set_xlabel("seconds since the first probe started")
    ax.set_ylabel("requests per second")
    ax.set_title("Offered vs achieved, per second")
    ax.grid(alpha=0.3)
    if per_probe:
        assert pts is not None
        bx = axes[1]
        hi = float(np.nanmax(np.r_[pts.offered_rps, pts.achieved_rps, 1.0]))
        bx.plot([0, hi], [0, hi], color="#9e9e9e", ls="--", lw=1)
        bx.scatter(pts.offered_rps, pts.achieved_rps, c=[colour(s) for s in pts.state], s=35)
        bx.set_xlabel("offered, requests/s")
        bx.set_ylabel("achieved, requests/s")
        bx.set_title("Per probe")
        bx.grid(alpha=0.3)
    return save(fig, path)


def host_png(host: HostSeries, path: Path) -> Path:
    """Host CPU (busy cores), CPU of the target and generator processes, disk busy %."""
    fig = figure(12, 7.5)
    a1, a2, a3 = fig.subplots(3, 1, sharex=True)
    for span in host.spans:
        for ax in (a1, a2, a3):
            ax.axvspan(span.t0_s, span.t1_s, color=colour(span.state), alpha=0.07, lw=0)
    a1.plot(host.t_s, host.busy_cores, color="#37474f", lw=1.3, label="busy cores (all CPUs)")
    a1.axhline(host.cpus, color="#9e9e9e", ls=":", lw=1, label=f"{host.cpus} CPUs")
    a1.set_ylabel("cores")
    a1.set_title("Host CPU (shading: probes, coloured by verdict)")
    a1.legend(fontsize=8, loc="upper left")
    for label, v in host.groups.items():
        a2.plot(host.t_s, v, lw=1.6, label=f"group {label}")
    for label, v in host.processes.items():
        a2.plot(host.t_s, v, lw=0.9, alpha=0.8, ls="--", label=label)
    a2.axhline(100, color="#9e9e9e", ls=":", lw=1)
    a2.set_ylabel("% of one core")
    a2.set_title("Per-process CPU (100 % = one core: a single-threaded process tops out here)")
    if host.groups or host.processes:
        a2.legend(fontsize=7, loc="upper left")
    for name, v in host.disks.items():
        a3.plot(host.t_s, v, lw=1.2, label=name)
    a3.set_ylabel("disk busy %")
    a3.set_xlabel("seconds since the first probe started")
    if host.disks:
        a3.legend(fontsize=8, loc="upper left")
    for ax in (a1, a2, a3):
        ax.grid(alpha=0.3)
    return save(fig, path)


def render_all(jobs: list[tuple[str, Callable[[], Path]]], notes: list[str]) -> list[Path]:
    """Run each PNG job; a chart that fails is noted, never fatal (see write_reports)."""
    out: list[Path] = []
    for name, job in jobs:
        try:
            out.append(job())
        except Exception as exc:  # noqa: BLE001 — one bad chart must not lose the others
            notes.append(f"{name} could not be drawn ({type(exc).__name__}: {exc})")
    return out
