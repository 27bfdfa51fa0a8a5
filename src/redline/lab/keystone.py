"""`redline lab keystone`: real Keystone from PyPI, configured, bootstrapped and served
on 127.0.0.1, with the study's knobs (server, processes/threads, cache, database,
password-hash cost). Facts behind the recipe: shared/LAB-NOTES.md.

Everything lives under one state directory (config, keys, database, logs, state.json);
every process is started in its own session, so that `down` can stop each whole group.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from redline.errors import UserError
from redline.lab import keystone_db, keystone_servers, keystone_venv
from redline.lab.state import ServiceState, default_state_root, running, spawn_detached
from redline.procs import alive, stop, wait_until
from redline.scenarios.keystone_client import KeystoneClient, password_auth_body

KIND = "keystone"
SERVERS = keystone_servers.SERVERS
CACHES = ("none", "memcached", "memory")
DATABASES = keystone_db.DATABASES


@dataclass(frozen=True)
class KeystoneLabConfig:
    state_dir: Path
    port: int = 0
    server: str = "uwsgi"
    processes: int = 2
    threads: int = 1
    cache: str = "memcached"
    database: str = "sqlite"
    hash_rounds: int = 4
    bench_users: int = 4
    cpus: tuple[int, ...] | None = None
    db_tmpfs: bool = False  # database files on a tmpfs mounted in the state directory
    db_settings: tuple[str, ...] = ()  # server options NAME=VALUE (PostgreSQL -c, MariaDB --)
    timing_log: Path | None = None  # uWSGI's request log (keystone_servers.TIMING_FORMAT)

    def __post_init__(self) -> None:
        if self.server not in SERVERS:
            raise UserError(f"--server must be one of {', '.join(SERVERS)}, not {self.server!r}")
        if self.cache not in CACHES:
            raise UserError(f"--cache must be one of {', '.join(CACHES)}, not {self.cache!r}")
        keystone_db.validate(self.database, self.db_settings)
        if not 4 <= self.hash_rounds <= 31:
            raise UserError(f"--hash-rounds must be 4..31, not {self.hash_rounds}")
        if self.processes < 1 or self.threads < 1:
            raise UserError("--processes and --threads must be at least 1")
        if not 0 <= self.port <= 65535:
            raise UserError(f"--port must be 0..65535, not {self.port}")
        if self.timing_log is not None and self.server not in keystone_servers.TIMING_SERVERS:
            raise UserError(
                f"--timing-log needs --server {' or '.join(keystone_servers.TIMING_SERVERS)}"
                f" (uWSGI's request log), not {self.server}"
            )

    def describe(self) -> dict[str, Any]:
        return {
            "server": self.server,
            "processes": self.processes,
            "threads": self.threads,
            "cache": self.cache,
            "database": self.database,
            "db_settings": list(self.db_settings),
            "cpus": list(self.cpus) if self.cpus else None,
            "timing_log": str(self.timing_log.resolve()) if self.timing_log is not None else None,
        }


def default_state_dir() -> Path:
    return default_state_root() / KIND


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _conf(c: KeystoneLabConfig, d: Path, memcached_port: int | None, connection: str) -> str:
    cache = {
        "none": "enabled = false\n",
        "memcached": f"enabled = true\nbackend = dogpile.cache.pymemcache\nmemcache_servers = 127.0.0.1:{memcached_port}\n",
        "memory": "enabled = true\nbackend = dogpile.cache.memory\n",
    }[c.cache]
    return f"""[DEFAULT]
log_file = {d}/keystone.log
[database]
connection = {connection}
[token]
provider = fernet
expiration = 3600
[fernet_tokens]
key_repository = {d}/fernet-keys
[credential]
key_repository = {d}/credential-keys
[identity]
password_hash_rounds = {c.hash_rounds}
max_password_length = 72
[cache]
{cache}"""


def _manage(vdir: Path, conf: Path, args: list[str], env: dict[str, str], what: str) -> None:
    cmd = [str(vdir / "bin" / "keystone-manage"), "--config-file", str(conf), *args]
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, stdin=subprocess.DEVNULL, timeout=300)
    if r.returncode != 0:
        last = [l for l in (r.stderr + r.stdout).splitlines() if l.strip() and "Warning" not in l]
        raise UserError(f"keystone-manage {args[0]} failed ({what}): {last[-1] if last else r.returncode}")


def _wait_http(
    url: str, procs: list[tuple[subprocess.Popen[bytes], keystone_servers.Launch]], timeout: float = 90.0
) -> None:
    client = KeystoneClient(url, timeout_s=5)

    def answers() -> bool:
        for proc, launch in procs:
            if proc.poll() is not None:
                log = launch.log
                text = [l for l in log.read_text(errors="replace").splitlines() if l.strip()] if log.exists() else []
                raise UserError(
                    f"Keystone's {launch.name} exited at start: {text[-1] if text else proc.returncode} (log: {log})"
                )
        try:
            return client.request("GET", "")[0] == 200
        except UserError:
            return False

    if not wait_until(answers, timeout, 0.3):
        raise UserError(
            f"Keystone did not answer on {url} within {timeout:g} s (logs: {', '.join(str(l.log) for _, l in procs)})"
        )


def _create_bench_users(url: str, password: str, n: int) -> None:
    """Project `bench` and users bench-0… with role member, through Keystone's own API
    (so their hashes get the configured cost)."""
    # uWSGI's --http-socket closes a connection after each response: a request sent on one
    # the pool still held is dropped unanswered ("Remote end closed connection"), and tried again.
    client = KeystoneClient(url, connect_retries=3)
    admin = client.issue(password_auth_body("admin", password, "Default", "admin", "Default"), "user 'admin'").token
    h = {"X-Auth-Token": admin}

    def call(method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        status, _, raw = client.request(method, path, json.dumps(body).encode() if body else None, h)
        if status >= 300:
            raise UserError(f"Keystone {method} {path} answered {status} while creating benchmark users")
        return json.loads(raw) if raw else {}

    project = call("POST", "/projects", {"project": {"name": "bench", "domain_id": "default"}})["project"]["id"]
    roles = call("GET", "/roles?name=member")["roles"]
    if not roles:
        raise UserError("Keystone has no role 'member' after bootstrap")
    for i in range(n):
        uid = call("POST", "/users", {"user": {"name": f"bench-{i}", "domain_id": "default", "password": password}})[
            "user"
        ]["id"]
        call("PUT", f"/projects/{project}/users/{uid}/roles/{roles[0]['id']}")


def up(c: KeystoneLabConfig, password: str, on_step: Callable[[str], None] = lambda s: None) -> ServiceState:
    d = c.state_dir
    current = running(d)
    if current is not None:
        raise UserError(
            f"Keystone is already running at {current.url} (pid {current.pid}); stop it with `redline lab keystone down`"
        )
    _stop_extras(d)
    keystone_servers.check_system(c.server)
    on_step("checking the Keystone virtualenv")
    vdir = keystone_venv.ensure((c.server, c.database), on_line=lambda l: on_step(f"pip: {l[:100]}"))
    try:
        if d.exists():
            for child in ("fernet-keys", "credential-keys"):
                shutil.rmtree(d / child, ignore_errors=True)
            for f in ("keystone.db", "keystone.log", "memcached.log", "state.json", *keystone_servers.STATE_FILES):
                if (d / f).is_dir():
                    shutil.rmtree(d / f, ignore_errors=True)
                else:
                    (d / f).unlink(missing_ok=True)
        d.mkdir(parents=True, exist_ok=True)
        os.chmod(d, 0o700)
    except OSError as exc:
        raise UserError(f"cannot prepare {d}: {exc.strerror or exc}") from None
    extra: list[int] = []
    mport = None
    started: list[int] = []
    try:
        if c.cache == "memcached":
            exe = shutil.which("memcached")
            if exe is None:
                raise UserError("memcached is not installed (apt-get install memcached)")
            mport = free_port()
            on_step(f"starting memcached on 127.0.0.1:{mport}")
            mproc = spawn_detached(
                [exe, "-l", "127.0.0.1", "-p", str(mport), "-U", "0", "-m", "256", "-u", "root"],
                d / "memcached.log",
                c.cpus,
            )
            extra.append(mproc.pid)
            started.append(mproc.pid)
            _wait_port(mport, mproc, "memcached")
        db = keystone_db.start(c.database, d, c.db_tmpfs, c.db_settings, c.cpus, on_step)
        if db.pid is not None:
            extra.append(db.pid)
        conf = d / "keystone.conf"
        conf.write_text(_conf(c, d, mport, db.connection))
        os.chmod(conf, 0o600)  # it may hold the database password
        env = dict(os.environ, OS_KEYSTONE_CONFIG_FILES=str(conf))
        port = c.port or free_port()
        url = f"http://127.0.0.1:{port}/v3"
        on_step("keystone-manage db_sync")
        _manage(vdir, conf, ["db_sync"], env, "database schema")
        for step in ("fernet_setup", "credential_setup"):
            on_step(f"keystone-manage {step}")
            _manage(vdir, conf, [step, "--keystone-user", "root", "--keystone-group", "root"], env, "keys")
        for keys in ("fernet-keys", "credential-keys"):
            os.chmod(d / keys, 0o700)
        on_step("keystone-manage bootstrap")
        boot_env = dict(env, OS_BOOTSTRAP_PASSWORD=password)
        _manage(vdir, conf, ["bootstrap", "--bootstrap-admin-url", url, "--bootstrap-public-url", url,
                             "--bootstrap-internal-url", url, "--bootstrap-region-id", "RegionOne"], boot_env, "bootstrap")  # fmt: skip
        on_step(f"starting {c.server} ({c.processes} processes × {c.threads} threads) on 127.0.0.1:{port}")
        timing = _fresh_log(c.timing_log) if c.timing_log is not None else None
        server = keystone_servers.plan(c.server, vdir, d, port, c.processes, c.threads, conf, timing)
        procs = []
        for launch in server.launches:
            proc = spawn_detached(list(launch.args), launch.log, c.cpus, env)
            started.append(proc.pid)
            procs.append((proc, launch))
        extra += [p.pid for p, _ in procs[:-1]]  # e.g. uWSGI behind nginx; the front is the state's pid
        _wait_http(url, procs)
        on_step(f"creating {c.bench_users} benchmark users (bcrypt cost {c.hash_rounds})")
        _create_bench_users(url, password, c.bench_users)
    except BaseException:
        keystone_db.stop(d)
        for pid in reversed(started):
            stop(pid, group=True)
        raise
    state = ServiceState.bootstrapped(KIND, proc.pid, url, c.hash_rounds, c.bench_users,
                                      config={"keystone": _version(vdir), **c.describe(), **db.describe()},
                                      extra_pids=tuple(extra))  # fmt: skip
    state.save(d)
    return state


def _fresh_log(path: Path) -> Path:
    """An absolute path with nothing in it yet: a log holds one lab's requests only."""
    try:
        path = path.resolve()
        path.parent.mkdir(parents=True, exist_ok=True)
        path.unlink(missing_ok=True)
    except OSError as exc:
        raise UserError(f"--timing-log {path}: {exc.strerror or exc}") from None
    return path


def _version(vdir: Path) -> str:
    r = subprocess.run(
        [keystone_venv.python_of(vdir), "-c", "import importlib.metadata as m; print(m.version('keystone'))"],
        capture_output=True,
        text=True,
    )
    return r.stdout.strip() or "?"


def _wait_port(port: int, proc: subprocess.Popen[bytes], what: str, timeout: float = 10.0) -> None:
    def listens() -> bool:
        if proc.poll() is not None:
            raise UserError(f"{what} exited at start ({proc.returncode})")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return True
        except OSError:
            return False

    wait_until(listens, timeout, what=f"{what} did not listen on 127.0.0.1:{port}")


def _stop_extras(d: Path) -> None:
    """Helpers left by an `up` whose server has died (so that nothing is left behind)."""
    st = ServiceState.load(d)
    if st is not None:
        for pid in st.extra_pids:
            if alive(pid):
                stop(pid, group=True)


def down(state_dir: Path) -> ServiceState | None:
    """Stop Keystone and its helpers; None when nothing was running."""
    state = ServiceState.load(state_dir)
    if state is None or not (alive(state.pid) or any(alive(p) for p in state.extra_pids)):
        keystone_db.stop(state_dir)  # a tmpfs left mounted by a crash
        return None
    stop(state.pid, group=True)
    keystone_db.stop(state_dir)  # its own clean shutdown, before the helpers' SIGTERM
    for pid in state.extra_pids:
        stop(pid, group=True)
    return state
