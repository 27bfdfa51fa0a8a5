"""The `redline` command: registers one module per command and maps errors to exit codes."""

from __future__ import annotations

import signal
import sys
from types import FrameType

import typer

from redline import __version__, interrupts
from redline.errors import UserError

app = typer.Typer(
    name="redline",
    help="Find the highest load a target sustains without degrading, and say why.",
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
)


def _print_version(wanted: bool) -> None:
    if wanted:
        print(f"redline {__version__}")
        raise typer.Exit()


@app.callback()
def _options(
    version: bool = typer.Option(
        False, "--version", callback=_print_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    # No docstring: the app's help above stays the text of `redline --help`.
    pass


lab_app = typer.Typer(help="Start and stop real targets on this machine.", no_args_is_help=True)
app.add_typer(lab_app, name="lab")

# Command modules register themselves on `app` / `lab_app` when imported.
# (one import line per command module, added as commands land)
from redline.cli import audit as _audit  # noqa: E402,F401
from redline.cli import capacity as _capacity  # noqa: E402,F401
from redline.cli import compare as _compare  # noqa: E402,F401
from redline.cli import diagnose as _diagnose  # noqa: E402,F401
from redline.cli import interop as _interop  # noqa: E402,F401
from redline.cli import lab_calibrated as _lab_calibrated  # noqa: E402,F401
from redline.cli import lab_hypervisor as _lab_hypervisor  # noqa: E402,F401
from redline.cli import lab_identity as _lab_identity  # noqa: E402,F401
from redline.cli import lab_keystone as _lab_keystone  # noqa: E402,F401
from redline.cli import lab_openstack as _lab_openstack  # noqa: E402,F401
from redline.cli import report as _report  # noqa: E402,F401
from redline.cli import run as _run  # noqa: E402,F401
from redline.cli import scale as _scale  # noqa: E402,F401
from redline.cli import storm as _storm  # noqa: E402,F401
from redline.cli import study as _study  # noqa: E402,F401
from redline.cli import tune as _tune  # noqa: E402,F401


def fail(message: str, code: int = 2) -> None:
    """Print one clear line on stderr and exit with `code`."""
    print(f"redline: error: {message}", file=sys.stderr)
    raise SystemExit(code)


def _stop(signum: int, _frame: FrameType | None) -> None:
    interrupts.record(signum)
    raise KeyboardInterrupt


def main() -> None:
    # Ctrl-C / kill -INT always stops redline cleanly, keeping what was measured, even when
    # a non-interactive shell started it in the background with SIGINT ignored; SIGTERM
    # stops it the same way, and the exit status says which of the two it was.
    interrupts.reset()
    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)
    try:
        # Without standalone mode, click returns the code of a `typer.Exit` instead of raising.
        # The name is fixed: under `python -m redline` click would call the program
        # "python -m redline", in usage lines and in the completion scripts it writes.
        code = app(prog_name="redline", standalone_mode=False)
    except UserError as exc:
        fail(str(exc), exc.exit_code)
    except KeyboardInterrupt:
        code, word = interrupts.exit_status()
        print(f"redline: {word}", file=sys.stderr)
        raise SystemExit(code) from None
    except typer.Exit as exc:
        raise SystemExit(exc.exit_code) from None
    except typer.Abort:
        print("redline: aborted", file=sys.stderr)
        raise SystemExit(1) from None
    except typer.TyperException as exc:  # usage errors: bad option, bad value
        lines = exc.format_message().splitlines()
        if not lines:  # a group given no command: typer has printed its help already
            raise SystemExit(exc.exit_code) from None
        fail(lines[0], exc.exit_code)
    if isinstance(code, int) and code:
        raise SystemExit(code)
