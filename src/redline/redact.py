"""Secrets out of what redline writes: command lines are kept in run.json and the
monitor's process list, and a password or token given as an option must not be."""

from __future__ import annotations

import re
import shlex

_SECRET_FLAGS = re.compile(r"^--?(os-)?(password|token|secret|body)(=.*)?$", re.IGNORECASE)
_SECRET_HEADER = re.compile(r"^(x-auth-token|x-subject-token|authorization)\s*:", re.IGNORECASE)


def redacted_command_line(argv: list[str]) -> str:
    """The command line with the values of secret-bearing options replaced."""
    out: list[str] = []
    hide_next = False
    for arg in argv:
        if hide_next:
            out.append("<redacted>")
            hide_next = False
            continue
        m = _SECRET_FLAGS.match(arg)
        if m:
            if m.group(3):
                out.append(arg.split("=", 1)[0] + "=<redacted>")
            else:
                out.append(arg)
                hide_next = True
            continue
        if _SECRET_HEADER.match(arg):
            out.append(arg.split(":", 1)[0] + ": <redacted>")
            continue
        out.append(arg)
    return shlex.join(out)
