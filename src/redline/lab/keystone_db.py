"""The database behind the Keystone lab: SQLite (a file), or a private PostgreSQL or
MariaDB server from Debian's packages, started by the lab for this Keystone only.

Layout under the lab's state directory (everything in one place, as for the rest of the lab):

    db/            the data (a tmpfs mounted here with `tmpfs=True`, else plain disk)
      data/        PostgreSQL cluster / MariaDB datadir (or keystone.db for SQLite)
      run/         the server's unix socket: no TCP port at all, so nothing to collide with
    db.json        what `stop` needs (kind, pid, mount point); no secrets
    postgresql.log / mariadb.log   the server's log, on disk so that it outlives a tmpfs

The servers listen on a unix socket only (loopback-only by construction). PostgreSQL
refuses to run as root and the lab usually is root, so the servers run as their Debian
service users (postgres, mysql) with one capability, CAP_DAC_READ_SEARCH: the state
directory often sits under a 0700 path (/root/…, pytest's tmp) that those users could
not otherwise traverse, and the lab must not loosen permissions outside its directory.
"""

from __future__ import annotations

import glob
import json
import os
import pwd
import re
import secrets
import shutil
import signal
import subprocess
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from urllib.parse import quote

from redline import procs
from redline.errors import UserError
from redline.lab.state import spawn_detached

DATABASES = ("sqlite", "postgresql", "mariadb")
DB_DIR = "db"
DB_JSON = "db.json"
TMPFS_SIZE = "2g"  # an upper bound, not a reservation: tmpfs takes pages as they are written
_SOCKET_MAX = 107  # sun_path is 108 bytes with the terminating NUL
_READY_TIMEOUT_S = 60.0
_STOP_TIMEOUT_S = 20.0


@dataclass(frozen=True)
class Database:
    """A database ready for Keystone. `connection` goes into keystone.conf only: for
    MariaDB it holds the keystone user's password, so it never reaches state.json."""

    kind: str
    connection: str
    storage: str  # disk | tmpfs
    version: str
    pid: int | None = None  # the server's (None for SQLite)
    socket: str | None = None
    connections: tuple[tuple[str, str], ...] = ()  # (database, URL) for each database created

    def url(self, name: str) -> str:
        """The connection URL of database `name` (one user per database, same server)."""
        return dict(self.connections)[name]

    def describe(self) -> dict[str, str]:
        """For state.json and run.json: what a reader needs to compare runs."""
        return {"db_storage": self.storage, "db_version": self.version}


@dataclass(frozen=True)
class _Record:
    """db.json: enough to stop the server after a crash of the lab (a tmpfs is found by
    looking: it is mounted at STATE/db or not)."""

    kind: str
    pid: int | None


def _check_settings(kind: str, settings: tuple[str, ...]) -> None:
    for s in settings:
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.-]*=.*", s):
            raise UserError(f"--db-set wants NAME=VALUE, not {s!r}")
    if settings and kind == "sqlite":
        raise UserError("--db-set applies to postgresql and mariadb, not sqlite")


def validate(kind: str, settings: tuple[str, ...]) -> None:
    if kind not in DATABASES:
        raise UserError(f"--database must be one of {', '.join(DATABASES)}, not {kind!r}")
    _check_settings(kind, settings)


def start(
    kind: str,
    state_dir: Path,
    tmpfs: bool = False,
    settings: tuple[str, ...] = (),
    cpus: tuple[int, ...] | None = None,
    on_step: Callable[[str], None] = lambda s: None,
    names: tuple[str, ...] = ("keystone",),
) -> Database:
    """Create a fresh database of `kind` under `state_dir` (stopping any left from before)
    and, for PostgreSQL and MariaDB, start its server; Keystone's database and user exist
    when this returns. Settings are server options NAME=VALUE (e.g. fsync=off). MariaDB
    can hold several databases (`names`, one user each: the OpenStack lab's services)."""
    validate(kind, settings)
    stop(state_dir)
    for old in ("postgresql.log", "mariadb.log"):
        (state_dir / old).unlink(missing_ok=True)
    db = state_dir / DB_DIR
    _fresh_dir(db, tmpfs)
    storage = "tmpfs" if tmpfs else "disk"
    if kind == "sqlite":
        _record(state_dir, _Record(kind, None))
        return Database(kind, f"sqlite:///{db}/keystone.db", storage, _sqlite_version())
    if kind == "postgresql":
        return _start_postgresql(state_dir, db, storage, settings, cpus, on_step)
    return _start_mariadb(state_dir, db, storage, settings, cpus, on_step, names)


def stop(state_dir: Path) -> int | None:
    """Stop the database server started under `state_dir` (if any) and unmount its tmpfs;
    idempotent. Returns the pid it stopped."""
    rec = _load(state_dir)
    stopped = None
    if rec is not None and rec.pid is not None and procs.alive(rec.pid) and _works_in(rec.pid, state_dir / DB_DIR):
        # The server's own clean shutdown (PostgreSQL: SIGINT = fast; MariaDB: SIGTERM), then
        # SIGKILL for whatever is left of it and its children: PostgreSQL's backends each
        # run in their own session, so stopping the postmaster's process group would miss them.
        procs.stop(
            rec.pid,
            timeout_s=_STOP_TIMEOUT_S,
            sig=signal.SIGINT if rec.kind == "postgresql" else signal.SIGTERM,
            children=True,
        )
        stopped = rec.pid
    mount = state_dir / DB_DIR
    if os.path.ismount(mount):
        _umount(mount)
    if rec is not None:
        (state_dir / DB_JSON).unlink(missing_ok=True)
    return stopped


# --- PostgreSQL ---------------------------------------------------------------------------


def _pg_bindir() -> Path:
    """Debian keeps the server binaries in /usr/lib/postgresql/<major>/bin (not on PATH);
    REDLINE_PG_BINDIR overrides (another build of PostgreSQL)."""
    if os.environ.get("REDLINE_PG_BINDIR"):
        cands = [os.environ["REDLINE_PG_BINDIR"]]
    else:
        found = glob.glob("/usr/lib/postgresql/*/bin")
        cands = sorted(found, key=lambda p: [int(x) for x in re.findall(r"\d+", p)], reverse=True)
    for c in cands:
        if all(os.access(os.path.join(c, exe), os.X_OK) for exe in ("postgres", "initdb", "psql")):
            return Path(c)
    raise UserError("PostgreSQL is not installed (apt-get install postgresql): no postgres, initdb and psql found")


def _start_postgresql(
    state_dir: Path,
    db: Path,
    storage: str,
    settings: tuple[str, ...],
    cpus: tuple[int, ...] | None,
    on_step: Callable[[str], None],
) -> Database:
    bindir = _pg_bindir()
    data, run = db / "data", db / "run"
    _socket_fits(run / ".s.PGSQL.5432")
    prefix = _service_dirs("postgres", data, run)
    version_s = _pg_version(bindir)
    on_step(f"initdb (PostgreSQL {version_s}, data on {storage})")
    # Trust on the socket: the socket directory is 0700, reachable only by its owner and root.
    _run([*prefix, str(bindir / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres",
          "-E", "UTF8", "--locale=C.UTF-8", "--no-sync"], "initdb")  # fmt: skip
    log = state_dir / "postgresql.log"
    args = [*prefix, str(bindir / "postgres"), "-D", str(data), "-k", str(run), "-p", "5432", "-c", "listen_addresses="]
    for s in settings:
        args += ["-c", s]
    on_step("starting PostgreSQL on a unix socket")
    proc = spawn_detached(args, log, cpus)
    _record(state_dir, _Record("postgresql", proc.pid))
    _await_ready(proc, log, "database system is ready to accept connections", "PostgreSQL")
    on_step("creating Keystone's role and database")
    sql = "CREATE ROLE keystone LOGIN;\nCREATE DATABASE keystone OWNER keystone ENCODING 'UTF8';\n"
    _run([str(bindir / "psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", str(run), "-p", "5432", "-U", "postgres",
          "-d", "postgres"], "creating Keystone's database", stdin=sql)  # fmt: skip
    url = f"postgresql+psycopg2://keystone@/keystone?host={quote(str(run), safe='/')}&port=5432"
    return Database("postgresql", url, storage, version_s, proc.pid, str(run))


def _pg_version(bindir: Path) -> str:
    out = _first_line([str(bindir / "postgres"), "--version"])  # postgres (PostgreSQL) 15.18 (Debian …)
    m = re.search(r"\)\s+(\S+)", out)
    return m.group(1) if m else out


# --- MariaDB ------------------------------------------------------------------------------


def _mariadb_bins() -> tuple[str, str, str]:
    def find(name: str) -> str | None:
        return shutil.which(name) or next(
            (p for p in (f"/usr/sbin/{name}", f"/usr/bin/{name}") if os.access(p, os.X_OK)), None
        )

    found = [find(n) for n in ("mariadbd", "mariadb-install-db", "mariadb")]
    if None in found:
        raise UserError(
            "MariaDB is not installed (apt-get install mariadb-server): no mariadbd, mariadb-install-db and mariadb found"
        )
    return found[0], found[1], found[2]  # type: ignore[return-value]


def _start_mariadb(
    state_dir: Path,
    db: Path,
    storage: str,
    settings: tuple[str, ...],
    cpus: tuple[int, ...] | None,
    on_step: Callable[[str], None],
    names: tuple[str, ...] = ("keystone",),
) -> Database:
    mariadbd, install_db, client = _mariadb_bins()
    data, run = db / "data", db / "run"
    sock = run / "mysqld.sock"
    _socket_fits(sock)
    prefix = _service_dirs("mysql", data, run)
    version = _mariadb_version(mariadbd)
    # unix_socket authentication: the OS user running the lab is an administrator of its server.
    admin = pwd.getpwuid(os.geteuid()).pw_name
    on_step(f"mariadb-install-db (MariaDB {version}, data on {storage})")
    # --no-defaults first: Debian's /etc/mysql/*.cnf must not leak into a private server.
    _run([*prefix, install_db, "--no-defaults", f"--datadir={data}", "--auth-root-authentication-method=socket",
          f"--auth-root-socket-user={admin}", "--skip-test-db", "--skip-name-resolve"], "mariadb-install-db")  # fmt: skip
    log = state_dir / "mariadb.log"
    args = [*prefix, mariadbd, "--no-defaults", f"--datadir={data}", f"--socket={sock}", "--skip-networking",
            f"--pid-file={run / 'mariadbd.pid'}", "--character-set-server=utf8mb4"]  # fmt: skip
    args += [f"--{s}" for s in settings]
    on_step("starting MariaDB on a unix socket")
    proc = spawn_detached(args, log, cpus)
    _record(state_dir, _Record("mariadb", proc.pid))
    _await_ready(proc, log, "ready for connections", "MariaDB")
    on_step(
        f"creating the database{'s' if len(names) > 1 else ''} and user{'s' if len(names) > 1 else ''} {', '.join(names)}"
    )
    sql, urls = "", []
    for name in names:
        password = secrets.token_hex(16)  # hex: nothing to escape in a URL or in SQL
        sql += (
            f"CREATE DATABASE {name} CHARACTER SET utf8mb4;\n"
            f"CREATE USER '{name}'@'localhost' IDENTIFIED BY '{password}';\n"
            f"GRANT ALL PRIVILEGES ON {name}.* TO '{name}'@'localhost';\n"
        )
        urls.append(
            (
                name,
                f"mysql+pymysql://{name}:{password}@localhost/{name}?unix_socket={quote(str(sock), safe='/')}&charset=utf8mb4",
            )
        )
    # The SQL (with the passwords) goes on stdin, never on a command line.
    _run([client, "--no-defaults", "-S", str(sock), "-u", admin], "creating the databases", stdin=sql)
    url = urls[0][1]
    return Database("mariadb", url, storage, version, proc.pid, str(run), tuple(urls))


def _mariadb_version(mariadbd: str) -> str:
    out = _first_line([mariadbd, "--version"])  # mariadbd  Ver 10.11.19-MariaDB-0+deb12u1 for …
    m = re.search(r"Ver\s+(\S+)", out)
    return m.group(1) if m else out


# --- shared helpers -----------------------------------------------------------------------


def _sqlite_version() -> str:
    import sqlite3

    return sqlite3.sqlite_version


def _fresh_dir(db: Path, tmpfs: bool) -> None:
    try:
        if os.path.ismount(db):
            _umount(db)
        shutil.rmtree(db, ignore_errors=True)
        db.mkdir(parents=True)
    except OSError as exc:
        raise UserError(f"cannot prepare {db}: {exc.strerror or exc}") from None
    if tmpfs:
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={TMPFS_SIZE},mode=0755", "redline-keystone-db", str(db)],
                           capture_output=True, text=True, stdin=subprocess.DEVNULL)  # fmt: skip
        if r.returncode != 0:
            why = (r.stderr.strip().splitlines() or [f"exit {r.returncode}"])[-1]
            raise UserError(f"--db-tmpfs: cannot mount a tmpfs on {db} (needs root): {why}")


def _umount(path: Path) -> None:
    r = subprocess.run(["umount", str(path)], capture_output=True, text=True, stdin=subprocess.DEVNULL)
    if r.returncode != 0:  # still busy (a process we could not stop): detach it now, freed when released
        subprocess.run(["umount", "-l", str(path)], capture_output=True, stdin=subprocess.DEVNULL)


def _service_dirs(user: str, data: Path, run: Path) -> list[str]:
    """Create the data and socket directories, owned by `user` when we are root; the
    command prefix that runs a program as that user (empty when we are not root)."""
    for d in (data, run):
        d.mkdir(parents=True, exist_ok=True)
        os.chmod(d, 0o700)
    if os.geteuid() != 0:
        return []
    try:
        pw = pwd.getpwnam(user)
    except KeyError:
        raise UserError(f"the system user {user!r} does not exist (it comes with the Debian package)") from None
    for d in (data.parent, data):
        os.chown(d, pw.pw_uid, pw.pw_gid)
    # The socket's directory: search permission for root's group as well, not just root's
    # capabilities, because Keystone under `--server apache` runs in a user namespace as
    # root without them (keystone_servers._unprivileged).
    os.chown(run, pw.pw_uid, os.getegid())
    os.chmod(run, 0o710)
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        raise UserError("setpriv is not installed (util-linux): needed to run the database as a service user")
    return [setpriv, f"--reuid={user}", f"--regid={user}", "--init-groups",
            "--inh-caps=+dac_read_search", "--ambient-caps=+dac_read_search", "--"]  # fmt: skip


def _socket_fits(sock: Path) -> None:
    if len(os.fsencode(str(sock))) > _SOCKET_MAX:
        raise UserError(f"the state directory's path is too long for a unix socket ({sock}): use a shorter --state-dir")


def _run(cmd: list[str], what: str, stdin: str | None = None, timeout: float = 120.0) -> None:
    try:
        r = subprocess.run(
            cmd, capture_output=True, text=True, input=stdin if stdin is not None else "", timeout=timeout
        )
    except subprocess.TimeoutExpired:
        raise UserError(f"{what} did not finish within {timeout:g} s") from None
    if r.returncode != 0:
        raise UserError(f"{what} failed: {_last_line(r.stderr + r.stdout) or f'exit {r.returncode}'}")


def _first_line(cmd: list[str]) -> str:
    r = subprocess.run(cmd, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=30)
    return (r.stdout.strip().splitlines() or ["?"])[0]


def _last_line(text: str) -> str:
    """The line that says why: the last error line when there is one, else the last line
    (MariaDB ends with a bare "Aborting" after the line that matters)."""
    lines = [l.strip() for l in text.splitlines() if l.strip()]
    errors = [l for l in lines if re.search(r"\b(FATAL|ERROR|PANIC)\b", l) and not l.endswith("Aborting")]
    return (errors or lines or [""])[-1]


def _await_ready(proc: subprocess.Popen[bytes], log: Path, marker: str, what: str) -> None:
    def ready() -> bool:
        text = log.read_text(errors="replace") if log.exists() else ""
        if marker in text:
            return True
        if proc.poll() is not None:
            raise UserError(f"{what} exited at start: {_last_line(text) or f'exit {proc.returncode}'} (log: {log})")
        return False

    if not procs.wait_until(ready, _READY_TIMEOUT_S):
        text = log.read_text(errors="replace") if log.exists() else ""
        raise UserError(f"{what} did not become ready within {_READY_TIMEOUT_S:g} s: {_last_line(text)} (log: {log})")


def _works_in(pid: int, path: Path) -> bool:
    """Whether `pid` still is our server (its working directory is its data directory),
    not another process that got the pid after a reboot."""
    try:
        cwd = os.readlink(f"/proc/{pid}/cwd")
    except OSError:
        return False
    return cwd == str(path) or cwd.startswith(f"{path}/")


def _record(state_dir: Path, rec: _Record) -> None:
    (state_dir / DB_JSON).write_text(json.dumps(asdict(rec)))


def _load(state_dir: Path) -> _Record | None:
    try:
        return _Record(**json.loads((state_dir / DB_JSON).read_text()))
    except (OSError, ValueError, TypeError):
        return None
