"""Report of a scale run folder: the USL and Amdahl fits drawn over their data points.

scale.png: left, throughput X(N) = N / T(N) per storm with both fitted curves and the
linear ideal; right, T(N) itself against the ideal (as long as one) and fully serial (N
times as long). report.html embeds it with the points (linked to each storm's own
report), the fitted parameters and the plain sentences. Reads the fits from run.json:
computing them is the scale job's business, not the report's.
"""

from __future__ import annotations

import html
import json
from pathlib import Path

import numpy as np

from redline.atomic import write_text
from redline.analysis.scalability import ScaleFit
from redline.report.storm import _img

SCALE_PNG = "scale.png"


def scale_png(points: list[dict], usl: ScaleFit | None, amdahl: ScaleFit | None, out: Path, title: str = "") -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = np.array([p["n"] for p in points], float)
    t = np.array([p["t_s"] for p in points], float)
    x = n / t
    grid = np.linspace(1, max(n.max() * 1.25, 2), 300)
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(11, 4.2), dpi=110)
    ax.plot(n, x, "ko", label="storms (measured)", zorder=5)
    fits = [(f, style) for f, style in ((usl, "-"), (amdahl, "--")) if f is not None]
    for f, style in fits:
        label = (f"USL σ={f.sigma.value:.3f} κ={f.kappa_value:.4f}" if f.model == "usl" else f"Amdahl σ={f.sigma.value:.3f}")
        ax.plot(grid, f.predict(grid), style, label=label)
        bx.plot(grid, grid / f.predict(grid), style, label=label)
    if fits:
        lam = fits[0][0].lam
        ax.plot(grid, lam * grid, ":", color="grey", label="linear (no contention)")
    ax.set_xlabel("instances launched at once, N")
    ax.set_ylabel("instances per second to SSH, X(N)")
    ax.set_ylim(0, max(float(x.max()) * 1.5, 1e-9))
    ax.set_xlim(0, grid[-1])
    ax.legend(fontsize=8)
    t1 = float(np.median(t[n == n.min()])) / n.min()  # time of one, scaled to N = 1
    bx.plot(n, t, "ko", label="storms (measured)", zorder=5)
    bx.plot(grid, np.full_like(grid, t1 * n.min()), ":", color="grey", label="ideal: as long as the smallest")
    bx.plot(grid, t1 * grid, "-.", color="#b07aa1", label="fully serial")
    bx.set_xlabel("instances launched at once, N")
    bx.set_ylabel("first request → last SSH login, s")
    bx.set_ylim(0, max(float(t.max()) * 1.3, 1e-9))
    bx.set_xlim(0, grid[-1])
    bx.legend(fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    plt.close(fig)
    return out


def _fit_row(f: ScaleFit) -> str:
    kappa = f.kappa.text(5) if f.kappa is not None else "— (0 by definition)"
    peak = (f"N* ≈ {f.peak_n:.1f}, X ≈ {f.peak_x:.3f}/s" if f.peak_n else
            f"none; ceiling λ/σ ≈ {f.peak_x:.3f}/s" if f.peak_x else "none")  # fmt: skip
    return (f"<tr><td>{'USL' if f.model == 'usl' else 'Amdahl'}</td><td>{f.lam:.4f}</td><td>{html.escape(f.sigma.text())}</td>"
            f"<td>{html.escape(kappa)}</td><td>{html.escape(peak)}</td><td>{f.rel_rmse:.3f}</td><td>{f.dof}</td></tr>")  # fmt: skip


def write_scale_report(run_dir: Path) -> Path:
    run_dir = Path(run_dir)
    doc = json.loads((run_dir / "run.json").read_text())
    points = doc.get("points", [])
    usl = ScaleFit.from_dict(doc["usl"]) if doc.get("usl") else None
    amdahl = ScaleFit.from_dict(doc["amdahl"]) if doc.get("amdahl") else None
    chart = ""
    if points:
        png = scale_png(points, usl, amdahl, run_dir / "png" / SCALE_PNG, f"redline scale: {doc.get('status', '?')}")
        chart = _img(png)
    rows = "".join(
        f"<tr><td>{p['n']}</td><td>{p.get('round', 0) + 1}</td><td>{p['t_s']:.2f}</td><td>{p['throughput_per_s']:.4f}</td>"
        f"<td><a href=\"{html.escape(p['run_dir'])}/report.html\">{html.escape(p['run_dir'])}</a></td></tr>"
        for p in points
    )
    fits = "".join(_fit_row(f) for f in (usl, amdahl) if f is not None)
    said = "".join(f"<li>{html.escape(s)}</li>" for s in doc.get("sentences", []))
    note = ""
    if usl is not None and usl.boot_method == "none":
        note = "<p>As many parameters as points: the USL curve passes through every point and has no interval. Add sizes or --repeat.</p>"
    elif usl is not None and usl.dof <= 2:
        note = (f"<p>{usl.dof} degree(s) of freedom left for the USL: its intervals are wide because the noise of one "
                "storm is barely known from so few points. More sizes or --repeat narrow them.</p>")  # fmt: skip
    error = f"<p><b>{html.escape(doc.get('error', ''))}</b></p>" if doc.get("error") else ""
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>redline scale</title>
<style>body{{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#222}}table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:2px 8px;text-align:right}}td:first-child{{text-align:left}}</style></head><body>
<h1>Scalability: storms of {html.escape(', '.join(map(str, doc.get('plan', {}).get('counts', []))))} instances</h1>
<p>{html.escape(doc.get('command_line', ''))}<br>status: {html.escape(doc.get('status', '?'))}</p>{error}
<ul>{said}</ul>
{chart}
<h2>Fits</h2><p>X(N) = λN / (1 + σ(N − 1) + κN(N − 1)); σ: contention (serial fraction), κ: coherency. 95% intervals from a parametric bootstrap.</p>
<table><tr><th>model</th><th>λ, 1/s</th><th>σ [95%]</th><th>κ [95%]</th><th>peak</th><th>rms log residual</th><th>dof</th></tr>{fits}</table>
{note}
<h2>Storms</h2><table><tr><th>N</th><th>round</th><th>T(N), s</th><th>X(N), 1/s</th><th>storm</th></tr>{rows}</table>
</body></html>
"""
    return write_text(run_dir / "report.html", page)
