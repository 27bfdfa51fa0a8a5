"""Audit report as terminal text, JSON, or one self-contained HTML page."""

from __future__ import annotations

import json

from jinja2 import Environment, select_autoescape

from redline.model.audit import AuditReport
from redline.model.finding import Finding, Status

ORDER = {Status.FAIL: 0, Status.PASS: 1, Status.SKIP: 2}
MARK = {Status.FAIL: "FAIL", Status.PASS: "ok  ", Status.SKIP: "skip"}


def _sorted(report: AuditReport) -> list[Finding]:
    return sorted(report.findings, key=lambda f: (ORDER[f.status], -f.severity.rank, f.id))


def to_json(report: AuditReport) -> str:
    return json.dumps(report.to_json(), indent=2)


def to_text(report: AuditReport, verbose: bool = False) -> str:
    """Failures in full, passes one line each, skips one line each (with the reason)."""
    out: list[str] = []
    counts = report.to_json()["summary"]
    out.append(
        f"redline audit of {report.root}: {counts['fail']} findings, {counts['pass']} ok, "
        f"{counts['skip']} not applicable ({report.elapsed_s:.2f} s)"
    )
    for f in _sorted(report):
        if f.status is Status.FAIL:
            out.append("")
            out.append(f"FAIL [{f.severity.value}] {f.id}: {f.title}")
            for e in f.evidence:
                out.append(f"  read : {e.path} = {e.value}")
            out.append(f"  why  : {f.why}")
            out.append(f"  from : {f.source}")
            out.append(f"  fix  : {f.fix}")
    passes = [f for f in _sorted(report) if f.status is Status.PASS]
    skips = [f for f in _sorted(report) if f.status is Status.SKIP]
    if passes:
        out.append("")
        for f in passes:
            detail = "; ".join(f"{e.path} = {e.value}" for e in f.evidence[:2])
            out.append(f"ok   {f.id}: {detail}")
            if verbose:
                out.append(f"       why: {f.why}")
    if skips:
        out.append("")
        for f in skips:
            out.append(f"skip {f.id}: {f.why}")
    return "\n".join(out)


HTML = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>redline audit {{ r.root }}</title>
<style>
body{font:14px/1.45 system-ui,sans-serif;margin:2em auto;max-width:70em;color:#222}
h1{font-size:1.4em} table{border-collapse:collapse;width:100%}
td,th{border-bottom:1px solid #ddd;padding:.4em .5em;vertical-align:top;text-align:left}
.fail{color:#b00020;font-weight:600}.pass{color:#1b7f3a}.skip{color:#888}
.sev-high{background:#fde2e4}.sev-medium{background:#fff1d6}.sev-low{background:#fbfbe3}
code{font-size:.92em;background:#f4f4f4;padding:0 .2em} small{color:#666}
</style></head><body>
<h1>redline audit — {{ r.root }}</h1>
<p>{{ s.fail }} findings, {{ s.pass }} ok, {{ s.skip }} not applicable; read in {{ "%.2f"|format(r.elapsed_s) }} s.</p>
<table><tr><th>status</th><th>check</th><th>evidence</th><th>why</th><th>fix</th></tr>
{% for f in findings %}
<tr class="{% if f.status.value == 'fail' %}sev-{{ f.severity.value }}{% endif %}">
<td class="{{ f.status.value }}">{{ f.status.value }}{% if f.status.value == 'fail' %}<br><small>{{ f.severity.value }}</small>{% endif %}</td>
<td><b>{{ f.id }}</b><br>{{ f.title }}</td>
<td>{% for e in f.evidence %}<code>{{ e.path }}</code> = {{ e.value }}<br>{% endfor %}</td>
<td>{{ f.why }}<br><small>source: {{ f.source }}</small></td>
<td>{{ f.fix }}</td></tr>
{% endfor %}
</table></body></html>
"""


def to_html(report: AuditReport) -> str:
    env = Environment(autoescape=select_autoescape(default=True))
    return env.from_string(HTML).render(r=report, s=report.to_json()["summary"], findings=_sorted(report))
