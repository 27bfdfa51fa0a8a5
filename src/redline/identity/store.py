"""The SQLite store: domains, projects, users (bcrypt hashes), role assignments, revocations.

Users, projects and roles do not change while the service runs (there is no admin API),
so each worker process caches them after the first read; revocations are read from
the database on every validation, so that a token revoked through one worker is
refused by all of them.
"""

from __future__ import annotations

import sqlite3
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import bcrypt

DEFAULT_DOMAIN = ("default", "Default")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS domains (id TEXT PRIMARY KEY, name TEXT UNIQUE NOT NULL);
CREATE TABLE IF NOT EXISTS projects (id TEXT PRIMARY KEY, name TEXT NOT NULL, domain_id TEXT NOT NULL,
    UNIQUE (name, domain_id));
CREATE TABLE IF NOT EXISTS users (id TEXT PRIMARY KEY, name TEXT NOT NULL, domain_id TEXT NOT NULL,
    password_hash BLOB NOT NULL, enabled INTEGER NOT NULL DEFAULT 1, UNIQUE (name, domain_id));
CREATE TABLE IF NOT EXISTS roles (id TEXT PRIMARY KEY, name TEXT UNIQUE NOT NULL);
CREATE TABLE IF NOT EXISTS assignments (user_id TEXT NOT NULL, project_id TEXT NOT NULL, role_id TEXT NOT NULL,
    PRIMARY KEY (user_id, project_id, role_id));
CREATE TABLE IF NOT EXISTS revoked (audit_id TEXT PRIMARY KEY, expires_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS application_credentials (id TEXT PRIMARY KEY, name TEXT NOT NULL, user_id TEXT NOT NULL,
    project_id TEXT NOT NULL, secret_hash BLOB NOT NULL, UNIQUE (name, user_id));
"""

# The application credential `up` creates for bench-0 (project bench), secret: the admin password
BENCH_APP_CREDENTIAL = "bench-0-ci"


@dataclass(frozen=True)
class Domain:
    id: str
    name: str


@dataclass(frozen=True)
class Project:
    id: str
    name: str
    domain: Domain


@dataclass(frozen=True)
class User:
    id: str
    name: str
    domain: Domain
    password_hash: bytes
    enabled: bool


@dataclass(frozen=True)
class AppCredential:
    id: str
    name: str
    user_id: str
    project_id: str
    secret_hash: bytes


@dataclass(frozen=True)
class Role:
    id: str
    name: str


def _new_id() -> str:
    return uuid.uuid4().hex


def bootstrap(
    path: Path,
    admin_password: str,
    hash_rounds: int,
    bench_users: int,
    admin_name: str = "admin",
    admin_project: str = "admin",
    bench_project: str = "bench",
) -> None:
    """Create the database: the default domain, admin (role admin on project admin) and
    `bench_users` users bench-0..bench-(n-1) (role member on project bench), all with
    `admin_password` hashed by bcrypt at cost `hash_rounds`."""
    db = sqlite3.connect(path)
    try:
        db.executescript(_SCHEMA)
        db.execute("PRAGMA journal_mode=WAL")
        dom_id, dom_name = DEFAULT_DOMAIN
        db.execute("INSERT INTO domains VALUES (?, ?)", (dom_id, dom_name))
        roles = {name: _new_id() for name in ("admin", "member", "reader")}
        db.executemany("INSERT INTO roles VALUES (?, ?)", [(rid, name) for name, rid in roles.items()])
        projects = {name: _new_id() for name in (admin_project, bench_project)}
        db.executemany("INSERT INTO projects VALUES (?, ?, ?)", [(pid, n, dom_id) for n, pid in projects.items()])
        salt_pw = admin_password.encode()[:72]

        def add_user(name: str, project: str, role_names: tuple[str, ...]) -> str:
            uid = _new_id()
            hashed = bcrypt.hashpw(salt_pw, bcrypt.gensalt(rounds=hash_rounds))
            db.execute("INSERT INTO users VALUES (?, ?, ?, ?, 1)", (uid, name, dom_id, hashed))
            for r in role_names:
                db.execute("INSERT INTO assignments VALUES (?, ?, ?)", (uid, projects[project], roles[r]))
            return uid

        add_user(admin_name, admin_project, ("admin", "member", "reader"))
        for i in range(bench_users):
            uid = add_user(f"bench-{i}", bench_project, ("member", "reader"))
            if i == 0:
                hashed = bcrypt.hashpw(salt_pw, bcrypt.gensalt(rounds=hash_rounds))
                db.execute(
                    "INSERT INTO application_credentials VALUES (?, ?, ?, ?, ?)",
                    (_new_id(), BENCH_APP_CREDENTIAL, uid, projects[bench_project], hashed),
                )
        db.execute("INSERT INTO meta VALUES ('password_hash_rounds', ?)", (str(hash_rounds),))
        db.commit()
    finally:
        db.close()


class Store:
    """One worker's view of the database (open it after the worker process starts)."""

    def __init__(self, path: Path) -> None:
        self._db = sqlite3.connect(path, isolation_level=None, timeout=5.0)
        self._users_by_name: dict[tuple[str, str], User | None] = {}
        self._users_by_id: dict[str, User | None] = {}
        self._projects_by_name: dict[tuple[str, str], Project | None] = {}
        self._projects_by_id: dict[str, Project | None] = {}
        self._roles: dict[tuple[str, str], tuple[Role, ...]] = {}
        self._domains: dict[str, Domain] = {
            i: Domain(i, n) for i, n in self._db.execute("SELECT id, name FROM domains")
        }
        self._domain_ids = {d.name: d.id for d in self._domains.values()}

    def close(self) -> None:
        self._db.close()

    def domain_id(self, id_: str | None, name: str | None) -> str | None:
        if id_ is not None:
            return id_ if id_ in self._domains else None
        return self._domain_ids.get(name or "")

    def _user(self, row: tuple[Any, ...] | None) -> User | None:
        if row is None:
            return None
        return User(row[0], row[1], self._domains[row[2]], bytes(row[3]), bool(row[4]))

    def user_by_name(self, name: str, domain_id: str) -> User | None:
        key = (name, domain_id)
        if key not in self._users_by_name:
            row = self._db.execute("SELECT * FROM users WHERE name = ? AND domain_id = ?", key).fetchone()
            self._users_by_name[key] = self._user(row)
        return self._users_by_name[key]

    def user_by_id(self, user_id: str) -> User | None:
        if user_id not in self._users_by_id:
            row = self._db.execute("SELECT * FROM users WHERE id = ?", (user_id,)).fetchone()
            self._users_by_id[user_id] = self._user(row)
        return self._users_by_id[user_id]

    def _project(self, row: tuple[Any, ...] | None) -> Project | None:
        return None if row is None else Project(row[0], row[1], self._domains[row[2]])

    def project_by_name(self, name: str, domain_id: str) -> Project | None:
        key = (name, domain_id)
        if key not in self._projects_by_name:
            row = self._db.execute("SELECT * FROM projects WHERE name = ? AND domain_id = ?", key).fetchone()
            self._projects_by_name[key] = self._project(row)
        return self._projects_by_name[key]

    def project_by_id(self, project_id: str) -> Project | None:
        if project_id not in self._projects_by_id:
            row = self._db.execute("SELECT * FROM projects WHERE id = ?", (project_id,)).fetchone()
            self._projects_by_id[project_id] = self._project(row)
        return self._projects_by_id[project_id]

    def roles(self, user_id: str, project_id: str) -> tuple[Role, ...]:
        key = (user_id, project_id)
        if key not in self._roles:
            rows = self._db.execute(
                "SELECT r.id, r.name FROM assignments a JOIN roles r ON r.id = a.role_id"
                " WHERE a.user_id = ? AND a.project_id = ? ORDER BY r.name",
                key,
            ).fetchall()
            self._roles[key] = tuple(Role(i, n) for i, n in rows)
        return self._roles[key]

    def is_revoked(self, audit_ids: tuple[str, ...]) -> bool:
        marks = ",".join("?" * len(audit_ids))
        row = self._db.execute(f"SELECT 1 FROM revoked WHERE audit_id IN ({marks}) LIMIT 1", audit_ids).fetchone()
        return row is not None

    def revoke(self, audit_id: str, expires_at: float) -> None:
        self._db.execute("INSERT OR IGNORE INTO revoked VALUES (?, ?)", (audit_id, expires_at))
        # Revocations of tokens that have expired anyway are no longer needed.
        self._db.execute("DELETE FROM revoked WHERE expires_at < ?", (time.time() - 60,))

    def app_credential(self, id_: str | None, name: str | None, user_id: str | None) -> AppCredential | None:
        """By id, or by name and its user's id (Keystone's two ways to name one)."""
        if id_ is not None:
            row = self._db.execute("SELECT * FROM application_credentials WHERE id = ?", (id_,)).fetchone()
        else:
            row = self._db.execute(
                "SELECT * FROM application_credentials WHERE name = ? AND user_id = ?", (name, user_id)
            ).fetchone()
        return None if row is None else AppCredential(row[0], row[1], row[2], row[3], bytes(row[4]))

    def app_credentials(self) -> list[tuple[str, str, str]]:
        """(id, name, user name) of every application credential, for `lab identity up`."""
        rows = self._db.execute(
            "SELECT a.id, a.name, u.name FROM application_credentials a JOIN users u ON u.id = a.user_id ORDER BY a.name"
        ).fetchall()
        return [(str(i), str(n), str(u)) for i, n, u in rows]

    def meta(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None


def check_secret(hashed: bytes, secret: str) -> bool:
    try:
        return bcrypt.checkpw(secret.encode()[:72], hashed)
    except ValueError:
        return False


def check_password(user: User, password: str) -> bool:
    """bcrypt's check (the work is the point: its cost is what a benchmark measures)."""
    try:
        return bcrypt.checkpw(password.encode()[:72], user.password_hash)
    except ValueError:
        return False
