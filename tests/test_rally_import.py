"""`redline import rally`: Rally task files become the equivalent redline commands."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from redline.errors import UserError
from redline.interop.rally_task import translate_task

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "rally"


def test_authenticate_keystone_rps_imports_to_the_equivalent_run() -> None:
    (t,) = translate_task((EXAMPLES / "authenticate-keystone-rps.json").read_text(), "task")
    # 600 iterations at 20/s: a 30 s run at 20 token issues/s, Rally's SLA as thresholds.
    assert t.argv == (
        "redline",
        "run",
        "--scenario",
        "keystone.issue",
        "--rate",
        "20",
        "--duration",
        "30",
        "--timeout",
        "600",
        "--threshold",
        "errors<=0%",
        "--threshold",
        "avg<=0.5s",
    )
    assert any(u.startswith("context users") for u in t.unmapped)


def test_stepped_rps_and_two_request_iterations() -> None:
    first, second = translate_task((EXAMPLES / "keystone-v2-mixed.yaml").read_text(), "task")
    assert first.argv is not None
    # 10→50/s by 10 every 5 s: 500 iterations in 20 s, the other 500 at 50/s: 30 s; 2 requests each.
    assert first.argv[first.argv.index("--rate") + 1] == "20"
    assert first.argv[first.argv.index("--end-rate") + 1] == "100"
    assert first.argv[first.argv.index("--duration") + 1] == "30"
    # validate_nova, constant runner, 2 in flight × 2 flavor lists each
    assert second.argv is not None and second.argv[1:4] == ("capacity", "--scenario", "openstack.flavors")
    assert second.argv[second.argv.index("--connections") + 1] == "4"
    assert any(u == "hook sys_call" for u in second.unmapped)


def test_the_emitted_command_is_accepted_by_redline() -> None:
    (t,) = translate_task((EXAMPLES / "authenticate-keystone-constant.yaml").read_text(), "task")
    assert t.argv is not None and t.argv[1] == "capacity"
    # --help after the options: click parses (and rejects unknown) options before printing help.
    proc = subprocess.run([sys.executable, "-m", "redline", *t.argv[1:], "--help"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize(
    "text", ["{{ rps }}", "[1, 2]", "Authenticate.keystone: 3", "version: 2\nsubtasks: []", ": : :"]
)
def test_bad_tasks_are_one_line_errors(text: str) -> None:
    with pytest.raises(UserError):
        translate_task(text, "task")


def test_cli_error_is_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "t.yaml"
    bad.write_text("[1]")
    proc = subprocess.run(
        [sys.executable, "-m", "redline", "import", "rally", str(bad)], capture_output=True, text=True
    )
    assert proc.returncode == 2 and proc.stderr.startswith("redline: error:") and proc.stderr.count("\n") == 1


def test_authenticate_validate_nova_becomes_the_flavor_list_at_repetitions_times_the_rate() -> None:
    (t,) = translate_task((EXAMPLES / "authenticate-validate-nova.yaml").read_text(), "task")
    # 300 iterations at 10/s, 2 flavor lists each: 30 s at 20 requests/s
    assert t.argv == (
        "redline", "run", "--scenario", "openstack.flavors", "--rate", "20", "--duration", "30",
        "--timeout", "600", "--threshold", "errors<=1%",
    )  # fmt: skip
    assert any("2 × novaclient flavors.list()" in n for n in t.notes)
    assert not any("repetitions" in u for u in t.unmapped)
    task = (
        '{"Authenticate.validate_cinder": [{"args": {"repetitions": 3},'
        ' "runner": {"type": "constant", "times": 10, "concurrency": 2}}]}'
    )
    (c,) = translate_task(task, "task")
    assert c.argv is not None and c.argv[:7] == (
        "redline", "capacity", "--scenario", "openstack.request", "--service", "volumev3", "--path",
    )  # fmt: skip
    assert "--connections" in c.argv and c.argv[c.argv.index("--connections") + 1] == "6"
    (o,) = translate_task('{"Authenticate.validate_octavia": [{"args": {"repetitions": 1}, "runner": {}}]}', "task")
    assert o.argv is None and "no preset for octavia" in o.unmapped[0]
