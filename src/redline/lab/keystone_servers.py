"""The web servers the Keystone lab can put in front of `keystone.wsgi.api:application`:
uWSGI, gunicorn, Apache2 + mod_wsgi, nginx + uWSGI (the study's two, seed 003, and the
two most common today).

Each server is one or more processes, started in order, each in its own session so that
`down` can stop each whole group. Every file a server writes (configs, pid files, logs,
sockets, temp directories) lives under the lab's state directory.
"""

from __future__ import annotations

import grp
import os
import pwd
import shutil
from dataclasses import dataclass
from pathlib import Path

from redline.errors import UserError

SERVERS = ("uwsgi", "gunicorn", "apache", "nginx-uwsgi")
APP = "keystone.wsgi.api:application"


@dataclass(frozen=True)
class Launch:
    """One process to start: what it is, its command line and its log file."""

    name: str
    args: tuple[str, ...]
    log: Path


@dataclass(frozen=True)
class ServerPlan:
    """The processes of a server, in start order; the last one answers HTTP (the front)."""

    launches: tuple[Launch, ...]

    @property
    def front(self) -> Launch:
        return self.launches[-1]


# What the servers write under the state directory (a fresh `up` removes them first).
STATE_FILES = ("server.log", "gunicorn.conf.py", "keystone.wsgi", "uwsgi.sock", "apache", "nginx")


def check_system(server: str) -> None:
    """The Debian packages a server needs (before pip tries to build mod_wsgi without apxs)."""
    if server == "apache" and (
        shutil.which("apxs") is None or (shutil.which("apache2") is None and shutil.which("httpd") is None)
    ):
        raise UserError("--server apache needs Debian's apache2 and apache2-dev (apt-get install apache2 apache2-dev)")
    if server == "nginx-uwsgi" and _nginx() is None:
        raise UserError("--server nginx-uwsgi needs Debian's nginx (apt-get install nginx)")


def _nginx() -> str | None:
    return shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)


# uWSGI's request log, one line per request: start (µs since the epoch), time to the last
# byte written (µs), status, method, path. uWSGI cannot add the two, so the line differs
# from the reference identity service's `recv_ns sent_ns …`.
TIMING_FORMAT = "%(tmicros) %(micros) %(status) %(method) %(uri)"
TIMING_SERVERS = ("uwsgi", "nginx-uwsgi")


def plan(
    server: str,
    vdir: Path,
    d: Path,
    port: int,
    processes: int,
    threads: int,
    config_file: Path,
    timing_log: Path | None = None,
) -> ServerPlan:
    """Write the server's configuration under `d` and say what to start (`timing_log`: for
    the uWSGI servers only, KeystoneLabConfig checks)."""
    if server == "uwsgi":
        args = _uwsgi(vdir, processes, threads, ("--http-socket", f"127.0.0.1:{port}"), timing_log)
        return ServerPlan((Launch("uwsgi", args, d / "server.log"),))
    if server == "gunicorn":
        return _gunicorn(vdir, d, port, processes, threads)
    if server == "apache":
        return _apache(vdir, d, port, processes, threads, config_file)
    if server == "nginx-uwsgi":
        return _nginx_uwsgi(vdir, d, port, processes, threads, timing_log)
    raise UserError(f"--server must be one of {', '.join(SERVERS)}, not {server!r}")


def _uwsgi(
    vdir: Path, processes: int, threads: int, socket_args: tuple[str, ...], timing_log: Path | None = None
) -> tuple[str, ...]:
    # Without a timing log, no request log at all: it would cost every request a write.
    logging = (
        ("--disable-logging",)
        if timing_log is None
        else ("--req-logger", f"file:{timing_log}", "--logformat", TIMING_FORMAT)
    )
    return (
        str(vdir / "bin" / "uwsgi"), *socket_args,
        "--module", APP, "--master", "--die-on-term", "--need-app",
        "--processes", str(processes), "--threads", str(threads), *logging,
        "--buffer-size", "65535", "--listen", "1024",
    )  # fmt: skip


def _gunicorn(vdir: Path, d: Path, port: int, processes: int, threads: int) -> ServerPlan:
    # Keystone (oslo.config) parses the workers' sys.argv and refuses any option it does not
    # know, `-c FILE` included: gunicorn starts with no argument at all, in the state directory,
    # where it reads ./gunicorn.conf.py by default.
    conf = d / "gunicorn.conf.py"
    conf.write_text(
        f"bind = '127.0.0.1:{port}'\nworkers = {processes}\nthreads = {threads}\nwsgi_app = '{APP}'\nbacklog = 1024\n"
    )
    args = ("/bin/sh", "-c", 'cd "$1" && exec "$2"', "sh", str(d), str(vdir / "bin" / "gunicorn"))
    return ServerPlan((Launch("gunicorn", args, d / "server.log"),))


def _apache(vdir: Path, d: Path, port: int, processes: int, threads: int, config_file: Path) -> ServerPlan:
    """Apache2 (Debian) with mod_wsgi built for the venv's Python, through `mod_wsgi-express`,
    in daemon mode: `processes` daemon processes × `threads` threads run Keystone."""
    check_system("apache")
    root = d / "apache"
    script = d / "keystone.wsgi"
    # mod_wsgi daemons do not see the starting shell's environment: the script sets the config.
    script.write_text(
        "import os\n"
        f"os.environ['OS_KEYSTONE_CONFIG_FILES'] = {str(config_file)!r}\n"
        "from keystone.wsgi.api import application  # noqa: E402\n"
    )
    args = (
        str(vdir / "bin" / "mod_wsgi-express"), "start-server", str(script),
        "--host", "127.0.0.1", "--port", str(port), "--server-root", str(root),
        "--log-directory", str(root / "logs"), "--processes", str(processes), "--threads", str(threads),
        # Room for the open-loop generator's connections; Apache queues the rest in its backlog.
        "--max-clients", str(max(32, 4 * processes * threads)), "--server-backlog", "1024", "--daemon-backlog", "1024",
        "--keep-alive-timeout", "75",
        "--request-timeout", "120", "--socket-timeout", "120", "--queue-timeout", "120",
    )  # fmt: skip
    return ServerPlan((Launch("apache", _unprivileged(args), d / "server.log"),))


def _unprivileged(args: tuple[str, ...]) -> tuple[str, ...]:
    """Apache refuses to serve as root (and mod_wsgi to run Python as root). As root, run
    it in a user namespace as www-data mapped onto root: it passes Apache's check, while
    files under the root-only state directory and the cached venv stay readable and what
    it writes is owned by root, so nothing needs a chown."""
    if os.geteuid() != 0:
        return args
    unshare = shutil.which("unshare")
    if unshare is None:
        raise UserError("--server apache as root needs unshare(1) (util-linux) to run Apache unprivileged")
    try:
        pw = pwd.getpwnam("www-data")
        group = grp.getgrgid(pw.pw_gid).gr_name
    except KeyError:
        raise UserError(
            "--server apache as root needs the user www-data (Debian's apache2 package creates it)"
        ) from None
    return (
        unshare,
        "--user",
        f"--map-user={pw.pw_uid}",
        f"--map-group={pw.pw_gid}",
        *args,
        "--user",
        pw.pw_name,
        "--group",
        group,
    )


def _nginx_uwsgi(vdir: Path, d: Path, port: int, processes: int, threads: int, timing_log: Path | None) -> ServerPlan:
    """Debian's nginx in front of uWSGI, speaking the uwsgi protocol over a unix socket."""
    check_system("nginx-uwsgi")
    nginx = str(_nginx())
    root = d / "nginx"
    sock = d / "uwsgi.sock"
    uwsgi = _uwsgi(vdir, processes, threads, ("--socket", str(sock), "--chmod-socket=600"), timing_log)
    temp = "\n".join(
        f"    {k}_temp_path {root}/{k}-temp;" for k in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    conf = root / "nginx.conf"
    params = {  # Debian's uwsgi_params passes $host (no port) as HTTP_HOST: Keystone's links need the port
        "QUERY_STRING": "$query_string", "REQUEST_METHOD": "$request_method", "CONTENT_TYPE": "$content_type",
        "CONTENT_LENGTH": "$content_length", "REQUEST_URI": "$request_uri", "PATH_INFO": "$document_uri",
        "DOCUMENT_ROOT": "$document_root", "SERVER_PROTOCOL": "$server_protocol", "REQUEST_SCHEME": "$scheme",
        "REMOTE_ADDR": "$remote_addr", "REMOTE_PORT": "$remote_port", "SERVER_PORT": "$server_port",
        "SERVER_NAME": "$server_name", "HTTP_HOST": "$http_host",
    }  # fmt: skip
    param_lines = "\n".join(f"            uwsgi_param {k} {v};" for k, v in params.items())
    conf_text = f"""# written by redline lab keystone (--server nginx-uwsgi)
daemon off;
master_process on;
worker_processes 1;
user root root;
pid {root}/nginx.pid;
error_log {root}/error.log warn;
events {{
    worker_connections 4096;
}}
http {{
    access_log off;
{temp}
    keepalive_requests 100000;
    keepalive_timeout 75s;
    client_max_body_size 16m;
    upstream keystone {{
        server unix:{sock};
    }}
    server {{
        listen 127.0.0.1:{port} backlog=1024;
        location / {{
{param_lines}
            uwsgi_pass keystone;
            uwsgi_read_timeout 120s;
        }}
    }}
}}
"""
    root.mkdir(parents=True, exist_ok=True)
    conf.write_text(conf_text)
    front = (nginx, "-p", f"{root}/", "-c", str(conf), "-e", str(root / "error.log"))
    return ServerPlan((Launch("uwsgi", uwsgi, d / "server.log"), Launch("nginx", front, root / "nginx.log")))
