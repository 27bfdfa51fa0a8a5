"""Background lab services: one state directory each, a state.json without secrets,
a PID to stop them by, and a way to ask what is running.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from redline.errors import UserError
from redline.procs import alive, stop, wait_until

STATE_JSON = "state.json"
STUDY_LABS = "study"


def default_state_root() -> Path:
    """Where lab services keep their state: REDLINE_LAB_DIR, else ~/.local/state/redline/lab."""
    if os.environ.get("REDLINE_LAB_DIR"):
        return Path(os.environ["REDLINE_LAB_DIR"])
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return Path(base) / "redline" / "lab"


@dataclass(frozen=True)
class ServiceState:
    """What `status` shows and what scenarios read (the URL, users, hash cost). No secrets."""

    kind: str  # identity, keystone
    pid: int
    url: str  # the identity endpoint, e.g. http://127.0.0.1:5000/v3
    admin_user: str
    admin_project: str
    bench_users: tuple[str, ...]
    bench_project: str
    password_hash_rounds: int
    started_at: float
    config: dict[str, Any] = field(default_factory=dict)
    extra_pids: tuple[int, ...] = ()  # helpers started with it (memcached, a database)

    @classmethod
    def bootstrapped(cls, kind: str, pid: int, url: str, hash_rounds: int, bench_users: int, config: dict[str, Any],
                     extra_pids: tuple[int, ...] = ()) -> ServiceState:  # fmt: skip
        """A service started just now, bootstrapped the lab's way: admin in project admin,
        users bench-0… in project bench."""
        return cls(kind=kind, pid=pid, url=url, admin_user="admin", admin_project="admin",
                   bench_users=tuple(f"bench-{i}" for i in range(bench_users)), bench_project="bench",
                   password_hash_rounds=hash_rounds, started_at=time.time(), config=config, extra_pids=extra_pids)  # fmt: skip

    def save(self, state_dir: Path) -> None:
        tmp = state_dir / (STATE_JSON + ".tmp")
        tmp.write_text(json.dumps(asdict(self), indent=2))
        tmp.replace(state_dir / STATE_JSON)

    @classmethod
    def load(cls, state_dir: Path) -> ServiceState | None:
        try:
            doc = json.loads((state_dir / STATE_JSON).read_text())
            doc["bench_users"] = tuple(doc["bench_users"])
            doc["extra_pids"] = tuple(doc.get("extra_pids", ()))
            return cls(**doc)
        except (OSError, ValueError, TypeError, KeyError):
            return None

    def describe(self) -> dict[str, Any]:
        """For a run's target description (what a reader needs to compare runs)."""
        return {
            "kind": self.kind,
            "url": self.url,
            "password_hash_rounds": self.password_hash_rounds,
            **self.config,
        }


def running(state_dir: Path) -> ServiceState | None:
    state = ServiceState.load(state_dir)
    return state if state is not None and alive(state.pid) else None


def spawn_detached(
    args: list[str], log: Path, cpus: tuple[int, ...] | None = None, env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """Start a service in its own session (so its group can be stopped as one), logging to `log`."""
    preexec = (lambda: os.sched_setaffinity(0, cpus)) if cpus else None
    with open(log, "ab") as fh:
        return subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=fh,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=preexec,
            env=env,
        )


def wait_for_line(proc: subprocess.Popen[bytes], log: Path, marker: str, what: str, timeout: float = 60.0) -> str:
    """The first log line holding `marker`; a clear error if the process exits first."""

    def marker_line() -> str | None:
        text = log.read_text(errors="replace") if log.exists() else ""
        for line in text.splitlines():
            if marker in line:
                return line
        if proc.poll() is not None:
            last = [l for l in text.splitlines() if l.strip()]
            raise UserError(f"{what} exited at start: {last[-1] if last else proc.returncode} (log: {log})")
        return None

    line = wait_until(marker_line, timeout)
    if line is None:
        stop(proc.pid, group=True)
        raise UserError(f"{what} did not start within {timeout:g} s (log: {log})")
    return line


def study_labs_root(study: str) -> Path:
    """Where a study's cells keep their labs: one directory per target kind, apart from the
    user's own labs so a study never stops or reuses them."""
    return default_state_root() / STUDY_LABS / study


def _running_services() -> Iterator[tuple[Path, ServiceState]]:
    """Every running lab service under the state root (the user's labs and the study cells'),
    with its state directory; a cell's lab is then monitored as the target like any other."""
    root = default_state_root()
    if not root.is_dir():
        return
    study_labs = sorted((root / STUDY_LABS).glob("*/*")) if (root / STUDY_LABS).is_dir() else []
    for d in [*sorted(root.iterdir()), *study_labs]:
        st = running(d) if d.is_dir() and d.name != STUDY_LABS else None
        if st is not None:
            yield d, st


def lab_state_dir(state: ServiceState) -> Path | None:
    """The state directory of a running lab service (its config files live there)."""
    return next((d for d, st in _running_services() if (st.pid, st.started_at) == (state.pid, state.started_at)), None)


def find_by_url(url: str) -> ServiceState | None:
    """The running lab service (of any kind) whose endpoint is `url`, if redline started one."""
    want = url.rstrip("/")
    for _, st in _running_services():
        if st.url.rstrip("/") == want or st.url.rstrip("/").removesuffix("/v3") == want:
            return st
    return None
