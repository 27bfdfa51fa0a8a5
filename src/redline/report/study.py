"""A study's table (one row per cell) and its self-contained HTML page."""

from __future__ import annotations

from dataclasses import dataclass

from redline.model.study import CellFigures, Effect, StudyState


@dataclass(frozen=True)
class StudyRow:
    id: str
    label: str
    target: str
    status: str
    metric: str
    value: float | None
    p50_ms: float | None
    p99_ms: float | None
    target_cpu_ms_per_request: float | None
    limit: str | None  # the limiting resource (done) or why the cell failed
    duration_s: float | None
    run_dir: str | None
    phases: dict[str, float | None]


def study_rows(state: StudyState, figures: dict[str, CellFigures]) -> list[StudyRow]:
    rows = []
    for cell in state.cells:
        rec = state.record(cell.id)
        f = figures.get(cell.id)
        rows.append(
            StudyRow(
                id=cell.id, label=cell.label, target=cell.target, status=rec.status,
                metric=f.metric if f else "", value=f.value if f else None,
                p50_ms=f.p50_ms if f else None, p99_ms=f.p99_ms if f else None,
                target_cpu_ms_per_request=f.target_cpu_ms_per_request if f else None,
                limit=(f.limit if f else None) if rec.status == "done" else rec.reason,
                duration_s=rec.duration_s, run_dir=rec.run_dir, phases=dict(f.phases) if f else {},
            )
        )  # fmt: skip
    return rows


def phase_names(rows: list[StudyRow]) -> list[str]:
    names: list[str] = []
    for r in rows:
        names += [p for p in r.phases if p not in names]
    return names


def to_html(state: StudyState, rows: list[StudyRow], effects: list[Effect], description: str | None) -> str:
    from redline.report.templates import render  # jinja2 only when a page is written

    done = [r.value for r in rows if r.value is not None]
    best = max(done, default=0) or 1
    bars = [0 if r.value is None else max(1, round(300 * r.value / best)) for r in rows]
    return render(
        "study.html.j2",
        state=state,
        rows=list(zip(rows, bars, strict=True)),
        phases=phase_names(rows),
        effects=effects,
        description=description,
        metric=next((r.metric for r in rows if r.metric), ""),
    )
