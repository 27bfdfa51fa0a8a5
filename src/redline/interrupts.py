"""Which signal stopped redline, so the exit status can say it: 130 for SIGINT, 143 for SIGTERM.

Ctrl-C and SIGTERM end a command the same way (a KeyboardInterrupt: what was measured is
kept, cleanup runs), but a supervisor that sent SIGTERM expects 128 + 15 back. Every
handler that turns one of them into a stop records it here; the first one recorded is the
cause, since a second signal during the cleanup does not change why the command stopped.
"""

from __future__ import annotations

import signal

_first: int | None = None


def record(signum: int) -> None:
    """Note that `signum` (SIGINT or SIGTERM) asked redline to stop."""
    global _first
    if _first is None:
        _first = signum


def stopped_by() -> int | None:
    return _first


def exit_status() -> tuple[int, str]:
    """(exit code, word) for the stop: a KeyboardInterrupt with nothing recorded is Ctrl-C."""
    if _first == signal.SIGTERM:
        return 128 + signal.SIGTERM, "terminated"
    return 128 + signal.SIGINT, "interrupted"


def reset() -> None:
    """Forget the recorded signal (for a library caller running several commands in one process)."""
    global _first
    _first = None
