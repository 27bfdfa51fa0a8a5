"""Errors a user can cause. The CLI turns each into one line on stderr and an exit code."""

from __future__ import annotations


class UserError(Exception):
    """A problem with the input or the environment that the user can fix.

    The message is a single sentence shown as is; `exit_code` is the process exit status.
    """

    exit_code = 2

    def __init__(self, message: str, exit_code: int | None = None) -> None:
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code


class TargetUnreachable(UserError):
    """The target could not be reached at all (refused, unresolvable, timed out)."""

    exit_code = 3
