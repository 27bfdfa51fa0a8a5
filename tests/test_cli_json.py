"""`--json` on every command that reports something, and shell completion.

The walk below reads the commands from the typer app itself, so a command added without
`--json` fails here until it gets one or is named, with its reason, in REPORTS_NOTHING.
Each `--json` added for issue 14 has a smoke test that parses what the command prints.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import urllib.request
from pathlib import Path

import pytest
import typer.main

from conftest import GEN_CPUS, redline_cmd, run_redline
from redline.cli.app import app

HERE = Path(__file__).parent
TOPO = str(HERE / "fixtures" / "topology" / "2s-8c-2t-2nodes-nic-irq-0-1.json")

# Commands whose output is not a result a program would read.
REPORTS_NOTHING = {
    # A foreground server: its banner is for people; `lab identity up --json` reports the service.
    "lab identity serve",
}
# Reporting commands still without --json, in modules other helpers own (issue 14 asks
# their owners for it). Listed, not skipped: once one gets --json this test says to drop it.
PENDING = {
    "lab identity down",  # cli/lab_identity.py add_down_and_status
    "lab keystone down",  # the same function
    "export rally",  # cli/interop.py: prints the file written
}


def _commands(cmd, path=()):
    """(name, has --json) for every command that runs something, groups with a body included."""
    subs = getattr(cmd, "commands", None)
    runs = subs is None or getattr(cmd, "invoke_without_command", False)
    if runs and path:  # the root's options are --version and completion
        yield " ".join(path), any("--json" in p.opts for p in cmd.params)
    for name, sub in (subs or {}).items():
        yield from _commands(sub, (*path, name))


def test_every_reporting_command_has_json():
    found = dict(_commands(typer.main.get_command(app)))
    assert {"run", "capacity", "storm", "storm cleanup", "tune domain", "lab calibrated"} <= found.keys()
    without = {name for name, has in found.items() if not has}
    assert without == REPORTS_NOTHING | PENDING, (
        f"add --json to {sorted(without - REPORTS_NOTHING - PENDING)}; "
        f"drop from PENDING/REPORTS_NOTHING: {sorted((REPORTS_NOTHING | PENDING) - without)}"
    )


def _json(proc: subprocess.CompletedProcess) -> dict:
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)  # the whole of stdout: nothing else is printed there


def test_tune_domain_json():
    doc = _json(run_redline("tune", "domain", "--vcpus", "2", "--memory", "1G", "--topology", TOPO, "--json"))
    assert doc["xml"].startswith("<domain") and "vcpupin" in doc["xml"]
    assert len(doc["placement"]["pins"]) == 2 and doc["placement"]["level"] == "core"
    assert doc["problems"] == [] and doc["out"] is None
    assert not set(doc["placement"]["pins"]) & set(doc["placement"]["reserved"])


def test_tune_domain_json_with_out(tmp_path):
    out = tmp_path / "guest.xml"
    doc = _json(run_redline("tune", "domain", "--vcpus", "2", "--memory", "1G", "--topology", TOPO, "--out", str(out), "--json"))  # fmt: skip
    assert doc["xml"] is None and doc["out"] == str(out) and out.read_text().startswith("<domain")


def test_tune_host_json_plan_then_apply(tmp_path):
    root = tmp_path / "host"
    shutil.copytree(HERE / "fixtures" / "audit" / "untuned", root)
    plan = _json(run_redline("tune", "host", "--root", str(root), "--json"))
    assert plan["changes"] and plan["applied"] is None
    assert all(c["finding"] and c["change"] for c in plan["changes"])
    done = _json(run_redline("tune", "host", "--root", str(root), "--apply", "--json"))
    assert done["applied"] and Path(done["backup_dir"]).is_dir()
    again = _json(run_redline("tune", "host", "--root", str(root), "--json"))["changes"]
    assert len(again) < len(plan["changes"]) and "libvirt.max_workers" not in {c["finding"] for c in again}


def test_storm_cleanup_json(tmp_path):
    # A run id no storm has: nothing of anyone else's is touched.
    doc = _json(run_redline("storm", "cleanup", "0e0e0e0e", "--state-dir", str(tmp_path), "--json"))
    assert doc["run_id"] == "0e0e0e0e" and isinstance(doc["done"], list)


def test_lab_openstack_down_json_when_not_up(tmp_path):
    assert _json(run_redline("lab", "openstack", "down", "--state-dir", str(tmp_path), "--json")) == {"done": []}


def test_lab_calibrated_json_announces_a_reachable_target():
    proc = subprocess.Popen(
        redline_cmd("lab", "calibrated", "--port", "0", "--servers", "2", "--service-ms", "1", "--json"),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    try:
        doc = json.loads(proc.stdout.readline())
        assert doc["servers"] == 2 and doc["capacity_rps"] == 2000
        with urllib.request.urlopen(doc["url"], timeout=10) as r:
            assert r.status == 200
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _err = proc.communicate(timeout=30)
    assert out == ""  # the one line was all


@pytest.mark.slow
def test_report_json(calibrated, tmp_path):
    lab = calibrated(servers=4, service_ms=2)
    run = _json(run_redline("run", "--url", lab.url + "/", "--rate", "50", "--duration", "1", "--cpus", str(GEN_CPUS[0]), "--results", str(tmp_path), "--json"))  # fmt: skip
    doc = _json(run_redline("report", run["run_dir"], "--json"))
    assert doc["run_dir"] == run["run_dir"]
    files = [Path(f) for f in doc["files"]]
    assert any(f.name == "report.html" for f in files) and all(f.is_file() for f in files)


@pytest.mark.parametrize("shell, marker", [("bash", "complete_bash"), ("zsh", "#compdef redline")])
def test_show_completion_prints_a_script(shell, marker):
    # typer detects the user's shell; its documented switch for scripts and tests names it instead.
    env = os.environ | {"_TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION": "1"}
    r = subprocess.run(redline_cmd("--show-completion", shell), capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode == 0, r.stderr
    assert marker in r.stdout and "_REDLINE_COMPLETE" in r.stdout


def test_completion_completes_commands():
    # What the bash script asks redline for at a TAB after `redline lab hy`.
    env = os.environ | {"_REDLINE_COMPLETE": "complete_bash", "COMP_WORDS": "redline lab hy", "COMP_CWORD": "2"}
    r = subprocess.run(redline_cmd(), capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode == 0 and r.stdout.split() == ["hypervisor"], r
