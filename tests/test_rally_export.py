"""`redline export rally` output accepted by real Rally (PyPI rally-openstack, cached venv):
`rally task import` stores it and `rally task report` renders it. Opt-in: REDLINE_OPTIN=1."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(
    not os.environ.get("REDLINE_OPTIN"), reason="opt-in: REDLINE_OPTIN=1 (installs Rally from PyPI once)"
)

PASSWORD = "export-test-" + os.urandom(6).hex()


def _redline(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "redline", *args], capture_output=True, text=True, env=env, timeout=300
    )


def test_export_is_imported_and_reported_by_real_rally(tmp_path: Path) -> None:
    from redline.lab import lab_venv

    rally = lab_venv.ensure("rally", ("rally-openstack",)) / "bin" / "rally"
    env = os.environ | {"REDLINE_LAB_PASSWORD": PASSWORD, "OS_PASSWORD": PASSWORD}
    state = tmp_path / "identity"
    up = _redline(
        "lab", "identity", "up", "--port", "0", "--workers", "1", "--users", "2", "--state-dir", str(state), env=env
    )
    assert up.returncode == 0, up.stderr
    url = next(line.split("=", 1)[1] for line in up.stdout.splitlines() if line.startswith("OS_AUTH_URL="))
    try:
        run = _redline(
            "run",
            "--scenario",
            "keystone.issue",
            "--os-auth-url",
            url,
            "--os-username",
            "bench-0",
            "--os-project-name",
            "bench",
            "--os-user-domain-name",
            "Default",
            "--os-project-domain-name",
            "Default",
            "--rate",
            "40",
            "--duration",
            "2",
            "--no-profile",
            "--results",
            str(tmp_path / "results"),
            env=env,
        )
        assert run.returncode == 0, run.stderr
    finally:
        _redline("lab", "identity", "down", "--state-dir", str(state), env=env)
    (folder,) = (tmp_path / "results").iterdir()
    out = tmp_path / "rally.json"
    exp = _redline("export", "rally", str(folder), "-o", str(out), env=env)
    assert exp.returncode == 0, exp.stderr
    text = out.read_text()
    assert PASSWORD not in text
    workload = json.loads(text)["tasks"][0]["subtasks"][0]["workloads"][0]
    assert workload["total_iteration_count"] == 80 and "Authenticate.keystone" in workload["scenario"]

    conf = tmp_path / "rally.conf"
    conf.write_text(f"[database]\nconnection = sqlite:///{tmp_path / 'rally.sqlite'}\n")

    def rally_cmd(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(rally), "--config-file", str(conf), *args], capture_output=True, text=True, cwd=tmp_path, timeout=180
        )

    assert rally_cmd("db", "create").returncode == 0
    assert rally_cmd("env", "create", "--name", "redline").returncode == 0
    imported = rally_cmd("task", "import", "--file", str(out), "--env", "redline")
    assert imported.returncode == 0, imported.stderr
    task_uuid = imported.stdout.split("Task UUID: ")[1].split(".")[0]
    detailed = rally_cmd("task", "detailed", task_uuid)
    assert "keystone_v3.fetch_token" in detailed.stdout and "| 80 " in detailed.stdout
    report = tmp_path / "report.html"
    rendered = rally_cmd("task", "report", task_uuid, "--out", str(report))
    assert rendered.returncode == 0, rendered.stderr
    assert "Authenticate.keystone" in report.read_text()
