"""Credentials as keystoneauth1 / openstacksdk take them: options > clouds.yaml > OS_*."""

from __future__ import annotations

import pytest

from redline.errors import UserError
from redline.scenarios.credentials import resolve
from redline.scenarios.keystone import expand_users, parse_mix, v3_url

NONE = {"auth_url": None, "username": None, "password": None, "project_name": None}


def test_environment_alone():
    env = {
        "OS_AUTH_URL": "http://127.0.0.1:5000/v3",
        "OS_USERNAME": "u",
        "OS_PASSWORD": "pw-9x7",
        "OS_PROJECT_NAME": "x",
    }
    c = resolve(NONE, None, env)
    assert (c.auth_url, c.username, c.project_name, c.user_domain_name) == (
        "http://127.0.0.1:5000/v3",
        "u",
        "x",
        "Default",
    )
    assert "pw-9x7" not in repr(c) and "password" not in c.describe()


def test_clouds_yaml_with_secure_yaml_and_options_on_top(tmp_path, monkeypatch):
    (tmp_path / "clouds.yaml").write_text(
        "clouds:\n  lab:\n    auth:\n      auth_url: http://127.0.0.1:5000/v3\n      username: admin\n"
        "      project_name: admin\n      user_domain_name: Default\n"
    )
    (tmp_path / "secure.yaml").write_text("clouds:\n  lab:\n    auth:\n      password: from-secure\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("OS_CLIENT_CONFIG_FILE", raising=False)
    env = {"OS_USERNAME": "env-user", "OS_PASSWORD": "env-pw"}
    c = resolve(NONE, "lab", env)
    assert (c.username, c.password) == ("admin", "from-secure")  # the cloud beats OS_*
    c = resolve(NONE | {"username": "opt-user"}, "lab", env)
    assert c.username == "opt-user" and "options" in c.source
    c = resolve(NONE, None, env | {"OS_CLOUD": "lab"})
    assert c.password == "from-secure"
    with pytest.raises(UserError, match="no such cloud"):
        resolve(NONE, "other", env)


def test_missing_values_are_named():
    with pytest.raises(UserError, match=r"--os-auth-url.*--os-password"):
        resolve(NONE | {"username": "u", "project_name": "p"}, None, {})


def test_user_ranges_mix_and_urls():
    assert expand_users("bench-{0..2},alice") == ("bench-0", "bench-1", "bench-2", "alice")
    assert parse_mix("1:4") == (1, 4)
    with pytest.raises(UserError):
        parse_mix("1-4")
    assert v3_url("http://127.0.0.1:5000") == "http://127.0.0.1:5000/v3"
    assert v3_url("http://127.0.0.1:5000/v3/") == "http://127.0.0.1:5000/v3"
    with pytest.raises(UserError):
        v3_url("ftp://x")
