"""The client side against a TLS identity endpoint and with an application credential:
`redline lab identity up --tls` serves HTTPS behind a self-signed certificate; keystone.*
runs verify it with --ca-file (or skip it with --insecure) in preflight and on the measured
path alike, refuse it with one line otherwise; an application-credential cloud in
clouds.yaml authenticates; the server's timing log counts what was sent."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from conftest import GEN_CPUS, TARGET_CPUS, assert_one_line_error, run_redline
from redline.lab import identity as lab

PASSWORD = "tls-Pa55-" + os.urandom(4).hex()
GEN = ",".join(map(str, GEN_CPUS))


@pytest.fixture(scope="module")
def tls_service(tmp_path_factory):
    root = tmp_path_factory.mktemp("tlslab")
    state = lab.up(
        lab.IdentityLabConfig(
            root / "identity", workers=1, bench_users=2, cpus=TARGET_CPUS, tls=True, timing_log=root / "timing.log"
        ),
        PASSWORD,
    )
    yield state
    lab.down(root / "identity")


def _run(url: str, results: Path, *extra: str, scenario: str = "keystone.issue"):
    return run_redline(
        "run", "--scenario", scenario, "--os-auth-url", url, "--os-username", "admin", "--os-password", PASSWORD,
        "--os-project-name", "admin", "--rate", "20", "--duration", "2", "--no-profile", "--cpus", GEN,
        "--results", str(results), "--json", *extra,
    )  # fmt: skip


def _no_secret(run_dir: Path) -> None:
    for f in run_dir.rglob("*"):
        if f.is_file():
            assert PASSWORD.encode() not in f.read_bytes(), f


def _timing_lines(state) -> list[list[str]]:
    return [line.split() for line in Path(state.config["timing_log"]).read_text().splitlines()]


def test_the_lab_serves_https_and_records_its_ca_and_application_credential(tls_service):
    assert tls_service.url.startswith("https://127.0.0.1:")
    assert Path(tls_service.config["ca_file"]).read_text().startswith("-----BEGIN CERTIFICATE-----")
    (ac,) = tls_service.config["application_credentials"]
    assert ac["user"] == "bench-0" and len(ac["id"]) == 32


@pytest.mark.parametrize("scenario", ["keystone.issue", "keystone.validate"])
def test_ca_file_verifies_the_certificate_in_preflight_and_on_the_measured_path(tls_service, tmp_path, scenario):
    before = len(_timing_lines(tls_service))
    proc = _run(tls_service.url, tmp_path, "--ca-file", tls_service.config["ca_file"], scenario=scenario)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    s = out["summary"]
    assert s["errors"] == 0 and s["responses"] >= 30, s
    doc = json.loads((Path(out["run_dir"]) / "run.json").read_text())
    assert doc["target"]["scenario"]["credentials"]["tls"]["ca_file"] == tls_service.config["ca_file"]
    # the server saw every measured request (and preflight's), each answered as the client counted it
    seen = _timing_lines(tls_service)[before:]
    want = "201" if scenario == "keystone.issue" else "200"
    assert sum(1 for line in seen if line[2] == want) >= s["responses"]
    assert all(int(sent) >= int(recv) for recv, sent, *_ in seen)
    _no_secret(Path(out["run_dir"]))


def test_insecure_skips_verification(tls_service, tmp_path):
    proc = _run(tls_service.url, tmp_path, "--insecure")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["summary"]["errors"] == 0 and out["summary"]["responses"] >= 30
    doc = json.loads((Path(out["run_dir"]) / "run.json").read_text())
    assert doc["target"]["scenario"]["credentials"]["tls"]["verify"] is False


def test_an_untrusted_certificate_is_one_line_that_says_what_to_pass(tls_service, tmp_path):
    proc = _run(tls_service.url, tmp_path)
    assert proc.returncode == 2
    line = assert_one_line_error(proc)
    assert "did not verify" in line and "--ca-file" in line and "--insecure" in line
    assert "did not answer" not in line
    assert [x for x in proc.stderr.splitlines() if x.strip()] == [line]  # nothing else on stderr


def _clouds(tmp_path: Path, state, secret: str) -> Path:
    (ac,) = state.config["application_credentials"]
    f = tmp_path / "clouds.yaml"
    f.write_text(
        "clouds:\n  ci:\n    auth_type: v3applicationcredential\n"
        f"    cacert: {state.config['ca_file']}\n"
        f"    auth:\n      auth_url: {state.url}\n      application_credential_id: {ac['id']}\n"
        f"      application_credential_secret: {secret}\n"
    )
    return f


def test_an_application_credential_in_clouds_yaml_authenticates(tls_service, tmp_path, monkeypatch):
    monkeypatch.setenv("OS_CLIENT_CONFIG_FILE", str(_clouds(tmp_path, tls_service, PASSWORD)))
    for scenario in ("keystone.issue", "keystone.validate"):
        proc = run_redline(
            "run", "--scenario", scenario, "--os-cloud", "ci", "--rate", "20", "--duration", "2", "--no-profile",
            "--cpus", GEN, "--results", str(tmp_path / scenario), "--json",
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        out = json.loads(proc.stdout)
        assert out["summary"]["errors"] == 0 and out["summary"]["responses"] >= 30, out["summary"]
        creds = json.loads((Path(out["run_dir"]) / "run.json").read_text())["target"]["scenario"]["credentials"]
        assert creds["auth_type"] == "v3applicationcredential" and creds["cloud"] == "ci"
        assert "application_credential_secret" not in creds
        _no_secret(Path(out["run_dir"]))


def test_a_wrong_application_credential_secret_stops_before_the_run(tls_service, tmp_path, monkeypatch):
    monkeypatch.setenv("OS_CLIENT_CONFIG_FILE", str(_clouds(tmp_path, tls_service, "not-the-secret")))
    proc = run_redline("run", "--scenario", "keystone.issue", "--os-cloud", "ci", "--rate", "5", "--duration", "1")
    assert proc.returncode == 2
    assert "refused the credentials" in assert_one_line_error(proc)
