"""The JUnit files redline writes are read by a JUnit parser (junitparser, as CI tools read
them): `run --threshold --junit` one case per gate, `audit --junit --fail-on` one per check."""

from __future__ import annotations

from pathlib import Path

from junitparser import Failure, JUnitXml, Skipped

from conftest import GEN_CPUS, run_redline

FIXTURES = Path(__file__).parent / "fixtures" / "audit"
GEN = ",".join(map(str, GEN_CPUS))


def _cases(path: Path) -> list:
    (suite,) = list(JUnitXml.fromfile(str(path)))
    return list(suite)


def _failed(case) -> list:
    return [r for r in case.result if isinstance(r, Failure)]


def test_run_junit_has_one_case_per_threshold_and_fails_the_broken_one(calibrated, tmp_path):
    lab = calibrated(servers=4, service_ms=10)
    out = tmp_path / "run.xml"
    proc = run_redline(
        "run", "--url", lab.url, "--rate", "40", "--duration", "1", "--cpus", GEN, "--no-profile",
        "--results", str(tmp_path / "res"), "--threshold", "p99<0.001ms,errors<1%", "--junit", str(out),
    )  # fmt: skip
    assert proc.returncode == 99, proc.stderr
    cases = {c.name: c for c in _cases(out)}
    assert set(cases) == {"requests succeeded", "threshold p99<0.001ms", "threshold errors<1%"}, list(cases)
    (broken,) = _failed(cases["threshold p99<0.001ms"])
    assert broken.type == "threshold" and "BROKEN" in (broken.message or "")
    assert not _failed(cases["threshold errors<1%"]) and not _failed(cases["requests succeeded"])


def test_audit_junit_one_case_per_check_and_fail_on(tmp_path):
    out = tmp_path / "audit.xml"
    proc = run_redline("audit", "--root", str(FIXTURES / "untuned"), "--junit", str(out), "--fail-on", "high")
    assert proc.returncode == 1 and "3 check(s) failed at high or above" in proc.stderr
    cases = _cases(out)
    assert len(cases) == 39
    failed = sorted(c.name for c in cases if _failed(c))
    assert failed == ["host.kvm", "keystone.cache_backend", "libvirt.version"]
    assert all(_failed(c)[0].type == "audit" for c in cases if _failed(c))

    proc = run_redline("audit", "--root", str(FIXTURES / "tuned"), "--junit", str(out), "--fail-on", "low")
    assert proc.returncode == 0, proc.stderr
    assert not any(_failed(c) for c in _cases(out))

    proc = run_redline("audit", "--root", str(FIXTURES / "empty"), "--junit", str(out))
    assert proc.returncode == 0
    assert all(any(isinstance(r, Skipped) for r in c.result) for c in _cases(out))
