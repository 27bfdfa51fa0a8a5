"""Helpers for tests that talk to identity services (reference or real Keystone)."""

from __future__ import annotations

import http.client
import json
from urllib.parse import urlsplit


def call(url: str, method: str, path: str, body: dict | None = None, headers: dict | None = None):
    """One request; returns (status, headers dict (lower-case), decoded JSON or None)."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    try:
        data = json.dumps(body).encode() if body is not None else None
        hdrs = {"Content-Type": "application/json", **(headers or {})}
        conn.request(method, parts.path.rstrip("/") + path, body=data, headers=hdrs)
        r = conn.getresponse()
        raw = r.read()
        doc = json.loads(raw) if raw and r.getheader("Content-Type", "").startswith("application/json") else None
        return r.status, {k.lower(): v for k, v in r.getheaders()}, doc
    finally:
        conn.close()


def password_body(user: str, password: str, project: str | None) -> dict:
    auth: dict = {
        "identity": {
            "methods": ["password"],
            "password": {"user": {"name": user, "domain": {"name": "Default"}, "password": password}},
        }
    }
    if project:
        auth["scope"] = {"project": {"name": project, "domain": {"name": "Default"}}}
    return {"auth": auth}


def issue(url: str, user: str, password: str, project: str | None = "admin") -> str:
    status, headers, _ = call(url, "POST", "/auth/tokens", password_body(user, password, project))
    assert status == 201, status
    return headers["x-subject-token"]


def found_search(proc, cores: int, floor_share: float = 0.25) -> tuple[dict, dict]:
    """A `capacity --json` that found N: exit 0 and outcome `found`; returns (stdout JSON,
    run.json). N is then bounded by what the run measured of the target's CPU:
    N × the cheapest CPU time per request any stable probe measured fits in the `cores`
    the target was pinned to (10 % margin for the monitor's 1 s sampling). And N is not far
    below that CPU bound: the costliest CPU time per request of a stable probe (the lowest
    rates pay the idle processes' share too) puts the bound at `cores / cost`, and these
    targets (Keystone on one core with its cache and database) degrade when CPU-bound — at
    their degraded probes they used 80-95 % of the core — so N is at least `floor_share` of
    it (measured on this 2-core machine: issue N 60/s against a floor of 12/s, validate
    84/s against 26/s; a search whose verdicts call a healthy probe degraded stops far below)."""
    from pathlib import Path

    assert "Traceback" not in proc.stderr, proc.stderr
    assert proc.returncode == 0, (proc.returncode, proc.stderr[-2000:])
    out = json.loads(proc.stdout)
    assert out["outcome"]["state"] == "found", out["outcome"]
    doc = json.loads((Path(out["run_dir"]) / "run.json").read_text())
    assert doc["outcome"] == out["outcome"]
    n = out["outcome"]["n"]
    cpu_s = [
        p["target_cpu_pct"] / 100 / p["summary"]["achieved_rps"]
        for p in doc["probes"]
        if p["verdict"]["state"] == "stable" and p["target_cpu_pct"] and p["summary"]["achieved_rps"]
    ]
    assert cpu_s, "no stable probe measured the target's CPU"
    assert n * min(cpu_s) <= cores * 1.1, (n, cpu_s, cores, probe_table(doc))
    assert n >= floor_share * cores / max(cpu_s), (n, cpu_s, cores, probe_table(doc))
    return out, doc


def probe_table(doc: dict) -> str:
    """One line per probe (for assertion messages and -s output)."""
    return "\n".join(
        f"{p['rate']:g}/s {'full' if p['full'] else 'short'} {p['verdict']['state']}: achieved "
        f"{p['summary']['achieved_rps']:.1f}/s, target CPU {p['target_cpu_pct']}%, "
        f"p50 {p['summary']['latency_ms'].get('p50')} ms"
        for p in doc["probes"]
    )
