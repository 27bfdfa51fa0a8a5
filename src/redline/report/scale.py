"""Report of a scale run folder: the USL and Amdahl fits drawn over their data points.

scale.png: left, throughput X(N) = N / T(N) per storm with both fitted curves and the
linear ideal; right, T(N) itself against the ideal (as long as one) and fully serial (N
times as long). report.html (templates/scale.html.j2) embeds it with the findings (the
phase that grows fastest with N first), the points (linked to each storm's own report),
the fitted parameters and the plain sentences. Reads the fits and findings from run.json:
computing them is the scale job's business, not the report's.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.axes import Axes

from redline.atomic import write_text
from redline.errors import UserError
from redline.model.storm import ScaleFit, ScalePoint, ScaleResult
from redline.report.png import figure, save
from redline.report.templates import Embedded, render
from redline.store import RunFolder, layout


def _read(run_dir: Path) -> ScaleResult:
    doc = RunFolder.open(run_dir).read()
    if not isinstance(doc, ScaleResult):
        raise UserError(f"{run_dir} is a {doc.command!r} run folder, not a scale run's")
    return doc


def _label(ax: Axes, ylabel: str, top: float, right: float) -> None:
    ax.set_xlabel("instances launched at once, N")
    ax.set_ylabel(ylabel)
    ax.set_ylim(0, max(top, 1e-9))  # never an empty range, even for a run of zeros
    ax.set_xlim(0, right)
    ax.legend(fontsize=8)


def scale_png(
    points: Sequence[ScalePoint],
    usl: ScaleFit | None,
    amdahl: ScaleFit | None,
    out: Path,
    title: str = "",
    goal: str = "SSH login",
) -> Path:
    n = np.array([p.n for p in points], float)
    t = np.array([p.t_s for p in points], float)
    x = n / t
    grid = np.linspace(1, max(n.max() * 1.25, 2), 300)
    fig = figure(11, 4.2)
    ax, bx = fig.subplots(1, 2)
    ax.plot(n, x, "ko", label="storms (measured)", zorder=5)
    fits = [(f, style) for f, style in ((usl, "-"), (amdahl, "--")) if f is not None]
    for f, style in fits:
        label = (
            f"USL σ={f.sigma.value:.3f} κ={f.kappa_value:.4f}" if f.model == "usl" else f"Amdahl σ={f.sigma.value:.3f}"
        )
        ax.plot(grid, f.predict(grid), style, label=label)
        bx.plot(grid, grid / f.predict(grid), style, label=label)
    if fits:
        lam = fits[0][0].lam
        ax.plot(grid, lam * grid, ":", color="grey", label="linear (no contention)")
    _label(
        ax, f"instances per second to {'SSH' if goal == 'SSH login' else goal}, X(N)", float(x.max()) * 1.5, grid[-1]
    )
    t1 = float(np.median(t[n == n.min()])) / n.min()  # time of one, scaled to N = 1
    bx.plot(n, t, "ko", label="storms (measured)", zorder=5)
    bx.plot(grid, np.full_like(grid, t1 * n.min()), ":", color="grey", label="ideal: as long as the smallest")
    bx.plot(grid, t1 * grid, "-.", color="#b07aa1", label="fully serial")
    _label(bx, f"first request → last {goal}, s", float(t.max()) * 1.3, grid[-1])
    if title:
        fig.suptitle(title, fontsize=10)
    return save(fig, out)


def scale_html(doc: ScaleResult, chart: Embedded | None) -> str:
    return render(
        "scale.html.j2",
        counts=doc.plan.get("counts", []),
        command_line=doc.command_line,
        status=doc.status,
        error=doc.error or "",
        sentences=doc.sentences,
        chart=chart,
        fits=[f for f in (doc.usl, doc.amdahl) if f is not None],
        usl=doc.usl,
        points=doc.points,
        findings=doc.findings,
    )


def write_scale_report(run_dir: Path) -> Path:
    run_dir = Path(run_dir)
    doc = _read(run_dir)
    chart = None
    if doc.points:
        out = run_dir / layout.PNG_DIR / layout.SCALE_PNG
        chart = Embedded.png(
            scale_png(doc.points, doc.usl, doc.amdahl, out, f"redline scale: {doc.status}", doc.goal_label)
        )
    return write_text(run_dir / layout.REPORT_HTML, scale_html(doc, chart))
