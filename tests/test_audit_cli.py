"""The `redline audit` command end to end, as a user runs it (subprocess)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

FIXTURES = Path(__file__).parent / "fixtures" / "audit"


def redline(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "redline", *args], capture_output=True, text=True, timeout=60)


def test_json_output_on_fixture() -> None:
    r = redline("audit", "--root", str(FIXTURES / "untuned"), "--json")
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    assert data["schema"] == "redline.audit/1"
    ids = {f["id"]: f for f in data["findings"]}
    mw = ids["libvirt.max_workers"]
    assert mw["status"] == "fail"
    assert mw["evidence"] == [{"path": "/etc/libvirt/libvirtd.conf", "value": "max_workers = 20"}]
    assert "seed 000" in mw["source"]


def test_text_and_html_output(tmp_path: Path) -> None:
    out = tmp_path / "audit.html"
    r = redline("audit", "--root", str(FIXTURES / "untuned"), "--html", str(out))
    assert r.returncode == 0, r.stderr
    assert "FAIL [high] keystone.cache_backend" in r.stdout
    html = out.read_text()
    assert html.startswith("<!doctype html>") and "libvirt.max_workers" in html
    assert "<script src" not in html and "<link" not in html  # self-contained


def test_bad_root_is_one_line_error() -> None:
    r = redline("audit", "--root", "/definitely/not/here")
    assert r.returncode == 2
    assert r.stderr.strip().count("\n") == 0 and "not a directory" in r.stderr
    assert "Traceback" not in r.stderr


def test_unwritable_html_is_one_line_error() -> None:
    r = redline("audit", "--root", str(FIXTURES / "empty"), "--html", "/definitely/not/here/x.html")
    assert r.returncode == 2 and "cannot write" in r.stderr and "Traceback" not in r.stderr


def test_live_host_audit_is_real() -> None:
    # Its speed (goal: under 2 s) is measured by benchmarks/audit_time.py, not asserted here.
    r = redline("audit", "--json")
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    statuses = {f["status"] for f in data["findings"]}
    assert "pass" in statuses  # the live host has /proc and /sys: kernel checks read real values
    cpu = next(f for f in data["findings"] if f["id"] == "host.swappiness")
    assert cpu["evidence"][0]["value"] == Path("/proc/sys/vm/swappiness").read_text().strip()
