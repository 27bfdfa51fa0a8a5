"""Report of a storm run folder: seed 000's phase chart, a per-instance timeline, one HTML page.

phases.png: the share of instances in each phase over time as stacked areas, with host CPU
and disk utilisation (from monitor.npz) as lines on a second axis. timeline.png: one bar
per instance, coloured by phase. report.html (templates/storm.html.j2) embeds both
(base64) with the phase table and "where the time goes" (run.json's phase CPU table and
findings, as the storm job or `redline diagnose` derived them), so it is self-contained.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from redline.atomic import write_text
from redline.errors import UserError
from redline.model.series import MonitorSeries
from redline.model.storm import StormRunResult
from redline.model.storm_diagnosis import OTHER, PhaseCpu
from redline.report.png import figure, save
from redline.report.templates import Embedded, render
from redline.store import RunFolder, layout
from redline.storm.analysis import STATES, occupancy, summarise
from redline.storm.model import MARKS, StormResult

COLOURS = {"queued": "#d9d9d9", "create": "#4e79a7", "ping": "#f28e2b", "ssh": "#e15759",
           "pre-delete": "#bab0ac", "delete": "#76b7b2", "done": "#ffffff"}  # fmt: skip
SHOWN = ("create", "ping", "ssh", "pre-delete", "delete")


def _read(run_dir: Path) -> tuple[StormRunResult, StormResult, MonitorSeries | None]:
    folder = RunFolder.open(run_dir)
    doc = folder.read()
    if not isinstance(doc, StormRunResult):
        raise UserError(f"{run_dir} is a {doc.command!r} run folder, not a storm's")
    series = folder.read_monitor() if folder.has_monitor() else None
    return doc, folder.read_storm_marks(), series


def host_lines(series: MonitorSeries | None, start_ns: int) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """(t_s since the storm's start, mean CPU busy %, busiest disk %) — pure."""
    if series is None or len(series) == 0:
        return None
    t = (series.t_ns - start_ns) / 1e9 - series.interval_s / 2  # the middle of each interval
    cpu = series.cpu_pct.mean(axis=1)
    disk = np.nanmax(series.disk_busy_pct, axis=1) if series.disk_busy_pct.shape[1] else np.full(len(series), np.nan)
    return t, cpu, disk


def _shown(result: StormResult) -> list[str]:
    """The states worth an area: not a phase the driver could not observe."""
    return [s for s in SHOWN if s not in result.skipped]


def phases_png(result: StormResult, series: MonitorSeries | None, out: Path) -> Path:
    end = float(np.nanmax([result.end_s, np.nanmax(result.marks_s) if np.isfinite(result.marks_s).any() else 1.0]))
    t = np.linspace(0, max(end, 1.0), 600)
    occ = occupancy(result.marks_s, t, result.skipped)
    shown = _shown(result)
    fig = figure(10, 4.8)
    ax = fig.add_subplot()
    ax.stackplot(
        t,
        [occ[s] * 100 for s in shown],
        labels=[f"waiting: {result.phase_label(s)}" for s in shown],
        colors=[COLOURS[s] for s in shown],
        alpha=0.85,
    )
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
    return save(fig, out)


def timeline_png(result: StormResult, out: Path) -> Path:
    m = result.marks_s
    n = m.shape[0]
    fig = figure(10, max(2.5, 0.22 * n + 1.2))
    ax = fig.add_subplot()
    spans: tuple[tuple[str, int, int], ...] = (
        ("create", 0, 1), ("ping", 1, 2), ("ssh", 2, 3), ("pre-delete", 3, 4), ("delete", 4, 5),
    )  # fmt: skip
    if "ping" in result.skipped:  # the next observed phase starts at running
        spans = tuple(x for x in spans if x[0] != "ping")
        spans = tuple((name, 1, b) if name == "ssh" else (name, a, b) for name, a, b in spans)
        if "ssh" in result.skipped:
            spans = tuple(
                (name, 1, b) if name == "pre-delete" else (name, a, b) for name, a, b in spans if name != "ssh"
            )
    for i in range(n):
        for name, a, b in spans:
            if np.isfinite(m[i, a]) and np.isfinite(m[i, b]):
                ax.barh(i, m[i, b] - m[i, a], left=m[i, a], color=COLOURS[name], height=0.7)
        if result.errors[i]:
            last = np.nanmax(m[i]) if np.isfinite(m[i]).any() else 0.0
            ax.plot([last], [i], "kx")
    for name, _, _ in spans:  # zero-width bars off the chart: one legend entry per phase
        ax.barh([-10], [0], color=COLOURS[name], label=result.phase_label(name))
    ax.set_ylim(-0.7, n - 0.3)
    ax.invert_yaxis()
    ax.set_yticks(range(n))
    ax.set_yticklabels([nm.rsplit("-", 1)[-1] for nm in result.names], fontsize=7)
    ax.set_ylabel("instance")
    ax.set_xlabel("seconds since the storm started")
    ax.legend(ncol=5, fontsize=8, loc="lower right")
    ax.set_title("per-instance timeline (x: failed)")
    return save(fig, out)


def group_columns(table: Sequence[PhaseCpu]) -> list[str]:
    """The groups of the phase CPU table in the monitor's order, "other" last."""
    cols = list(dict.fromkeys(g for pc in table for g in pc.groups if g != OTHER))
    return [*cols, OTHER] if any(OTHER in pc.groups for pc in table) else cols


# What each phase's area means, for the sentence above the chart.
_PHASE_SPANS = {
    "create": "requested → running",
    "ping": "running → first echo reply",
    "ssh": "→ a login with the lab key ran a command",
    "delete": "delete requested → gone from the one shared list",
}


def phase_legend(result: StormResult) -> str:
    """The phases the chart shows and what each spans, in the driver's words."""
    parts = []
    for name, span in _PHASE_SPANS.items():
        if name in result.skipped:
            continue
        label = result.phase_label(name)
        if label != name:  # observed another way: its label says how, from where the phase starts
            span = "from running" if name == "ssh" and "ping" in result.skipped else "from the mark before"
        parts.append(f"{label}: {span}")
    return "; ".join(parts)


def storm_html(doc: StormRunResult, result: StormResult, phases: Embedded, timeline: Embedded) -> str:
    # Findings under their phase, in the table's order; any not tied to one phase after them.
    names = [pc.phase for pc in doc.phase_cpu]
    by_phase = {n: [f for f in doc.findings if f.figures.get("phase") == n] for n in names}
    loose = [f for f in doc.findings if f.figures.get("phase") not in names]
    s = summarise(result)
    n = len(result.names)
    last = result.last_seen or ("",) * n
    rows = [
        (name, row, tasks, seen, error)
        for name, row, tasks, seen, error in zip(
            result.names, result.marks_s.tolist(), result.task_marks_s.tolist(), last, result.errors
        )
    ]
    return render(
        "storm.html.j2",
        result=result,
        s=s,
        command_line=doc.command_line,
        status=doc.status,
        error=doc.error or "",
        phases=phases,
        timeline=timeline,
        marks=[result.mark_label(m) for m in MARKS],
        task_marks=result.task_marks,
        has_last_seen=any(last),
        instances=rows,
        goal=result.goal,
        goal_label=result.mark_label(result.goal),
        last_goal_s=s.last_ssh_s if result.goal == "ssh" else s.last_active_s,
        phase_legend=phase_legend(result),
        calls=", ".join(f"{k} {v}" for k, v in sorted(result.api_calls.items())),
        phase_cpu=doc.phase_cpu,
        group_columns=group_columns(doc.phase_cpu),
        findings_by_phase=by_phase,
        other_findings=loose,
        diagnosed=bool(doc.phase_cpu or doc.findings),
    )


def write_storm_report(run_dir: Path) -> Path:
    run_dir = Path(run_dir)
    doc, result, series = _read(run_dir)
    png = run_dir / layout.PNG_DIR
    phases = phases_png(result, series, png / layout.STORM_PHASES_PNG)
    timeline = timeline_png(result, png / layout.STORM_TIMELINE_PNG)
    page = storm_html(doc, result, Embedded.png(phases), Embedded.png(timeline))
    return write_text(run_dir / layout.REPORT_HTML, page)


__all__ = ["STATES", "host_lines", "phase_legend", "phases_png", "timeline_png", "write_storm_report"]
