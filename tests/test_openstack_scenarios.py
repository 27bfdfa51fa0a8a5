"""openstack.* scenarios: endpoints from a real catalog, tokens from a pool, presets and mixes.

Default suite: the reference identity service (its catalog holds identity). Opt-in
(REDLINE_OPTIN=1): real Keystone from the lab with a service registered in its catalog that
points at a calibrated target, so that `capacity` must find its known capacity C."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from conftest import GEN_CPUS, TARGET_CPUS, assert_one_line_error, run_redline
from redline.errors import UserError
from redline.lab import identity as lab
from redline.scenarios.openstack import (
    MIX,
    READ_MIX,
    join_path,
    microversion_headers,
    parse_presets,
    request_plan,
)

PASSWORD = "openstack-scen-pw-3"
GEN = ",".join(map(str, GEN_CPUS))
FERNET = re.compile(r"gAAAAAB[A-Za-z0-9_=-]{80,}")
optin = pytest.mark.skipif(not os.environ.get("REDLINE_OPTIN"), reason="opt-in: REDLINE_OPTIN=1 (real Keystone)")


# -- pure parts -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "endpoint, path, want",
    [
        ("http://h/compute/v2.1", "/servers/detail", "/compute/v2.1/servers/detail"),
        ("http://h:5000/v3", "/v3/projects", "/v3/projects"),  # the version segment once
        ("http://h/identity", "/v3/projects", "/identity/v3/projects"),
        ("http://h:9696/", "/v2.0/ports", "/v2.0/ports"),
        ("http://h:8778", "/", "/"),
        ("http://h/image", "v2/images?limit=5", "/image/v2/images?limit=5"),
        ("http://h:5000/v3", "/v3?x=1", "/v3?x=1"),
    ],
)
def test_paths_join_under_the_catalog_endpoint(endpoint, path, want):
    assert join_path(endpoint, path) == want


def test_microversions_travel_in_the_standard_header_and_novas_legacy_one():
    assert microversion_headers("compute", "2.79") == (
        ("OpenStack-API-Version", "compute 2.79"),
        ("X-OpenStack-Nova-API-Version", "2.79"),
    )
    assert microversion_headers("placement", "1.10") == (("OpenStack-API-Version", "placement 1.10"),)
    assert microversion_headers("image", None) == ()
    with pytest.raises(UserError):
        microversion_headers("compute", "2.x")


def test_presets_and_mixes():
    assert parse_presets("servers-detail=4,images") == (("servers-detail", 4), ("images", 1))
    for bad in ("nope=1", "images=0", "images=x", ","):
        with pytest.raises(UserError):
            parse_presets(bad)
    plan = request_plan(MIX)
    assert [(r.service, w) for r, w in plan.requests][:1] == [("compute", 4)]
    assert len(plan.requests) == len(READ_MIX)
    ac = request_plan("openstack.allocation-candidates").requests[0][0]
    assert ac.service == "placement" and ac.microversion == "1.10"
    with pytest.raises(UserError, match="needs --service"):
        request_plan("openstack.request", path="/")
    with pytest.raises(UserError, match="one of"):
        request_plan("openstack.nothing")


# -- against the reference identity service's catalog ----------------------------------------


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    d = tmp_path_factory.mktemp("identity")
    state = lab.up(lab.IdentityLabConfig(d, workers=1, bench_users=1, cpus=TARGET_CPUS), PASSWORD)
    yield state
    lab.down(d)


def _creds(url: str) -> list[str]:
    return ["--os-auth-url", url, "--os-username", "admin", "--os-password", PASSWORD, "--os-project-name", "admin"]


def test_a_request_to_the_catalogs_identity_endpoint_with_pooled_tokens(service, tmp_path):
    """GET /v3/auth/tokens validates the pool's token with itself: a 200 needs a valid token in
    both headers, so every success shows the pool's tokens reached the service intact."""
    proc = run_redline(
        "run", "--scenario", "openstack.request", "--service", "identity", "--path", "/v3/auth/tokens",
        "--header", "X-Subject-Token: ${token}", "--tokens", "3", *_creds(service.url),
        "--rate", "30", "--duration", "2", "--cpus", GEN, "--results", str(tmp_path), "--json",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    s = out["summary"]
    assert s["scheduled"] == 60 and s["errors"] == 0 and s["achieved_rps"] > 25, s
    doc = json.loads((Path(out["run_dir"]) / "run.json").read_text())
    described = doc["target"]["scenario"]
    assert described["name"] == "openstack.request" and described["token_pool"] == 3
    assert described["requests"][0]["endpoint"] == service.url
    for p in Path(out["run_dir"]).rglob("*"):
        if p.is_file() and p.suffix in (".json", ".html", ".txt", ".log"):
            text = p.read_text(errors="replace")
            assert PASSWORD not in text and not FERNET.search(text), p


@pytest.mark.parametrize(
    "args, says",
    [
        (["--scenario", "openstack.servers-detail"], "compute"),  # cloud.endpoint: the catalog has none
        (["--scenario", "openstack.projects"], "answered 404"),  # the reference service has no /v3/projects
        (["--scenario", "openstack.request", "--service", "identity"], "needs --service"),
        (["--scenario", "openstack.request", "--service", "identity", "--path", "/v3", "--url", "http://127.0.0.1:9/"],
         "not --url"),
        (["--scenario", "openstack.mix", "--presets", "servers-detail=2,ghost"], "no preset 'ghost'"),
    ],
)  # fmt: skip
def test_user_errors_are_one_line(service, tmp_path, args, says):
    proc = run_redline("run", *args, *_creds(service.url), "--rate", "1", "--results", str(tmp_path))
    err = assert_one_line_error(proc)
    assert says in err, err


# -- real Keystone's catalog, a registered service, run and capacity give N -----------------


@pytest.fixture(scope="module")
def keystone(tmp_path_factory):
    from redline.lab import keystone as kslab

    root = tmp_path_factory.mktemp("kslab")
    old = os.environ.get("REDLINE_LAB_DIR")
    os.environ["REDLINE_LAB_DIR"] = str(root)
    state = kslab.up(kslab.KeystoneLabConfig(root / "keystone", cpus=TARGET_CPUS, cache="none"), PASSWORD)
    yield state
    kslab.down(root / "keystone")
    if old is None:
        del os.environ["REDLINE_LAB_DIR"]
    else:
        os.environ["REDLINE_LAB_DIR"] = old


def _register(keystone_url: str, service_type: str, url: str) -> None:
    """A service and its public endpoint in Keystone's catalog, through the identity API."""
    from keystoneauth1 import session
    from keystoneauth1.identity import v3

    auth = v3.Password(auth_url=keystone_url, username="admin", password=PASSWORD, project_name="admin",
                       user_domain_name="Default", project_domain_name="Default")  # fmt: skip
    s = session.Session(auth=auth)
    svc = s.post(f"{keystone_url}/services", json={"service": {"type": service_type, "name": service_type}}).json()[
        "service"
    ]
    s.post(
        f"{keystone_url}/endpoints",
        json={"endpoint": {"service_id": svc["id"], "interface": "public", "url": url, "region_id": "RegionOne"}},
    )


@optin
def test_run_and_capacity_through_real_keystones_catalog_find_the_calibrated_capacity(keystone, calibrated, tmp_path):
    target = calibrated(servers=2, service_ms=10)  # C = 2 / 10 ms = 200/s
    capacity = 200
    _register(keystone.url.rstrip("/"), "calibrated", target.url)
    common = ["--scenario", "openstack.request", "--service", "calibrated", "--path", "/", *_creds(keystone.url),
              "--cpus", GEN, "--target-pid", str(target.pid), "--json"]  # fmt: skip
    proc = run_redline("run", *common, "--rate", "100", "--duration", "3", "--results", str(tmp_path / "run"))
    assert proc.returncode == 0, proc.stderr
    s = json.loads(proc.stdout)["summary"]
    assert s["errors"] == 0 and s["scheduled"] == 300, s
    proc = run_redline("capacity", *common, "--protocol", "quick", "--results", str(tmp_path / "cap"), timeout=600)
    assert "Traceback" not in proc.stderr, proc.stderr
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["outcome"]["state"] == "found", out
    n = out["outcome"]["n"]
    assert 0.9 * capacity <= n <= capacity, out["probes"]
    doc = json.loads((Path(out["run_dir"]) / "run.json").read_text())
    assert doc["target"]["scenario"]["requests"][0]["endpoint"] == target.url
