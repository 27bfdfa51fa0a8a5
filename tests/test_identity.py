"""The reference identity service against clients we did not write (keystoneauth1,
openstacksdk) and against the rules a load test relies on: expiry and revocation."""

from __future__ import annotations

import os
import time
from datetime import datetime

import pytest
from keystoneauth1 import exceptions as ks_exc
from keystoneauth1 import identity, session
from keystoneauth1.identity import v3

from conftest import TARGET_CPUS, assert_one_line_error, run_redline
from identity_helpers import call, issue, password_body
from redline.identity.tokens import TokenCodec, TokenError, TokenPayload, new_audit_id
from redline.lab import identity as lab
from redline.procs import group_members

PASSWORD = "correct horse battery"


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    d = tmp_path_factory.mktemp("identity")
    state = lab.up(lab.IdentityLabConfig(d, workers=2, bench_users=3, cpus=TARGET_CPUS), PASSWORD)
    yield state
    lab.down(d)
    assert not group_members(state.pid)


def _v3(url: str, user: str = "admin", password: str = PASSWORD, project: str = "admin") -> v3.Password:
    return v3.Password(
        auth_url=url, username=user, password=password, project_name=project,
        user_domain_name="Default", project_domain_name="Default",
    )  # fmt: skip


def test_keystoneauth_password_auth_and_validate(service):
    sess = session.Session(auth=_v3(service.url))
    token = sess.get_token()
    r = sess.get(service.url + "/auth/tokens", headers={"X-Subject-Token": token})
    assert r.status_code == 200
    body = r.json()["token"]
    assert r.headers["X-Subject-Token"] == token
    assert body["project"]["name"] == "admin" and body["user"]["name"] == "admin"
    assert {x["name"] for x in body["roles"]} >= {"admin"}
    # the catalog names the identity endpoint itself
    assert sess.get_endpoint(service_type="identity", interface="public") == service.url
    head = sess.head(service.url + "/auth/tokens", headers={"X-Subject-Token": token})
    assert head.status_code == 200


def test_keystoneauth_discovery_from_the_root_url(service):
    root = service.url.removesuffix("/v3")
    auth = identity.Password(
        auth_url=root, username="bench-1", password=PASSWORD, project_name="bench",
        user_domain_name="Default", project_domain_name="Default",
    )  # fmt: skip
    access = auth.get_access(session.Session())
    assert access.project_name == "bench" and access.username == "bench-1"
    assert access.expires.timestamp() > time.time() + 3000


def test_openstacksdk_authorize(service):
    import openstack

    conn = openstack.connect(
        auth_url=service.url, username="admin", password=PASSWORD, project_name="admin",
        user_domain_name="Default", project_domain_name="Default",
    )  # fmt: skip
    token = conn.authorize()
    status, _, doc = call(service.url, "GET", "/auth/tokens", headers={"X-Auth-Token": token, "X-Subject-Token": token})
    assert status == 200 and doc["token"]["user"]["name"] == "admin"


def test_bad_password_and_unknown_project_are_401(service):
    with pytest.raises(ks_exc.Unauthorized):
        _v3(service.url, password="wrong").get_token(session.Session())
    status, _headers, doc = call(service.url, "POST", "/auth/tokens", password_body("admin", PASSWORD, "nope"))
    assert status == 401 and doc["error"]["code"] == 401
    status, _, _ = call(service.url, "POST", "/auth/tokens", password_body("bench-0", PASSWORD, "admin"))
    assert status == 401  # no role on that project


def test_token_method_and_revocation(service):
    admin = issue(service.url, "admin", PASSWORD)
    user = issue(service.url, "bench-0", PASSWORD, "bench")
    body = {
        "auth": {
            "identity": {"methods": ["token"], "token": {"id": user}},
            "scope": {"project": {"name": "bench", "domain": {"id": "default"}}},
        }
    }
    status, headers, doc = call(service.url, "POST", "/auth/tokens", body)
    assert status == 201 and doc["token"]["methods"] == ["token"]
    child = headers["x-subject-token"]
    assert len(doc["token"]["audit_ids"]) == 2
    # revoke the parent: both the parent and the token made from it stop validating
    status, _, _ = call(service.url, "DELETE", "/auth/tokens", headers={"X-Auth-Token": admin, "X-Subject-Token": user})
    assert status == 204
    for tok in (user, child):
        status, _, doc = call(
            service.url, "GET", "/auth/tokens", headers={"X-Auth-Token": admin, "X-Subject-Token": tok}
        )
        assert status == 404, tok
    # a revoked token cannot authenticate either (through any worker)
    for _ in range(4):
        status, _, _ = call(
            service.url, "GET", "/auth/tokens", headers={"X-Auth-Token": user, "X-Subject-Token": admin}
        )
        assert status == 401


def test_non_admin_cannot_validate_someone_elses_token(service):
    admin = issue(service.url, "admin", PASSWORD)
    user = issue(service.url, "bench-2", PASSWORD, "bench")
    status, _, _ = call(service.url, "GET", "/auth/tokens", headers={"X-Auth-Token": user, "X-Subject-Token": admin})
    assert status == 403
    status, _, _ = call(service.url, "GET", "/auth/tokens", headers={"X-Auth-Token": user, "X-Subject-Token": user})
    assert status == 200


def _iso_ts(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


EXPIRY_POLL_LIMIT_S = 30.0  # generous: the token lives 3 s; a loaded machine may be slow to answer


def test_expired_tokens_are_refused(tmp_path):
    """--token-ttl is the tokens' lifetime (expires_at − issued_at, to the service's
    millisecond); a token validates before it and is refused (401) once it has passed —
    never before its expires_at. Polled (at most EXPIRY_POLL_LIMIT_S), not timed."""
    ttl = 3.0
    state = lab.up(lab.IdentityLabConfig(tmp_path, workers=1, bench_users=0, token_ttl_s=ttl), PASSWORD)
    try:
        tok = issue(state.url, "admin", PASSWORD)
        hdrs = {"X-Auth-Token": tok, "X-Subject-Token": tok}
        status, _, doc = call(state.url, "GET", "/auth/tokens", headers=hdrs)
        assert status == 200
        expires, issued = _iso_ts(doc["token"]["expires_at"]), _iso_ts(doc["token"]["issued_at"])
        assert expires - issued == pytest.approx(ttl, abs=0.002), doc["token"]
        deadline = time.time() + EXPIRY_POLL_LIMIT_S
        while True:
            asked = time.time()
            status, _, _ = call(state.url, "GET", "/auth/tokens", headers=hdrs)
            if status != 200 or time.time() > deadline:
                break
            time.sleep(0.2)
        assert status == 401, f"still {status} {EXPIRY_POLL_LIMIT_S:g} s after a {ttl:g} s token was issued"
        assert asked >= expires - 0.05, (asked, expires)  # refused only once expired (50 ms for clock reads)
    finally:
        lab.down(tmp_path)
    assert not group_members(state.pid)


def test_token_codec_round_trip_and_tamper():
    from cryptography.fernet import Fernet

    codec = TokenCodec([Fernet.generate_key()])
    p = TokenPayload("ab" * 16, "cd" * 16, ("password",), 1.8e9, new_audit_id())
    tok = codec.seal(p)
    assert "=" not in tok and codec.open(tok) == p
    with pytest.raises(TokenError):
        codec.open(tok[:-3] + ("A" if tok[-3] != "A" else "B") + tok[-2:])
    with pytest.raises(TokenError):
        TokenCodec([Fernet.generate_key()]).open(tok)


def test_cli_up_twice_down_twice_one_line_each(tmp_path):
    env_dir = ["--state-dir", str(tmp_path)]
    os.environ["REDLINE_LAB_PASSWORD"] = PASSWORD
    try:
        up = run_redline("lab", "identity", "up", "--workers", "1", "--users", "1", *env_dir)
        assert up.returncode == 0, up.stderr
        assert "OS_AUTH_URL=http://127.0.0.1:" in up.stdout
        assert PASSWORD not in up.stdout  # given through the environment: not echoed
        assert PASSWORD not in (tmp_path / "state.json").read_text()
        again = run_redline("lab", "identity", "up", *env_dir)
        assert "already running" in assert_one_line_error(again)
        status = run_redline("lab", "identity", "status", *env_dir)
        assert status.returncode == 0 and "running at" in status.stdout
        pid = lab.ServiceState.load(tmp_path).pid
    finally:
        del os.environ["REDLINE_LAB_PASSWORD"]
        down = run_redline("lab", "identity", "down", *env_dir)
    assert down.returncode == 0 and "stopped" in down.stdout
    assert not group_members(pid)
    again = run_redline("lab", "identity", "down", *env_dir)
    assert again.returncode == 0 and again.stderr.strip().count("\n") == 0 and "nothing to stop" in again.stderr
    status = run_redline("lab", "identity", "status", *env_dir)
    assert status.returncode == 3 and "not running" in status.stdout


def test_generated_password_is_printed_once(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "REDLINE_LAB_PASSWORD"}
    import subprocess
    import sys

    up = subprocess.run(
        [
            sys.executable,
            "-m",
            "redline",
            "lab",
            "identity",
            "up",
            "--workers",
            "1",
            "--users",
            "0",
            "--state-dir",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    try:
        assert up.returncode == 0, up.stderr
        password = next(l.split("=", 1)[1] for l in up.stdout.splitlines() if l.startswith("OS_PASSWORD="))
        state = lab.ServiceState.load(tmp_path)
        issue(state.url, "admin", password)
        for f in tmp_path.rglob("*"):
            if f.is_file() and f.suffix != ".db":
                assert password.encode() not in f.read_bytes(), f
        status = run_redline("lab", "identity", "status", "--state-dir", str(tmp_path))
        assert password not in status.stdout
    finally:
        lab.down(tmp_path)
