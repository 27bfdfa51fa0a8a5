"""JUnit XML for CI: one test case per threshold, per search answer, per audit check.

The standard testsuites/testsuite/testcase shape (failure, skipped, time) that Jenkins,
GitLab and junitparser read. Only figures, check ids and findings go in: the command line
is already redacted in run.json, and evidence values that look like secrets are masked.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from redline.atomic import write_text
from redline.model.audit import AuditReport
from redline.model.capacity import CapacityResult
from redline.model.finding import Severity, Status
from redline.model.run import RunResult
from redline.model.thresholds import ThresholdReport

_SECRET_VALUE = re.compile(
    r"((?:password|passwd|secret|admin_token|auth_token|credential)[a-z_]*\s*[=:]\s*)\S+", re.IGNORECASE
)


@dataclass(frozen=True)
class Case:
    name: str
    classname: str
    time_s: float = 0.0
    failure: str | None = None  # message of a failed case
    detail: str = ""  # the failure's text body
    skipped: str | None = None
    output: str = ""  # system-out: what was measured, for passing cases too
    failure_type: str = "threshold"  # the failure element's type: threshold, search or audit


def _mask(text: str) -> str:
    return _SECRET_VALUE.sub(r"\1<redacted>", text)


def junit_xml(suite: str, cases: Iterable[Case], time_s: float, properties: dict[str, str]) -> str:
    cases = list(cases)
    root = ET.Element("testsuites", name="redline")
    ts = ET.SubElement(
        root,
        "testsuite",
        name=suite,
        tests=str(len(cases)),
        failures=str(sum(c.failure is not None for c in cases)),
        errors="0",
        skipped=str(sum(c.skipped is not None for c in cases)),
        time=f"{time_s:.3f}",
    )
    if properties:
        props = ET.SubElement(ts, "properties")
        for k, v in properties.items():
            ET.SubElement(props, "property", name=k, value=_mask(v))
    for c in cases:
        tc = ET.SubElement(ts, "testcase", name=c.name, classname=c.classname, time=f"{c.time_s:.3f}")
        if c.failure is not None:
            f = ET.SubElement(tc, "failure", message=_mask(c.failure), type=c.failure_type)
            f.text = _mask(c.detail or c.failure)
        elif c.skipped is not None:
            ET.SubElement(tc, "skipped", message=_mask(c.skipped))
        if c.output:
            ET.SubElement(tc, "system-out").text = _mask(c.output)
    for k in ("tests", "failures", "errors", "skipped", "time"):
        root.set(k, ts.attrib[k])
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def _threshold_cases(report: ThresholdReport | None, classname: str) -> list[Case]:
    if report is None:
        return []
    return [
        Case(
            name=f"threshold {c.threshold.expression}",
            classname=classname,
            time_s=c.window_s or 0.0,
            failure=None if c.passed else c.reason,
            output=c.reason,
        )
        for c in report.checks
    ]


def _properties(doc: RunResult | CapacityResult, run_dir: Path | None) -> dict[str, str]:
    props = {"command_line": doc.command_line, "status": doc.status}
    if run_dir is not None:
        props["run_dir"] = str(run_dir)
    return props


def run_cases(doc: RunResult) -> list[Case]:
    s = doc.summary
    ok = s.outcomes.get("ok", 0) if s else 0
    if s is None:
        measured = f"the run ended {doc.status} without a summary"
    else:
        measured = f"{ok:,} of {s.scheduled:,} requests succeeded in the {s.window_s:g} s window ({s.errors:,} errors)"
    succeeded = Case(
        name="requests succeeded",
        classname="redline.run",
        time_s=s.window_s if s else 0.0,
        failure=None if ok else f"no request succeeded: {measured}",
        output=measured,
        failure_type="errors",
    )
    return [succeeded, *_threshold_cases(doc.thresholds, "redline.run")]


def capacity_cases(doc: CapacityResult) -> list[Case]:
    o = doc.outcome
    found = o is not None and o.n is not None
    text = (
        f"N = {o.n:g}/s ({o.state}): {o.reason}"
        if o and o.n is not None
        else (f"no N ({o.state}): {o.reason}" if o else f"the search ended {doc.status} without an outcome")
    )
    n_case = Case(
        name="N found", classname="redline.capacity", time_s=doc.time_taken_s or 0.0,
        failure=None if found else text, output=text, failure_type="search",
    )  # fmt: skip
    return [n_case, *_threshold_cases(doc.thresholds, "redline.capacity")]


def result_junit(doc: RunResult | CapacityResult, run_dir: Path | None = None) -> str:
    if isinstance(doc, CapacityResult):
        cases, time_s = capacity_cases(doc), doc.time_taken_s or 0.0
    else:
        cases, time_s = run_cases(doc), doc.wall_s or 0.0
    return junit_xml(f"redline {doc.command}", cases, time_s, _properties(doc, run_dir))


def audit_cases(report: AuditReport, fail_on: Severity) -> list[Case]:
    """One case per check: a failing check at or above `fail_on` fails its case, one below it
    passes with the finding in its output (it is still reported), a check without input skips."""
    cases = []
    for f in report.findings:
        evidence = "; ".join(e.text for e in f.evidence)
        body = "\n".join(x for x in (f"[{f.severity}] {f.title}", evidence, f"why: {f.why}" if f.why else "",
                                     f"fix: {f.fix}" if f.fix else "") if x)  # fmt: skip
        failing = f.status is Status.FAIL and f.severity.rank >= fail_on.rank
        cases.append(
            Case(
                name=f.id,
                classname=f"redline.audit.{f.area}",
                failure=f"[{f.severity}] {f.title}: {evidence}" if failing else None,
                detail=body,
                skipped=(evidence or "not applicable: its input is absent") if f.status is Status.SKIP else None,
                output=f"{f.status}: {body}",
                failure_type="audit",
            )
        )
    return cases


def audit_junit(report: AuditReport, fail_on: Severity) -> str:
    props = {"root": report.root, "fail_on": str(fail_on)}
    return junit_xml("redline audit", audit_cases(report, fail_on), report.elapsed_s, props)


def write_junit(path: Path, xml: str) -> Path:
    return write_text(path, xml)
