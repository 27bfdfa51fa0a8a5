"""`redline lab identity up|down|status`: the reference identity service on 127.0.0.1."""

from __future__ import annotations

import json
import os
import secrets
import sys
from pathlib import Path
from typing import Optional

import typer

from redline.cli.app import lab_app
from redline.cli.options import out_console, parse_cpus
from redline.errors import UserError
from redline.lab import identity as lab
from redline.lab.state import ServiceState, running

identity_app = typer.Typer(help="The reference identity service (Keystone v3 subset).", no_args_is_help=True)
lab_app.add_typer(identity_app, name="identity")

PASSWORD_ENV = "REDLINE_LAB_PASSWORD"
_STATE_HELP = "State directory (database, keys, log, state.json)."


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
    if state.bench_users:
        first, last = state.bench_users[0], state.bench_users[-1]
        out_console.print(
            f"benchmark users: {first} … {last} ({len(state.bench_users)}, project {state.bench_project}, same password,"
            f" bcrypt cost {state.password_hash_rounds})"
        )


def state_json(state: ServiceState | None) -> str:
    return json.dumps(None if state is None else state.__dict__ | {"bench_users": list(state.bench_users)}, indent=2)


def print_up(state: ServiceState, headline: str, password: str, given: bool) -> None:
    """After `up`: the headline, then the credentials; a generated password is shown once, here."""
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


@identity_app.command("up")
def identity_up(
    port: int = typer.Option(0, "--port", help="TCP port on 127.0.0.1 (0: any free port)."),
    workers: int = typer.Option(2, "--workers", "-w", help="Worker processes."),
    hash_rounds: int = typer.Option(4, "--hash-rounds", help="bcrypt cost of the users' passwords (Keystone's default is 12)."),
    users: int = typer.Option(10, "--users", help="Benchmark users bench-0 … bench-(N-1)."),
    token_ttl: float = typer.Option(3600.0, "--token-ttl", help="Token lifetime, seconds."),
    cpus: Optional[str] = typer.Option(None, "--cpus", help="CPUs for the service, e.g. 1."),
    state_dir: Optional[Path] = typer.Option(None, "--state-dir", help=_STATE_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print the state (without the password) as JSON."),
) -> None:
    """Start the service in the background; print its URL and credentials (the password once).

    The password is taken from REDLINE_LAB_PASSWORD when set, else generated."""
    config = lab.IdentityLabConfig(_state_dir(state_dir), port, workers, hash_rounds, users, token_ttl, parse_cpus(cpus))
    given = os.environ.get(PASSWORD_ENV)
    password = given or secrets.token_urlsafe(16)
    state = lab.up(config, password)
    if as_json:
        print(state_json(state))
        return
    print_up(state, f"reference identity service up: {state.url} (pid {state.pid}, {workers} workers)", password, bool(given))


@identity_app.command("down")
def identity_down(state_dir: Optional[Path] = typer.Option(None, "--state-dir", help=_STATE_HELP)) -> None:
    """Stop the service and every process it started."""
    state = lab.down(_state_dir(state_dir))
    if state is None:
        print("redline: no reference identity service is running; nothing to stop", file=sys.stderr)
        return
    out_console.print(f"reference identity service stopped (pid {state.pid})")


@identity_app.command("status")
def identity_status(
    state_dir: Optional[Path] = typer.Option(None, "--state-dir", help=_STATE_HELP),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Say whether the service runs, where, and with which users (exit 3 when it does not)."""
    print_status(running(_state_dir(state_dir)), as_json, "reference identity service")


@identity_app.command("serve", hidden=True)
def identity_serve(
    state_dir: Path = typer.Option(..., "--state-dir"),
    port: int = typer.Option(0, "--port"),
    workers: int = typer.Option(2, "--workers"),
    token_ttl: float = typer.Option(3600.0, "--token-ttl"),
) -> None:
    """Serve in the foreground (what `up` runs in the background)."""
    from redline.identity.server import ServerConfig, serve

    try:
        code = serve(ServerConfig(state_dir=state_dir, port=port, workers=workers, token_ttl_s=token_ttl))
    except (OSError, FileNotFoundError) as exc:
        raise UserError(f"cannot serve: {exc}") from None
    raise typer.Exit(code)
