"""Comparisons across capacity runs: one row per run (N, latency and CPU cost at N, the
target's configuration), as data, a terminal table and one self-contained HTML page."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from redline.errors import UserError
from redline.model.capacity import CapacityResult
from redline.model.codec import SchemaError, from_json
from redline.model.study import StudyState
from redline.store import AnyResult, RunFolder
from redline.store.layout import STUDY_JSON


@dataclass(frozen=True)
class CompareRow:
    run: str
    scenario: str
    target: str  # a one-line configuration
    outcome: str
    n: float | None
    p50_ms: float | None
    p99_ms: float | None
    target_cpu_ms_per_request: float | None  # target CPU time per answered request at N
    generator_cpu_pct: float | None
    protocol: str
    config: dict[str, Any]


def _fmt_config(target: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    lab = dict(target.get("lab") or {})
    sc = target.get("scenario") or {}
    if sc.get("password_hash_rounds") is not None:
        lab.setdefault("password_hash_rounds", sc["password_hash_rounds"])
    if target.get("embedded") and not target.get("lab"):  # the calibrated target describes itself inline
        lab = {k: v for k, v in target.items() if k not in ("url", "embedded")}
    keys = ("kind", "server", "workers", "processes", "threads", "database", "storage", "cache", "password_hash_rounds")
    parts = []
    for k in keys:
        if lab.get(k) is not None:
            v = lab[k]
            parts.append(
                f"bcrypt {v}"
                if k == "password_hash_rounds"
                else f"{k} {v}"
                if k in ("workers", "processes", "threads")
                else str(v)
            )
    if sc.get("token_pool") is not None:
        parts.append(f"pool {sc['token_pool']}")
    return (", ".join(parts) or target.get("url", "?")), lab


def row_of(run_dir: Path, result: AnyResult) -> CompareRow:
    if not isinstance(result, CapacityResult):
        raise UserError(f"{run_dir} is a {result.command!r} run, not a capacity run")
    at_n = result.probe_at_n()
    p50 = p99 = cpu = gen = None
    if at_n is not None:
        p50, p99 = at_n.summary.latency_ms.get("p50"), at_n.summary.latency_ms.get("p99")
        cpu = at_n.target_cpu_ms_per_request
        gen = at_n.generator_cpu_pct
    target = result.target
    text, config = _fmt_config(target)
    return CompareRow(
        run=run_dir.name,
        scenario=(target.get("scenario") or {}).get("name", "http"),
        target=text,
        outcome=result.outcome.state if result.outcome else result.status,
        n=result.outcome.n if result.outcome else None,
        p50_ms=p50,
        p99_ms=p99,
        target_cpu_ms_per_request=cpu,
        generator_cpu_pct=gen,
        protocol=result.protocol.get("name", "?"),
        config=config,
    )


def load_rows(run_dirs: list[Path]) -> list[CompareRow]:
    """Rows of capacity run folders; a study folder stands for its done cells' run folders."""
    return [row_of(d, RunFolder.open(d).read()) for d in _expand([Path(p) for p in run_dirs])]


def _expand(paths: list[Path]) -> list[Path]:
    out: list[Path] = []
    for p in paths:
        if not (p / STUDY_JSON).is_file():
            out.append(p)
            continue
        try:
            state = from_json(StudyState, json.loads((p / STUDY_JSON).read_text()))
        except (OSError, ValueError, SchemaError) as exc:
            raise UserError(f"{p / STUDY_JSON} cannot be read: {exc}") from None
        cells = [p / r.run_dir for r in state.records if r.status == "done" and r.run_dir]
        if not cells:
            raise UserError(f"study {p} has no done cell to compare yet")
        out += cells
    return out


def to_html(rows: list[CompareRow], title: str = "redline compare") -> str:
    # jinja2 is imported here, not at the top: every CLI command imports this module.
    from redline.report.templates import render

    best = max((r.n or 0 for r in rows), default=0) or 1
    bars = [0 if r.n is None else max(1, round(300 * r.n / best)) for r in rows]
    configs = [(r.run, json.dumps(r.config, indent=2)) for r in rows]
    return render("compare.html.j2", title=title, rows=list(zip(rows, bars)), configs=configs)


def rows_json(rows: list[CompareRow]) -> list[dict[str, Any]]:
    return [asdict(r) for r in rows]
