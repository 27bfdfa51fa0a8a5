"""`redline lab identity`: the reference identity service in the background.

`up` bootstraps a fresh database (admin and benchmark users, bcrypt at the chosen cost),
starts the service in its own session and records its PID (with `tls`, behind a fresh
self-signed certificate whose path the state records as its CA file; with a timing log,
the server's own per-request times); `down` stops the whole
process group; `status` says what runs. The password is never written to the state.
"""

from __future__ import annotations

import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from redline.errors import UserError
from redline.identity.server import DB_NAME, KEYS_DIR
from redline.identity.store import Store, bootstrap
from redline.lab import tls as lab_tls
from redline.lab.state import ServiceState, default_state_root, running, spawn_detached, wait_for_line
from redline.procs import stop

KIND = "identity"
LOG = "identity.log"
BANNER = "reference identity service on "


@dataclass(frozen=True)
class IdentityLabConfig:
    state_dir: Path
    port: int = 0
    workers: int = 2
    hash_rounds: int = 4
    bench_users: int = 10
    token_ttl_s: float = 3600.0
    cpus: tuple[int, ...] | None = None
    tls: bool = False
    timing_log: Path | None = None

    def __post_init__(self) -> None:
        if not 4 <= self.hash_rounds <= 31:
            raise UserError(f"the bcrypt cost must be 4..31, not {self.hash_rounds}")
        if self.workers < 1:
            raise UserError("--workers must be at least 1")
        if not 0 <= self.port <= 65535:
            raise UserError(f"--port must be 0..65535, not {self.port}")
        if self.bench_users < 0:
            raise UserError("--users must be 0 or more")
        if not self.token_ttl_s > 0:
            raise UserError("--token-ttl must be positive")


def default_state_dir() -> Path:
    return default_state_root() / KIND


def up(config: IdentityLabConfig, password: str) -> ServiceState:
    d = config.state_dir
    current = running(d)
    if current is not None:
        raise UserError(
            f"the reference identity service is already running at {current.url} (pid {current.pid}); stop it with `redline lab identity down`"
        )
    try:
        d.mkdir(parents=True, exist_ok=True)
        for stale in (d / DB_NAME, d / f"{DB_NAME}-wal", d / f"{DB_NAME}-shm"):
            stale.unlink(missing_ok=True)
        shutil.rmtree(d / KEYS_DIR, ignore_errors=True)
        bootstrap(d / DB_NAME, password, config.hash_rounds, config.bench_users)
        cert, key = lab_tls.self_signed(d) if config.tls else (None, None)
        if config.timing_log is not None:
            config.timing_log.parent.mkdir(parents=True, exist_ok=True)
            config.timing_log.unlink(missing_ok=True)
    except OSError as exc:
        raise UserError(f"cannot prepare the state directory {d}: {exc.strerror or exc}") from None
    args = [
        sys.executable, "-m", "redline", "lab", "identity", "serve",
        "--state-dir", str(d), "--port", str(config.port), "--workers", str(config.workers),
        "--token-ttl", str(config.token_ttl_s),
    ]  # fmt: skip
    if cert is not None and key is not None:
        args += ["--tls-cert", str(cert), "--tls-key", str(key)]
    if config.timing_log is not None:
        args += ["--timing-log", str(config.timing_log.resolve())]
    log = d / LOG
    log.unlink(missing_ok=True)
    proc = spawn_detached(args, log, config.cpus)
    line = wait_for_line(proc, log, BANNER, "the reference identity service", timeout=30)
    base = line.split(BANNER, 1)[1].split()[0].rstrip("/")
    state = ServiceState.bootstrapped(KIND, proc.pid, f"{base}/v3", config.hash_rounds, config.bench_users, config={
        "server": "redline-identity",
        "workers": config.workers,
        "database": "sqlite",
        "cache": "in-process",
        "token_ttl_s": config.token_ttl_s,
        "cpus": list(config.cpus) if config.cpus else None,
        "ca_file": str(cert) if cert is not None else None,
        "timing_log": str(config.timing_log.resolve()) if config.timing_log is not None else None,
        "application_credentials": _app_credentials(d),
    })  # fmt: skip
    state.save(d)
    return state


def _app_credentials(d: Path) -> list[dict[str, str]]:
    """What clouds.yaml needs of each (the secret is the admin password: not here)."""
    store = Store(d / DB_NAME)
    try:
        return [{"id": i, "name": n, "user": u} for i, n, u in store.app_credentials()]
    finally:
        store.close()


def down(state_dir: Path) -> ServiceState | None:
    """Stop the service; None when nothing was running."""
    state = running(state_dir)
    if state is None:
        return None
    stop(state.pid, group=True)
    return state
