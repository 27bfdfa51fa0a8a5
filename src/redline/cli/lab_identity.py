"""`redline lab identity up|down|status`: the reference identity service on 127.0.0.1."""

from __future__ import annotations

import json
import os
import secrets
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Optional

import typer

from redline.cli.app import lab_app
from redline.cli.console import out_console
from redline.cli.options import parse_cpus
from redline.errors import UserError
from redline.lab import identity as lab
from redline.lab.state import ServiceState, running

identity_app = typer.Typer(help="The reference identity service (Keystone v3 subset).", no_args_is_help=True)
lab_app.add_typer(identity_app, name="identity")

PASSWORD_ENV = "REDLINE_LAB_PASSWORD"
_STATE_HELP = "State directory (database, keys, log, state.json)."

# Options every lab service's `up` has, the same way.
HashRounds = Annotated[
    int, typer.Option("--hash-rounds", help="bcrypt cost of the users' passwords (Keystone's default is 12).")
]
UpJson = Annotated[bool, typer.Option("--json", help="Print the state (without the password) as JSON.")]


def _state_dir(value: Optional[Path]) -> Path:
    return value if value is not None else lab.default_state_dir()


def print_credentials(state: ServiceState, password: str | None) -> None:
    """The URL and credentials; the password only when given (once, at `up`)."""
    out_console.print(f"OS_AUTH_URL={state.url}")
    out_console.print(f"OS_USERNAME={state.admin_user}")
    if password is not None:
        out_console.print(f"OS_PASSWORD={password}", highlight=False)
    out_console.print(f"OS_PROJECT_NAME={state.admin_project}")
    out_console.print("OS_USER_DOMAIN_NAME=Default")
    out_console.print("OS_PROJECT_DOMAIN_NAME=Default")
    if state.config.get("ca_file"):
        out_console.print(f"OS_CACERT={state.config['ca_file']}", highlight=False)
    for ac in state.config.get("application_credentials") or ():
        out_console.print(
            f"application credential {ac['name']} of {ac['user']}: OS_APPLICATION_CREDENTIAL_ID={ac['id']}"
            " (secret: the password)",
            highlight=False,
        )
    if state.bench_users:
        first, last = state.bench_users[0], state.bench_users[-1]
        out_console.print(
            f"benchmark users: {first} … {last} ({len(state.bench_users)}, project {state.bench_project}, same password,"
            f" bcrypt cost {state.password_hash_rounds})"
        )


def state_json(state: ServiceState | None) -> str:
    return json.dumps(None if state is None else state.__dict__ | {"bench_users": list(state.bench_users)}, indent=2)


def admin_password() -> tuple[str, bool]:
    """The password for a service about to start, and whether the user chose it."""
    given = os.environ.get(PASSWORD_ENV)
    return given or secrets.token_urlsafe(16), bool(given)


def print_up(state: ServiceState, as_json: bool, headline: str, password: str, given: bool) -> None:
    """After `up`: the state as JSON, or the headline and the credentials; a generated
    password is shown once, here (never in the JSON)."""
    if as_json:
        print(state_json(state))
        return
    out_console.print(headline)
    print_credentials(state, None if given else password)
    if given:
        out_console.print(f"OS_PASSWORD: the value of {PASSWORD_ENV}")


def print_status(state: ServiceState | None, as_json: bool, name: str, detail: str = "") -> None:
    """`status`: JSON, or a line and the credentials (never the password); exit 3 when not running."""
    if as_json:
        print(state_json(state))
    elif state is None:
        print(f"{name}: not running")
    else:
        out_console.print(f"{name}: running at {state.url} (pid {state.pid}){detail}")
        print_credentials(state, None)
    if state is None:
        raise typer.Exit(3)


@dataclass(frozen=True)
class LabService:
    """How `down` and `status` speak of one kind of lab service kept in a state directory."""

    name: str  # as in "no <name> is running"
    state_help: str
    state_dir: Callable[[Optional[Path]], Path]  # --state-dir, or the kind's default
    down: Callable[[Path], ServiceState | None]
    stopped: Callable[[ServiceState], str]  # the line `down` prints
    detail: Callable[[ServiceState], str] = lambda state: ""  # appended to the `status` line


def add_down_and_status(sub_app: typer.Typer, service: LabService, down_help: str, status_help: str) -> None:
    """Register `down` and `status`: the same two commands for every lab service."""

    @sub_app.command("down", help=down_help)
    def down(state_dir: Optional[Path] = typer.Option(None, "--state-dir", help=service.state_help)) -> None:
        state = service.down(service.state_dir(state_dir))
        if state is None:  # nothing to stop is worth a line, not an error
            print(f"redline: no {service.name} is running; nothing to stop", file=sys.stderr)
            return
        out_console.print(service.stopped(state))

    @sub_app.command("status", help=status_help)
    def status(
        state_dir: Optional[Path] = typer.Option(None, "--state-dir", help=service.state_help),
        as_json: bool = typer.Option(False, "--json"),
    ) -> None:
        state = running(service.state_dir(state_dir))
        print_status(state, as_json, service.name, service.detail(state) if state else "")


@identity_app.command("up")
def identity_up(
    port: int = typer.Option(0, "--port", help="TCP port on 127.0.0.1 (0: any free port)."),
    workers: int = typer.Option(2, "--workers", "-w", help="Worker processes."),
    hash_rounds: HashRounds = 4,
    users: int = typer.Option(10, "--users", help="Benchmark users bench-0 … bench-(N-1)."),
    token_ttl: float = typer.Option(3600.0, "--token-ttl", help="Token lifetime, seconds."),
    cpus: Optional[str] = typer.Option(None, "--cpus", help="CPUs for the service, e.g. 1."),
    state_dir: Optional[Path] = typer.Option(None, "--state-dir", help=_STATE_HELP),
    tls: bool = typer.Option(
        False, "--tls", help="Serve HTTPS behind a fresh self-signed certificate (printed as OS_CACERT)."
    ),
    timing_log: Optional[Path] = typer.Option(
        None, "--timing-log", help="Append 'recv_ns sent_ns status method path' per request (the server's view)."
    ),
    as_json: UpJson = False,
) -> None:
    """Start the service in the background; print its URL and credentials (the password once).

    The password is taken from REDLINE_LAB_PASSWORD when set, else generated. bench-0 has an
    application credential whose secret is the same password."""
    config = lab.IdentityLabConfig(
        _state_dir(state_dir), port, workers, hash_rounds, users, token_ttl, parse_cpus(cpus), tls, timing_log
    )
    password, given = admin_password()
    state = lab.up(config, password)
    print_up(
        state,
        as_json,
        f"reference identity service up: {state.url} (pid {state.pid}, {workers} workers)",
        password,
        given,
    )


add_down_and_status(
    identity_app,
    LabService(
        "reference identity service",
        _STATE_HELP,
        _state_dir,
        lab.down,
        lambda s: f"reference identity service stopped (pid {s.pid})",
    ),
    "Stop the service and every process it started.",
    "Say whether the service runs, where, and with which users (exit 3 when it does not).",
)


@identity_app.command("serve", hidden=True)
def identity_serve(
    state_dir: Path = typer.Option(..., "--state-dir"),
    port: int = typer.Option(0, "--port"),
    workers: int = typer.Option(2, "--workers"),
    token_ttl: float = typer.Option(3600.0, "--token-ttl"),
    tls_cert: Optional[Path] = typer.Option(None, "--tls-cert"),
    tls_key: Optional[Path] = typer.Option(None, "--tls-key"),
    timing_log: Optional[Path] = typer.Option(None, "--timing-log"),
) -> None:
    """Serve in the foreground (what `up` runs in the background)."""
    from redline.identity.server import ServerConfig, serve

    try:
        code = serve(
            ServerConfig(
                state_dir=state_dir,
                port=port,
                workers=workers,
                token_ttl_s=token_ttl,
                tls_cert=tls_cert,
                tls_key=tls_key,
                timing_log=timing_log,
            )
        )
    except (OSError, FileNotFoundError) as exc:
        raise UserError(f"cannot serve: {exc}") from None
    raise typer.Exit(code)
