"""Credentials as openstacksdk's config loader takes them: options > clouds.yaml (+ secure.yaml) > OS_*,
every keystoneauth1 auth type, region, interface and TLS settings; no secret in a description."""

from __future__ import annotations

import json

import pytest

from redline.errors import UserError
from redline.scenarios.cloud import TlsSettings
from redline.scenarios.credentials import resolve
from redline.scenarios.keystone import expand_users, parse_mix, v3_url

NONE = {"auth_url": None, "username": None, "password": None, "project_name": None}


def _no_secret(c, *secrets: str) -> None:
    text = repr(c) + json.dumps(c.describe())
    for s in secrets:
        assert s not in text


def test_environment_alone():
    env = {
        "OS_AUTH_URL": "http://127.0.0.1:5000/v3",
        "OS_USERNAME": "u",
        "OS_PASSWORD": "pw-9x7",
        "OS_PROJECT_NAME": "x",
    }
    c = resolve(NONE, None, env)
    d = c.describe()
    assert (c.auth_url, d["username"], d["project_name"], c.auth_type) == (
        "http://127.0.0.1:5000/v3",
        "u",
        "x",
        "password",
    )
    assert d["source"] == "OS_* environment"
    body = json.loads(c.auth_request_body())
    assert body["auth"]["identity"]["password"]["user"]["domain"] == {"name": "Default"}
    _no_secret(c, "pw-9x7")
    assert "pw-9x7" in c.secrets()


def test_clouds_yaml_with_secure_yaml_and_options_on_top(tmp_path):
    (tmp_path / "clouds.yaml").write_text(
        "clouds:\n  lab:\n    region_name: RegionTwo\n    interface: internal\n"
        "    auth:\n      auth_url: http://127.0.0.1:5000/v3\n      username: admin\n"
        "      project_name: admin\n      user_domain_name: Default\n"
    )
    (tmp_path / "secure.yaml").write_text("clouds:\n  lab:\n    auth:\n      password: from-secure\n")
    # openstacksdk's search path (./, ~/.config/openstack/, …) is fixed when it is imported
    env = {
        "OS_CLIENT_CONFIG_FILE": str(tmp_path / "clouds.yaml"),
        "OS_CLIENT_SECURE_FILE": str(tmp_path / "secure.yaml"),
        "OS_USERNAME": "env-user",
        "OS_PASSWORD": "env-pw",
    }
    c = resolve(NONE, "lab", env)
    assert c.describe()["username"] == "admin" and "from-secure" in c.secrets()  # the cloud beats OS_*
    assert (c.region, c.interface) == ("RegionTwo", "internal")
    assert "secure.yaml" in c.source
    _no_secret(c, "from-secure")
    c = resolve(NONE | {"username": "opt-user"}, "lab", env)
    assert c.describe()["username"] == "opt-user" and "options" in c.source
    c = resolve(NONE, None, env | {"OS_CLOUD": "lab"})
    assert "from-secure" in c.secrets()
    with pytest.raises(UserError, match=r"no such cloud.*it has: lab"):
        resolve(NONE, "other", env)


def test_application_credential_from_clouds_yaml(tmp_path):
    (tmp_path / "clouds.yaml").write_text(
        "clouds:\n  ci:\n    auth_type: v3applicationcredential\n    auth:\n"
        "      auth_url: http://127.0.0.1:5000\n      application_credential_id: ac-123\n"
        "      application_credential_secret: s3cr3t-ac\n"
    )
    c = resolve(NONE, "ci", {"OS_CLIENT_CONFIG_FILE": str(tmp_path / "clouds.yaml")})
    assert c.auth_type == "v3applicationcredential" and c.auth_url == "http://127.0.0.1:5000/v3"
    body = json.loads(c.auth_request_body())["auth"]
    assert body["identity"] == {
        "methods": ["application_credential"],
        "application_credential": {"id": "ac-123", "secret": "s3cr3t-ac"},
    }
    assert "scope" not in body  # an application credential carries its own
    _no_secret(c, "s3cr3t-ac")
    # without auth_type, an application credential's fields pick the plugin (as keystoneauth1's clients do)
    c = resolve(NONE, None, {"OS_AUTH_URL": "http://127.0.0.1:5000", **_ac_env()})
    assert c.auth_type == "v3applicationcredential"


def _ac_env() -> dict[str, str]:
    return {"OS_APPLICATION_CREDENTIAL_ID": "ac-9", "OS_APPLICATION_CREDENTIAL_SECRET": "sec-9"}


def test_token_auth_and_tls_settings(tmp_path):
    ca = tmp_path / "ca.pem"
    ca.write_text("not read until a request is sent")
    c = resolve(
        NONE | {"auth_url": "https://127.0.0.1:5000", "token": "tok-abc", "auth_type": "token"},
        None,
        {},
        TlsSettings(ca_file=str(ca)),
    )
    assert json.loads(c.auth_request_body())["auth"]["identity"] == {"methods": ["token"], "token": {"id": "tok-abc"}}
    assert c.tls.verify and c.tls.ca_file == str(ca)
    t = c.tls.target(c.auth_url)
    assert (t.scheme, t.ca_file, t.tls_verify) == ("https", str(ca), True)
    insecure = resolve(NONE | {"auth_url": "https://127.0.0.1:5000", "token": "t"}, None, {}, TlsSettings(verify=False))
    assert insecure.auth_type == "token" and not insecure.tls.verify
    _no_secret(c, "tok-abc")


def test_missing_values_are_named():
    with pytest.raises(UserError, match=r"--os-auth-url.*--os-password"):
        resolve(NONE | {"username": "u", "project_name": "p"}, None, {})
    with pytest.raises(UserError, match=r"v3applicationcredential.*--os-application-credential-secret"):
        resolve(NONE, None, {"OS_AUTH_URL": "http://127.0.0.1:5000", "OS_APPLICATION_CREDENTIAL_ID": "x"})
    with pytest.raises(UserError, match="no keystoneauth1 plugin named 'v9magic'"):
        resolve(NONE | {"auth_type": "v9magic", "auth_url": "http://127.0.0.1:5000"}, None, {})


def test_user_ranges_mix_and_urls():
    assert expand_users("bench-{0..2},alice") == ("bench-0", "bench-1", "bench-2", "alice")
    assert parse_mix("1:4") == (1, 4)
    with pytest.raises(UserError):
        parse_mix("1-4")
    assert v3_url("http://127.0.0.1:5000") == "http://127.0.0.1:5000/v3"
    assert v3_url("http://127.0.0.1:5000/v3/") == "http://127.0.0.1:5000/v3"
    with pytest.raises(UserError):
        v3_url("ftp://x")
