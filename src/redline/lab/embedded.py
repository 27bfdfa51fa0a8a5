"""The embedded default target of `redline capacity`: the reference identity service,
started for one command on 127.0.0.1 in a private state directory (pinned apart from
the load generator by the caller) and removed, process and files, when it ends."""

from __future__ import annotations

import secrets
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from redline.lab import identity
from redline.lab.state import ServiceState
from redline.scenarios.credentials import Credentials

# keystone.issue on the reference service at bcrypt cost 4: each request does the work a
# real token issue does (a bcrypt check, a Fernet token, a catalog), so N means something,
# while one core still reaches a few hundred per second.
DEFAULT_SCENARIO = "keystone.issue"
HASH_ROUNDS = 4
USERS = 4


@dataclass(frozen=True)
class EmbeddedIdentity:
    state: ServiceState
    credentials: Credentials  # admin of the fresh service; the password lives only in memory
    state_dir: Path

    def stop(self) -> None:
        identity.down(self.state_dir)
        shutil.rmtree(self.state_dir, ignore_errors=True)


def start_identity(cpus: tuple[int, ...] | None, workers: int | None = None) -> EmbeddedIdentity:
    """Start the service (one worker per target CPU unless told) with USERS benchmark users."""
    d = Path(tempfile.mkdtemp(prefix="redline-embedded-identity-"))
    password = secrets.token_urlsafe(16)
    n = workers or (len(cpus) if cpus else 2)
    try:
        state = identity.up(
            identity.IdentityLabConfig(d, workers=n, hash_rounds=HASH_ROUNDS, bench_users=USERS, cpus=cpus), password
        )
    except BaseException:
        shutil.rmtree(d, ignore_errors=True)
        raise
    creds = Credentials(
        auth_url=state.url,
        username=state.admin_user,
        password=password,
        project_name=state.admin_project,
        source="embedded",
    )
    return EmbeddedIdentity(state, creds, d)
