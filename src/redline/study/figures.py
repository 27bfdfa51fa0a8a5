"""The figures of a study's done cells, each read from the cell's own run folder (so every
number in the study's table traces to that folder's samples), and the factors' effects."""

from __future__ import annotations

import math
from pathlib import Path

from redline.analysis.study_effects import Observation, factor_effects
from redline.errors import UserError
from redline.model.capacity import CapacityResult
from redline.model.codec import SchemaError
from redline.model.finding import Status
from redline.model.run import RunResult
from redline.model.storm import ScaleResult, StormRunResult
from redline.model.study import CellFigures, CellPlan, Effect, StudyState
from redline.store import RunFolder

# The metric each job's cells are compared on (the effects' ratios are of it).
METRICS = {"capacity": "N /s", "run": "p99 ms", "storm": "last guest up s", "scale": "peak throughput /s"}


def cell_figures(folder: Path, state: StudyState) -> dict[str, CellFigures]:
    out: dict[str, CellFigures] = {}
    for cell in state.cells:
        rec = state.record(cell.id)
        if rec.status != "done" or not rec.run_dir:
            continue
        path = Path(rec.run_dir)
        path = path if path.is_absolute() else folder / path
        try:
            result = RunFolder.open(path).read()
        except (UserError, SchemaError, OSError, ValueError) as exc:  # damaged since: the table says so
            out[cell.id] = CellFigures(cell.id, METRICS[cell.command], None, limit=f"run folder unreadable: {exc}")
            continue
        out[cell.id] = _figures(cell, result)
    return out


def _figures(cell: CellPlan, result: object) -> CellFigures:
    metric = METRICS[cell.command]
    if isinstance(result, CapacityResult):
        at_n = result.probe_at_n()
        lat = at_n.summary.latency_ms if at_n is not None else {}
        return CellFigures(
            cell.id, metric, result.outcome.n if result.outcome else None,
            p50_ms=lat.get("p50"), p99_ms=lat.get("p99"),
            target_cpu_ms_per_request=at_n.target_cpu_ms_per_request if at_n is not None else None,
            limit=result.limit.headline if result.limit else (result.outcome.reason if result.outcome else None),
        )  # fmt: skip
    if isinstance(result, RunResult):
        lat = result.summary.latency_ms if result.summary else {}
        return CellFigures(
            cell.id, metric, lat.get("p99"), p50_ms=lat.get("p50"), p99_ms=lat.get("p99"),
            limit=result.limit.headline if result.limit else None,
        )  # fmt: skip
    if isinstance(result, StormRunResult):
        s = result.summary
        phases = {p.title: p.median_s for p in s.phases} if s else {}
        value = (s.last_ssh_s if s.last_ssh_s is not None else s.last_active_s) if s else None
        failing = [f for f in result.findings if f.status == Status.FAIL]
        return CellFigures(cell.id, metric, value, limit=failing[0].title if failing else None, phases=phases)
    if isinstance(result, ScaleResult):
        xs = [p.throughput for p in result.points if p.t_s > 0]
        return CellFigures(
            cell.id, metric, max(xs) if xs else None, limit=result.sentences[0] if result.sentences else None
        )
    return CellFigures(cell.id, metric, None, limit=f"not a {cell.command} result")


def effects(state: StudyState, levels: dict[str, tuple[object, ...]], figures: dict[str, CellFigures]) -> list[Effect]:
    """Each matrix factor's effect on the cells' metric (named variants are not in the matrix)."""
    obs = [
        Observation(c.factors, v)
        for c in state.cells
        if c.factors
        and (f := figures.get(c.id)) is not None
        and (v := f.value) is not None
        and math.isfinite(v)
        and v > 0
    ]
    metric = METRICS[state.cells[0].command] if state.cells else ""
    return factor_effects(levels, obs, metric)


def matrix_levels(state: StudyState) -> dict[str, tuple[object, ...]]:
    """The matrix's factors and levels in the file's order, read back from the cells."""
    levels: dict[str, list[object]] = {}
    for c in state.cells:
        for k, v in c.factors.items():
            seen = levels.setdefault(k, [])
            if v not in seen:
                seen.append(v)
    return {k: tuple(v) for k, v in levels.items()}
