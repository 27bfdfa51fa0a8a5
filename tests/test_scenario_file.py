"""Scenario files: the schema's checks (one line with file, line and key), and a two-step file
run against the reference identity service, its own database confirming both steps."""

from __future__ import annotations

import json
import re
import sqlite3
from pathlib import Path

import pytest

from conftest import GEN_CPUS, TARGET_CPUS, assert_one_line_error, run_redline
from redline.lab import identity as lab
from redline.scenarios.scenario_file import ScenarioFileError, load_scenario_file, parse_scenario

PASSWORD = "scenario-file-pw-7"
FERNET = re.compile(r"gAAAAAB[A-Za-z0-9_=-]{80,}")  # a Fernet token (not a base64 image's "gAAAA")
EXAMPLES = Path(__file__).parent.parent / "examples" / "scenarios"

GOOD = """\
version: 1
name: two
description: a mix
requests:
  - name: servers
    service: compute
    path: /servers/detail
    microversion: 2.10
    weight: 3
  - service: image
    path: /v2/images
    method: post
    body: {name: x, tags: [a, b]}
    headers: {X-Trace: "on"}
"""


def test_a_mix_compiles_with_weights_microversions_as_written_and_json_bodies():
    plan = parse_scenario(GOOD, "good.yaml")
    assert plan.name == "file:two" and plan.source == {"file": "good.yaml", "description": "a mix"}
    (servers, w1), (images, w2) = plan.requests
    assert (w1, w2) == (3, 1)
    assert servers.microversion == "2.10"  # not the float 2.1
    assert images.method == "POST" and json.loads(images.body) == {"name": "x", "tags": ["a", "b"]}
    assert images.headers == (("X-Trace", "on"),)


def test_the_examples_are_valid():
    files = sorted(EXAMPLES.glob("*.yaml"))
    assert files
    for f in files:
        plan = load_scenario_file(f)
        assert plan.all_requests


BAD = [
    ("version: 1\nsteps:\n  - service: identity\n    path: /v3\n   bad: [\n", 5, "(yaml)", "expected"),
    ("version: 1\nsteps:\n  - service: identity\n    path: /v3\n    colour: red\n", 5, "steps[1].colour", "unknown key"),
    ("version: 1\nrequests:\n  - service: identity\n    path: /v3\n    weight: heavy\n", 5, "requests[1].weight",
     "must be a whole number, not text 'heavy'"),
    ("version: 1\nsteps: []\n", 2, "steps", "is empty"),
    ("version: 1\nsteps:\n", 2, "steps", "is empty"),
    ("version: 1\nsteps:\n  - service: identity\n    path: /v3\n  - service: identity\n    path: /v3/auth/tokens\n"
     "    headers:\n      X-Subject-Token: ${subject}\n", 8, "steps[2].headers.X-Subject-Token",
     "${subject} is not a built-in"),
    ("version: 1\nrequests:\n  - service: identity\n    path: /v3\n    capture: {X-Subject-Token: s}\n", 5,
     "requests[1].capture", "only in steps entries"),
    ("version: 2\nsteps:\n  - {service: identity, path: /v3}\n", 1, "version", "must be 1"),
    ("steps:\n  - {service: identity, path: /v3}\n", 1, "version", "missing"),
    ("version: 1\nsteps:\n  - {service: identity}\n", 3, "steps[1].path", "missing"),
    ("version: 1\nsteps:\n  - {service: identity, path: v3}\n", 3, "steps[1].path", "must start with /"),
    ("version: 1\nsteps:\n  - {service: identity, path: /v3, capture: {X-Subject-Token: token}}\n", 3,
     "steps[1].capture.X-Subject-Token", "built-in"),
    ("version: 1\nsteps:\n  - {service: identity, path: /v3, auth: maybe}\n", 3, "steps[1].auth", "true or false"),
    ("version: 1\nrequests:\n  - {service: identity, path: /v3}\nsteps:\n  - {service: identity, path: /v3}\n", 4,
     "requests/steps", "exactly one"),
    ("version: 1\nversion: 1\nsteps:\n  - {service: identity, path: /v3}\n", 2, "version", "given twice"),
    ("version: 1\nsteps:\n  - {service: identity, path: '/v3/a$1'}\n", 3, "steps[1].path", "write $$"),
    ("- a list\n", 1, "(top level)", "must be a mapping"),
]  # fmt: skip


@pytest.mark.parametrize("text, line, key, reason", BAD)
def test_a_malformed_file_names_file_line_key_and_reason(text, line, key, reason):
    with pytest.raises(ScenarioFileError) as exc:
        parse_scenario(text, "bad.yaml")
    msg = str(exc.value)
    assert "\n" not in msg
    assert msg.startswith(f"bad.yaml:{line}: {key}: "), msg
    assert reason in msg, msg


@pytest.mark.parametrize("text, line, key, reason", [BAD[0], BAD[1], BAD[2], BAD[3], BAD[5]])
def test_redline_run_says_it_in_one_line_before_sending_anything(tmp_path, text, line, key, reason):
    f = tmp_path / "bad.yaml"
    f.write_text(text)
    # The auth URL answers nothing: the file is checked before any credential is used.
    proc = run_redline("run", "--scenario-file", str(f), "--os-auth-url", "http://127.0.0.1:9/v3", "--rate", "1")
    err = assert_one_line_error(proc)
    assert err.startswith(f"redline: error: {f}:{line}: {key}: "), err
    assert reason in err


def test_a_missing_file_is_one_line(tmp_path):
    proc = run_redline("run", "--scenario-file", str(tmp_path / "nope.yaml"), "--rate", "1")
    assert "nope.yaml" in assert_one_line_error(proc)


# -- a two-step file against the reference identity service ------------------------------


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    d = tmp_path_factory.mktemp("identity")
    state = lab.up(lab.IdentityLabConfig(d, workers=1, bench_users=1, cpus=TARGET_CPUS), PASSWORD)
    yield state, d
    lab.down(d)


ISSUE_THEN_REVOKE = """\
version: 1
name: issue-then-revoke
steps:
  - name: issue
    service: identity
    method: POST
    path: /v3/auth/tokens?nocatalog
    auth: false
    body: ${auth_body}
    capture:
      X-Subject-Token: fresh
  - name: revoke
    service: identity
    method: DELETE
    path: /v3/auth/tokens
    headers:
      X-Subject-Token: ${fresh}
"""


def _revoked(state_dir: Path) -> int:
    with sqlite3.connect(state_dir / "identity.db") as db:
        return int(db.execute("SELECT COUNT(*) FROM revoked").fetchone()[0])


def test_two_steps_issue_a_token_and_use_it_the_servers_database_counts_both(service, tmp_path):
    """Step 2 revokes the token step 1 issued: every row the service adds to its revocation
    table is one issued token (a fresh audit id) that the next step received and sent back."""
    state, d = service
    f = tmp_path / "issue-then-revoke.yaml"
    f.write_text(ISSUE_THEN_REVOKE)
    before = _revoked(d)
    proc = run_redline(
        "run", "--scenario-file", str(f), "--os-auth-url", state.url, "--os-username", "admin",
        "--os-password", PASSWORD, "--os-project-name", "admin", "--tokens", "2",
        "--rate", "20", "--duration", "2", "--cpus", ",".join(map(str, GEN_CPUS)),
        "--results", str(tmp_path / "res"), "--json",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    steps = {s["name"]: s for s in out["summary"]["steps"]}
    issue, revoke = steps["file:issue-then-revoke: issue"], steps["file:issue-then-revoke: revoke"]
    assert issue["count"] == revoke["count"] == 40 and issue["errors"] == revoke["errors"] == 0, steps
    # The preflight sends the iteration once more; the server counted each revocation.
    assert _revoked(d) - before == 40 + 1
    run_dir = Path(out["run_dir"])
    doc = json.loads((run_dir / "run.json").read_text())
    described = doc["target"]["scenario"]
    assert described["name"] == "file:issue-then-revoke" and [s["method"] for s in described["steps"]] == [
        "POST",
        "DELETE",
    ]
    # Neither the password nor a token reaches the run folder.
    for p in run_dir.rglob("*"):
        if p.is_file() and p.suffix in (".json", ".html", ".txt", ".log"):
            assert PASSWORD not in p.read_text(errors="replace"), p
            assert not FERNET.search(p.read_text(errors="replace")), p


def test_the_example_issue_then_validate_runs(service, tmp_path):
    state, _ = service
    proc = run_redline(
        "run", "--scenario-file", str(EXAMPLES / "issue-then-validate.yaml"), "--os-auth-url", state.url,
        "--os-username", "admin", "--os-password", PASSWORD, "--os-project-name", "admin", "--tokens", "1",
        "--rate", "10", "--duration", "1", "--cpus", ",".join(map(str, GEN_CPUS)),
        "--results", str(tmp_path), "--json",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    steps = json.loads(proc.stdout)["summary"]["steps"]
    assert [s["count"] for s in steps] == [10, 10] and all(s["errors"] == 0 for s in steps), steps
