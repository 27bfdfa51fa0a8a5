"""Starting the OpenStack lab's processes: memcached, RabbitMQ, WSGI apps under gunicorn, and
Nova's daemons. Each runs in its own session (stopped as one group) and is recorded as
soon as it starts, in services.json, so that `down` — or the clean-up of a failed `up` —
stops everything started so far, whatever happened.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
from collections.abc import Callable
from pathlib import Path

import psutil

from redline import procs
from redline.errors import UserError
from redline.lab.openstack_state import OpenStackService
from redline.lab.state import spawn_detached

SERVICES_JSON = "services.json"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def last_line(log: Path) -> str:
    """The log line that says why a service died: the last ERROR/CRITICAL line, else the last line."""
    try:
        lines = [l.strip() for l in log.read_text(errors="replace").splitlines() if l.strip()]
    except OSError:
        return ""
    bad = [l for l in lines if any(w in l for w in (" ERROR ", " CRITICAL ", "Error:", "Traceback", "Exception"))]
    return ((bad or lines or [""])[-1])[:300]


class Started:
    """The lab's processes in start order, persisted after each start."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self.services: list[OpenStackService] = []

    def add(self, svc: OpenStackService) -> OpenStackService:
        self.services.append(svc)
        self.save()
        return svc

    def save(self) -> None:
        path = self.state_dir / SERVICES_JSON
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps([s.to_dict() for s in self.services], indent=2))
        tmp.replace(path)

    @classmethod
    def load(cls, state_dir: Path) -> Started:
        st = cls(state_dir)
        with contextlib.suppress(OSError, ValueError, TypeError):
            st.services = [OpenStackService(**d) for d in json.loads((state_dir / SERVICES_JSON).read_text())]
        return st

    def spawn(
        self,
        name: str,
        group: str,
        args: list[str],
        log: Path,
        port: int | None = None,
        env: dict[str, str] | None = None,
        service_log: Path | None = None,
    ) -> tuple[subprocess.Popen[bytes], OpenStackService]:
        """Start `args` with stdout/stderr to `log`; `service_log` is where it logs itself, if elsewhere."""
        proc = spawn_detached(args, log, env=env)
        return proc, self.add(OpenStackService(name, proc.pid, port, str(service_log or log), group))

    def stop_all(self, on_step: Callable[[str], None] = lambda s: None) -> list[str]:
        """Stop every recorded process, last started first; what was stopped."""
        done = []
        for svc in reversed(self.services):
            if procs.alive(svc.pid):
                on_step(f"stopping {svc.name}")
                procs.stop(svc.pid, timeout_s=15, group=True, children=True)
                done.append(f"stopped {svc.name} (pid {svc.pid})")
        (self.state_dir / SERVICES_JSON).unlink(missing_ok=True)
        self.services = []
        return done


def wait_port(port: int, proc: subprocess.Popen[bytes], svc: OpenStackService, timeout: float) -> None:
    """Until 127.0.0.1:`port` accepts; a process that exits first is named with its log's last line."""

    def listens() -> bool:
        if proc.poll() is not None:
            raise UserError(
                f"{svc.name} exited at start: {last_line(Path(svc.log)) or proc.returncode} (log: {svc.log})"
            )
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return True
        except OSError:
            return False

    if not procs.wait_until(listens, timeout, 0.25):
        raise UserError(
            f"{svc.name} did not listen on 127.0.0.1:{port} within {timeout:g} s: {last_line(Path(svc.log))} (log: {svc.log})"
        )


def pid_on_port(port: int) -> int | None:
    """The process listening on 127.0.0.1:`port` (epmd detaches from whoever started it)."""
    for c in psutil.net_connections("tcp"):
        if c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port == port and c.pid:
            return int(c.pid)
    return None


def memcached(started: Started, d: Path, port: int) -> None:
    exe = shutil.which("memcached")
    if exe is None:
        raise UserError("memcached is not installed (apt-get install memcached)")
    proc, svc = started.spawn(
        "memcached", "memcached", [exe, "-l", "127.0.0.1", "-p", str(port), "-U", "0", "-m", "128", "-u", "root"],
        d / "log" / "memcached.log", port,
    )  # fmt: skip
    wait_port(port, proc, svc, 10)


RABBITMQ_SERVER = "/usr/lib/rabbitmq/bin/rabbitmq-server"


def rabbitmq(started: Started, d: Path, port: int) -> None:
    """RabbitMQ as root, on 127.0.0.1 only (LAB-NOTES): the /usr/sbin wrapper would switch
    user; epmd and Erlang distribution are pinned to loopback and to ports of our choosing."""
    if not os.access(RABBITMQ_SERVER, os.X_OK):
        raise UserError("RabbitMQ is not installed (apt-get install rabbitmq-server)")
    base = d / "rabbitmq"
    base.mkdir(parents=True, exist_ok=True)
    (base / "enabled_plugins").write_text("[].\n")
    dist, epmd = free_port(), free_port()
    env = dict(
        os.environ,
        HOME=str(base),
        RABBITMQ_NODENAME="redline@localhost",
        RABBITMQ_NODE_IP_ADDRESS="127.0.0.1",
        RABBITMQ_NODE_PORT=str(port),
        RABBITMQ_DIST_PORT=str(dist),
        ERL_EPMD_PORT=str(epmd),
        ERL_EPMD_ADDRESS="127.0.0.1",
        RABBITMQ_MNESIA_BASE=str(base / "mnesia"),
        RABBITMQ_LOG_BASE=str(base / "log"),
        RABBITMQ_PID_FILE=str(base / "rabbitmq.pid"),
        RABBITMQ_ENABLED_PLUGINS_FILE=str(base / "enabled_plugins"),
        RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}",
    )
    proc, svc = started.spawn("rabbitmq", "rabbitmq", [RABBITMQ_SERVER], d / "log" / "rabbitmq.log", port, env)
    try:
        wait_port(port, proc, svc, 90)
    finally:
        pid = pid_on_port(epmd)
        if pid is not None:
            started.add(OpenStackService("epmd", pid, epmd, str(d / "log" / "rabbitmq.log"), "rabbitmq"))


def gunicorn(
    started: Started, venv: Path, d: Path, name: str, conf: Path, port: int, env: dict[str, str]
) -> tuple[subprocess.Popen[bytes], OpenStackService]:
    """A WSGI app under gunicorn with the settings in `conf` (lab/openstack_conf.gunicorn_conf),
    served from the shim module lab/openstack_conf.wsgi_wrapper wrote for it."""
    args = [str(venv / "bin" / "gunicorn"), "-c", str(conf), f"{wsgi_module(name)}:application"]
    return started.spawn(name, name, args, d / "log" / f"{name}.gunicorn.log", port, env)


def wsgi_module(name: str) -> str:
    return name.replace("-", "_") + "_app"


def daemon(
    started: Started, venv: Path, d: Path, name: str, conf_files: list[Path], env: dict[str, str] | None = None
) -> tuple[subprocess.Popen[bytes], OpenStackService]:
    """An oslo.service daemon from the venv (nova-conductor, …), logging to log/<name>.log."""
    log = d / "log" / f"{name}.log"
    args = [
        str(venv / "bin" / name),
        *[a for c in conf_files for a in ("--config-file", str(c))],
        "--log-file",
        str(log),
    ]
    return started.spawn(name, name, args, d / "log" / f"{name}.out", None, env, service_log=log)


def manage(cmd: list[str], what: str, env: dict[str, str] | None = None, timeout: float = 600) -> str:
    """A set-up command (db sync, …); its output, or a UserError with its last meaningful line."""
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, env=env, stdin=subprocess.DEVNULL, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise UserError(f"{what} did not finish within {timeout:g} s") from None
    if r.returncode != 0:
        lines = [l for l in (r.stderr + r.stdout).splitlines() if l.strip() and "Warning" not in l]
        raise UserError(f"{what} failed: {lines[-1][:300] if lines else r.returncode}")
    return r.stdout
