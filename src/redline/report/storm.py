"""Report of a storm run folder: seed 000's phase chart, a per-instance timeline, one HTML page.

phases.png: the share of instances in each phase over time as stacked areas, with host CPU
and disk utilisation (from monitor.npz) as lines on a second axis. timeline.png: one bar
per instance, coloured by phase. report.html embeds both (base64) with the phase table, so
it is self-contained.
"""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path

import numpy as np

from redline.atomic import write_text
from redline.monitor.series import MonitorSeries
from redline.storm.analysis import STATES, occupancy, summarise
from redline.storm.model import MARKS, StormResult

PHASES_PNG = "phases.png"
TIMELINE_PNG = "timeline.png"
COLOURS = {"queued": "#d9d9d9", "create": "#4e79a7", "ping": "#f28e2b", "ssh": "#e15759",
           "pre-delete": "#bab0ac", "delete": "#76b7b2", "done": "#ffffff"}  # fmt: skip
SHOWN = ("create", "ping", "ssh", "pre-delete", "delete")


def host_lines(series: MonitorSeries | None, start_ns: int) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """(t_s since the storm's start, mean CPU busy %, busiest disk %) — pure."""
    if series is None or len(series) == 0:
        return None
    t = (series.t_ns - start_ns) / 1e9 - series.interval_s / 2  # the middle of each interval
    cpu = series.cpu_pct.mean(axis=1)
    disk = np.nanmax(series.disk_busy_pct, axis=1) if series.disk_busy_pct.shape[1] else np.full(len(series), np.nan)
    return t, cpu, disk


def phases_png(result: StormResult, series: MonitorSeries | None, out: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    end = float(np.nanmax([result.end_s, np.nanmax(result.marks_s) if np.isfinite(result.marks_s).any() else 1.0]))
    t = np.linspace(0, max(end, 1.0), 600)
    occ = occupancy(result.marks_s, t)
    fig, ax = plt.subplots(figsize=(10, 4.8), dpi=110)
    ax.stackplot(t, [occ[s] * 100 for s in SHOWN], labels=[f"waiting: {s}" for s in SHOWN], colors=[COLOURS[s] for s in SHOWN], alpha=0.85)
    ax.set_xlim(0, t[-1])
    ax.set_ylim(0, 100)
    ax.set_xlabel("seconds since the storm started")
    ax.set_ylabel("share of instances in each phase, %")
    lines = host_lines(series, result.start_ns)
    handles, labels = ax.get_legend_handles_labels()
    if lines is not None:
        ax2 = ax.twinx()
        lt, cpu, disk = lines
        (h1,) = ax2.plot(lt, cpu, color="#6a3d9a", lw=2, label="host CPU busy % (all CPUs)")
        (h2,) = ax2.plot(lt, disk, color="#1b9e77", lw=2, ls="--", label="disk busy % (busiest)")
        ax2.set_ylim(0, 105)
        ax2.set_ylabel("host utilisation, %")
        handles += [h1, h2]
        labels += [h1.get_label(), h2.get_label()]
    ax.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=4, fontsize=8, frameon=False)
    ax.set_title(f"storm {result.run_id}: {len(result.names)} instances, driver {result.driver}")
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    plt.close(fig)
    return out


def timeline_png(result: StormResult, out: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    m = result.marks_s
    n = m.shape[0]
    fig, ax = plt.subplots(figsize=(10, max(2.5, 0.22 * n + 1.2)), dpi=110)
    spans = (("create", 0, 1), ("ping", 1, 2), ("ssh", 2, 3), ("pre-delete", 3, 4), ("delete", 4, 5))
    for i in range(n):
        for name, a, b in spans:
            if np.isfinite(m[i, a]) and np.isfinite(m[i, b]):
                ax.barh(i, m[i, b] - m[i, a], left=m[i, a], color=COLOURS[name], height=0.7)
        if result.errors[i]:
            last = np.nanmax(m[i]) if np.isfinite(m[i]).any() else 0.0
            ax.plot([last], [i], "kx")
    for name, _, _ in spans:
        ax.barh([-10], [0], color=COLOURS[name], label=name)
    ax.set_ylim(-0.7, n - 0.3)
    ax.invert_yaxis()
    ax.set_yticks(range(n))
    ax.set_yticklabels([nm.rsplit("-", 1)[-1] for nm in result.names], fontsize=7)
    ax.set_ylabel("instance")
    ax.set_xlabel("seconds since the storm started")
    ax.legend(ncol=5, fontsize=8, loc="lower right")
    ax.set_title("per-instance timeline (x: failed)")
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)
    return out


def _img(path: Path) -> str:
    return f'<img alt="{path.name}" src="data:image/png;base64,{base64.b64encode(path.read_bytes()).decode()}" style="max-width:100%">'


def _f(v) -> str:
    return "—" if v is None or (isinstance(v, float) and not np.isfinite(v)) else f"{v:.2f}"


def write_storm_report(run_dir: Path) -> Path:
    run_dir = Path(run_dir)
    doc = json.loads((run_dir / "run.json").read_text())
    result = StormResult.load(run_dir / doc.get("files", {}).get("phases", "phases.npz"))
    mon_path = run_dir / doc.get("files", {}).get("monitor", "monitor.npz")
    series = MonitorSeries.load(mon_path) if mon_path.exists() else None
    png = run_dir / "png"
    p1 = phases_png(result, series, png / PHASES_PNG)
    p2 = timeline_png(result, png / TIMELINE_PNG)
    s = summarise(result)
    rows = "".join(
        f"<tr><td>{html.escape(p.phase)}</td><td>{p.count}</td><td>{_f(p.min_s)}</td><td>{_f(p.median_s)}</td><td>{_f(p.p90_s)}</td><td>{_f(p.max_s)}</td></tr>"
        for p in s.phases
    )
    inst = "".join(
        "<tr><td>" + html.escape(name) + "</td>" + "".join(f"<td>{_f(float(v))}</td>" for v in row) + f"<td>{html.escape(err)}</td></tr>"
        for name, row, err in zip(result.names, result.marks_s, result.errors)
    )
    notes = "".join(f"<li>{html.escape(n)}</li>" for n in result.notes)
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>redline storm {html.escape(result.run_id)}</title>
<style>body{{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#222}}table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:2px 8px;text-align:right}}td:first-child{{text-align:left}}</style></head><body>
<h1>Boot storm {html.escape(result.run_id)}: {s.count} instances ({html.escape(result.driver)})</h1>
<p>{html.escape(doc.get('command_line', ''))}<br>status: {html.escape(doc.get('status', '?'))}; launch concurrency {result.plan.concurrency};
first running {_f(s.first_active_s)} s, last running {_f(s.last_active_s)} s, last SSH login {_f(s.last_ssh_s)} s, total {_f(s.total_s)} s;
{s.reached['ssh']}/{s.count} reached SSH, {s.failed} failed.</p>
<ul>{notes}</ul>
<h2>Phases over time</h2><p>Stacked areas: the share of instances waiting in each phase (create: requested → running; ping: running → first echo reply;
ssh: → a login with the lab key ran a command; delete: delete requested → gone from the one shared list). Lines: host CPU busy (mean of all CPUs) and the busiest disk, from the monitor.</p>
{_img(p1)}
<h2>Phase times, seconds</h2><table><tr><th>phase</th><th>n</th><th>min</th><th>median</th><th>p90</th><th>max</th></tr>{rows}</table>
<h2>Per-instance timeline</h2>{_img(p2)}
<h2>Instances (seconds since start)</h2><table><tr><th>name</th>{''.join(f'<th>{m}</th>' for m in MARKS)}<th>error</th></tr>{inst}</table>
</body></html>
"""
    return write_text(run_dir / "report.html", page)


__all__ = ["write_storm_report", "phases_png", "timeline_png", "host_lines", "STATES"]
