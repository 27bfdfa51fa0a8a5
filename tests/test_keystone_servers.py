"""Real Keystone behind the study's web servers: Apache2 + mod_wsgi and nginx + uWSGI (over
the uwsgi protocol on a unix socket). Each comes up with the processes and threads asked
for, keystoneauth1 gets a token through it, and `down` leaves no process behind."""

from __future__ import annotations

import time
from pathlib import Path

import psutil
import pytest
from keystoneauth1 import session
from keystoneauth1.identity import v3

from conftest import TARGET_CPUS
from redline.errors import UserError
from redline.lab import keystone as lab
from redline.procs import group_members

pytestmark = pytest.mark.slow
PASSWORD = "Keystone-servers-pw-7"


def _token(url: str) -> str:
    auth = v3.Password(auth_url=url, username="bench-0", password=PASSWORD, project_name="bench",
                       user_domain_name="Default", project_domain_name="Default")  # fmt: skip
    return session.Session(auth=auth).get_token()


def _cmdlines(state) -> list[tuple[str, int]]:
    """(command line, thread count) of every process of the lab service."""
    out = []
    for pid in (state.pid, *state.extra_pids):
        root = psutil.Process(pid)
        for p in (root, *root.children(recursive=True)):
            out.append((" ".join(p.cmdline()), p.num_threads()))
    return out


def _up_token_down(tmp_path, server: str, timing_log: Path | None = None) -> list[tuple[str, int]]:
    """Up with 3 processes × 2 threads, a token through it, then down: the processes seen."""
    d = tmp_path / "keystone"
    config = lab.KeystoneLabConfig(
        d, server=server, processes=3, threads=2, cache="none", bench_users=1, cpus=TARGET_CPUS, timing_log=timing_log
    )
    state = lab.up(config, PASSWORD)
    try:
        assert state.config["server"] == server
        assert _token(state.url).startswith("gAAAAA")  # a Fernet token, through the front server
        seen = _cmdlines(state)
    finally:
        assert lab.down(d) is not None
    for pid in (state.pid, *state.extra_pids):
        assert not group_members(pid), pid
    assert lab.down(d) is None  # a second `down` has nothing to stop
    return seen


def test_apache_mod_wsgi(tmp_path):
    seen = _up_token_down(tmp_path, "apache")
    daemons = [threads for cmd, threads in seen if cmd.startswith("(wsgi:")]
    assert len(daemons) == 3, seen  # --processes: mod_wsgi daemon processes run Keystone
    assert all(t >= 2 for t in daemons), seen  # --threads: each daemon's request threads (plus its own)
    root = tmp_path / "keystone" / "apache"
    assert (root / "httpd.conf").is_file() and (root / "logs" / "error_log").is_file()


def test_nginx_uwsgi(tmp_path):
    t0_us = time.time() * 1e6
    seen = _up_token_down(tmp_path, "nginx-uwsgi", timing_log=tmp_path / "timing.log")
    # uWSGI's request log: 'start_us duration_us status method path', one line per request,
    # the token POST among them (the bench user's creation and the test's own token).
    lines = [ln.split(" ", 4) for ln in (tmp_path / "timing.log").read_text().splitlines()]
    posts = [p for p in lines if p[3:] == ["POST", "/v3/auth/tokens"]]
    assert posts and all(p[2] == "201" for p in posts), lines
    assert all(t0_us <= int(p[0]) <= time.time() * 1e6 and 0 < int(p[1]) < 60e6 for p in lines), lines
    cmds = [cmd for cmd, _ in seen]
    assert any(c.startswith("nginx: master") for c in cmds), cmds
    uwsgi = [c for c in cmds if "uwsgi --socket" in c]
    assert len(uwsgi) == 1 + 3, cmds  # master + --processes workers
    assert "--threads 2" in uwsgi[0]
    sock = tmp_path / "keystone" / "uwsgi.sock"
    assert f"server unix:{sock};" in (tmp_path / "keystone" / "nginx" / "nginx.conf").read_text()
    assert (tmp_path / "keystone" / "nginx" / "error.log").is_file()


@pytest.mark.parametrize("server", ["gunicorn", "apache"])
def test_timing_log_needs_uwsgi(tmp_path, server):
    with pytest.raises(UserError, match="--timing-log needs --server uwsgi or nginx-uwsgi"):
        lab.KeystoneLabConfig(tmp_path, server=server, timing_log=tmp_path / "t.log")


def test_gunicorn_with_memory_cache(tmp_path):
    """--server gunicorn --processes 3 --threads 2 --cache memory: gunicorn's master and 3
    threaded workers run Keystone, keystone.conf has dogpile's in-process memory backend (and
    no memcached is started), and tokens issued and validated repeatedly through it work."""
    import configparser

    from identity_helpers import call, issue

    d = tmp_path / "keystone"
    config = lab.KeystoneLabConfig(
        d, server="gunicorn", processes=3, threads=2, cache="memory", bench_users=1, cpus=TARGET_CPUS
    )
    state = lab.up(config, PASSWORD)
    try:
        assert state.config["server"] == "gunicorn" and state.config["cache"] == "memory"
        assert not state.extra_pids and not (d / "memcached.log").exists()  # no memcached for `memory`
        master = psutil.Process(state.pid)
        assert master.cmdline()[-1].endswith("/bin/gunicorn") and master.cwd() == str(d)  # reads ./gunicorn.conf.py
        workers = master.children()
        assert len(workers) == 3 and all("gunicorn" in " ".join(w.cmdline()) for w in workers), workers
        log = (d / "server.log").read_text()
        assert "Using worker: gthread" in log and log.count("Booting worker with pid") == 3, log
        conf = configparser.ConfigParser(interpolation=None)
        conf.read(d / "keystone.conf")
        assert conf["cache"]["enabled"] == "true" and conf["cache"]["backend"] == "dogpile.cache.memory"
        admin = issue(state.url, "admin", PASSWORD)
        subject = _token(state.url)
        # New connections each time: the kernel spreads them over the workers and their caches.
        for _ in range(12):
            status, _, doc = call(
                state.url, "GET", "/auth/tokens", headers={"X-Auth-Token": admin, "X-Subject-Token": subject}
            )
            assert status == 200 and doc["token"]["user"]["name"] == "bench-0"
    finally:
        assert lab.down(d) is not None
    for pid in (state.pid, *state.extra_pids):
        assert not group_members(pid), pid
