"""Comparisons across capacity runs: one row per run (N, latency and CPU cost at N, the
target's configuration), as data, a terminal table and one self-contained HTML page."""

from __future__ import annotations

import html
import json
from dataclasses import asdict, dataclass
from pathlib import Path

from redline.errors import UserError
from redline.report.run_folder import RUN_JSON


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
    config: dict


def _fmt_config(target: dict) -> tuple[str, dict]:
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
            parts.append(f"bcrypt {v}" if k == "password_hash_rounds" else f"{k} {v}" if k in ("workers", "processes", "threads") else str(v))
    if sc.get("token_pool") is not None:
        parts.append(f"pool {sc['token_pool']}")
    return (", ".join(parts) or target.get("url", "?")), lab


def row_of(run_dir: Path, doc: dict) -> CompareRow:
    if doc.get("command") != "capacity":
        raise UserError(f"{run_dir} is a {doc.get('command')!r} run, not a capacity run")
    outcome = doc.get("outcome") or {}
    n = outcome.get("n")
    at_n = [p for p in doc.get("probes", []) if n is not None and p["rate"] == n and p["verdict"]["state"] == "stable"]
    at_n.sort(key=lambda p: (not p["full"], -p["index"]))  # the full-length confirmation first
    p50 = p99 = cpu = gen = None
    if at_n:
        p = at_n[0]
        lat = p["summary"].get("latency_ms", {})
        p50, p99 = lat.get("p50"), lat.get("p99")
        achieved = p["summary"].get("achieved_rps") or 0
        if p.get("target_cpu_pct") is not None and achieved > 0:
            cpu = p["target_cpu_pct"] / 100.0 * 1000.0 / achieved
        gen = p.get("generator_cpu_pct")
    target = doc.get("target") or {}
    text, config = _fmt_config(target)
    return CompareRow(
        run=run_dir.name,
        scenario=(target.get("scenario") or {}).get("name", "http"),
        target=text,
        outcome=outcome.get("state", doc.get("status", "?")),
        n=n,
        p50_ms=p50,
        p99_ms=p99,
        target_cpu_ms_per_request=cpu,
        generator_cpu_pct=gen,
        protocol=(doc.get("protocol") or {}).get("name", "?"),
        config=config,
    )


def load_rows(run_dirs: list[Path]) -> list[CompareRow]:
    rows = []
    for d in run_dirs:
        path = Path(d) / RUN_JSON
        try:
            doc = json.loads(path.read_text())
        except OSError:
            raise UserError(f"{d} is not a run folder (no readable {RUN_JSON})") from None
        except ValueError:
            raise UserError(f"{path} is not valid JSON") from None
        rows.append(row_of(Path(d), doc))
    return rows


def _num(v: float | None, fmt: str) -> str:
    return "—" if v is None else format(v, fmt)


def to_html(rows: list[CompareRow], title: str = "redline compare") -> str:
    best = max((r.n or 0 for r in rows), default=0) or 1
    body = []
    for r in rows:
        width = 0 if r.n is None else max(1, round(300 * r.n / best))
        body.append(
            "<tr>"
            f"<td>{html.escape(r.run)}</td><td>{html.escape(r.scenario)}</td><td>{html.escape(r.target)}</td>"
            f"<td class=n>{_num(r.n, 'g')}<div class=bar style='width:{width}px'></div></td>"
            f"<td>{html.escape(r.outcome)}</td><td class=n>{_num(r.p50_ms, '.1f')}</td><td class=n>{_num(r.p99_ms, '.1f')}</td>"
            f"<td class=n>{_num(r.target_cpu_ms_per_request, '.2f')}</td><td class=n>{_num(r.generator_cpu_pct, '.0f')}</td>"
            f"<td>{html.escape(r.protocol)}</td></tr>"
        )
    configs = "".join(
        f"<h3>{html.escape(r.run)}</h3><pre>{html.escape(json.dumps(r.config, indent=2))}</pre>" for r in rows
    )
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:system-ui,sans-serif;margin:2em}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:4px 8px;vertical-align:top}}td.n{{text-align:right}}
.bar{{background:#4a7;height:6px;margin-top:3px}}pre{{background:#f6f6f6;padding:6px}}</style></head><body>
<h1>{html.escape(title)}</h1>
<p>N: the largest rate (requests/s) sustained without degrading; latency and CPU are those of the
stable probe at N (the full-length confirmation when there is one). Target CPU per request is the
target processes' CPU time divided by the requests answered.</p>
<table><tr><th>run</th><th>scenario</th><th>target</th><th>N /s</th><th>outcome</th><th>p50 ms</th><th>p99 ms</th>
<th>target CPU ms/req</th><th>generator CPU %</th><th>protocol</th></tr>
{''.join(body)}</table><h2>Target configurations</h2>{configs}</body></html>
"""


def rows_json(rows: list[CompareRow]) -> list[dict]:
    return [asdict(r) for r in rows]
