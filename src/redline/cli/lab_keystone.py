"""`redline lab keystone up|down|status`: real Keystone (PyPI) on 127.0.0.1."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

import typer

from redline.cli.app import lab_app
from redline.cli.console import err_console
from redline.cli.lab_identity import HashRounds, LabService, UpJson, add_down_and_status, admin_password, print_up
from redline.cli.options import parse_cpus
from redline.lab import keystone as lab

keystone_app = typer.Typer(help="Real Keystone from PyPI: the study's configurations.", no_args_is_help=True)
lab_app.add_typer(keystone_app, name="keystone")

_STATE_HELP = "State directory (config, keys, database, logs, state.json)."


def _state_dir(value: Optional[Path]) -> Path:
    return value if value is not None else lab.default_state_dir()


@keystone_app.command("up")
def keystone_up(
    port: int = typer.Option(0, "--port", help="TCP port on 127.0.0.1 (0: a free port)."),
    server: str = typer.Option(
        "uwsgi",
        "--server",
        help="uwsgi (HTTP socket), gunicorn, apache (Apache2 + mod_wsgi) or nginx-uwsgi (nginx in front of uWSGI).",
    ),
    processes: int = typer.Option(2, "--processes", "-p", help="Server worker processes."),
    threads: int = typer.Option(1, "--threads", help="Threads per worker process."),
    cache: str = typer.Option(
        "memcached", "--cache", help="none (Keystone's shipped default), memcached or memory (per process)."
    ),
    database: str = typer.Option(
        "sqlite",
        "--database",
        help="sqlite, postgresql or mariadb (a private server from Debian's package, on a unix socket in the state directory).",
    ),
    db_tmpfs: bool = typer.Option(
        False, "--db-tmpfs", help="Database files on a tmpfs mounted at STATE/db (needs root); default: on disk there."
    ),
    db_set: Optional[list[str]] = typer.Option(
        None,
        "--db-set",
        help="A database server option NAME=VALUE (repeatable), e.g. fsync=off, innodb_flush_log_at_trx_commit=2.",
    ),
    hash_rounds: HashRounds = 4,
    users: int = typer.Option(4, "--users", help="Benchmark users bench-0 … bench-(N-1) in project bench."),
    cpus: Optional[str] = typer.Option(None, "--cpus", help="CPUs for Keystone (and memcached), e.g. 1."),
    state_dir: Optional[Path] = typer.Option(None, "--state-dir", help=_STATE_HELP),
    timing_log: Optional[Path] = typer.Option(
        None,
        "--timing-log",
        help="uWSGI's request log, one line per request: 'start_us duration_us status method path' "
        "(the server's view; --server uwsgi or nginx-uwsgi).",
    ),
    as_json: UpJson = False,
) -> None:
    """Install (once, cached), configure, bootstrap and start Keystone; print its URL and credentials.

    The password is taken from REDLINE_LAB_PASSWORD when set, else generated and printed once."""
    config = lab.KeystoneLabConfig(
        _state_dir(state_dir),
        port,
        server,
        processes,
        threads,
        cache,
        database,
        hash_rounds,
        users,
        parse_cpus(cpus),
        db_tmpfs=db_tmpfs,
        db_settings=tuple(db_set or ()),
        timing_log=timing_log,
    )
    password, given = admin_password()
    with err_console.status("starting Keystone") as status:
        state = lab.up(config, password, on_step=lambda s: status.update(f"[dim]{s}[/dim]"))
    headline = f"Keystone {state.config.get('keystone')} up: {state.url} (pid {state.pid}; {server} {processes}×{threads}, cache {cache}, {_db_label(state.config)})"
    print_up(state, as_json, headline, password, given)


def _db_label(config: dict[str, Any]) -> str:
    return f"{config.get('database')} {config.get('db_version', '')} on {config.get('db_storage', 'disk')}"


add_down_and_status(
    keystone_app,
    LabService(
        "Keystone lab",
        _STATE_HELP,
        _state_dir,
        lab.down,
        lambda s: f"Keystone stopped (pid {s.pid}{''.join(f', {p}' for p in s.extra_pids)})",
        lambda s: f"; {json.dumps(s.config)}",
    ),
    "Stop Keystone and every process started with it.",
    "Say whether Keystone runs, where, and how it is configured (exit 3 when it does not).",
)
