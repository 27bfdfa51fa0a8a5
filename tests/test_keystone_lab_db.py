"""Real Keystone on a private PostgreSQL and a private MariaDB started by the lab (Debian's
packages): each comes up, Keystone's rows are in that database, a quick capacity search for
validate finds N (exit 0, outcome found, N within the target's CPU bound) and writes its
report, and `down` leaves no process and no mount behind.
A server that cannot start, or a database that is not installed, says so in one line."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from conftest import CPUS, GEN_CPUS, TARGET_CPUS, assert_one_line_error, run_redline
from identity_helpers import found_search, probe_table
from redline.lab.keystone_db import _last_line, _mariadb_bins, _pg_bindir
from redline.procs import alive, group_members

PASSWORD = "Keystone-db-pw-42"
GEN = ",".join(map(str, GEN_CPUS))
TARGET = ",".join(map(str, TARGET_CPUS)) if TARGET_CPUS else None


@pytest.fixture
def lab_root(tmp_path_factory, monkeypatch):
    # A short path: the database's unix socket lives under it (108 bytes at most).
    root = tmp_path_factory.mktemp("ksdb")
    monkeypatch.setenv("REDLINE_LAB_DIR", str(root))  # so that `capacity` finds the lab's state
    monkeypatch.setenv("REDLINE_LAB_PASSWORD", PASSWORD)
    yield root
    run_redline("lab", "keystone", "down", "--state-dir", str(root / "keystone"))  # after a failed assertion


def _lab_processes(root: Path) -> list[str]:
    """Live processes working in or naming `root` (PostgreSQL's children run in sessions
    of their own and name no path, but their working directory is the data directory)."""
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat") as fh:
                if fh.read().rsplit(")", 1)[1].split()[0] == "Z":
                    continue
            cwd = os.readlink(f"/proc/{entry.name}/cwd")
            with open(f"/proc/{entry.name}/cmdline", "rb") as fh:
                cmd = fh.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if cwd == str(root) or cwd.startswith(f"{root}/") or f"{root}/" in cmd:
            found.append(f"{entry.name}: {cmd[:120]}")
    return found


def _exe(pid: int) -> str:
    try:
        return os.path.basename(os.readlink(f"/proc/{pid}/exe"))
    except OSError:
        return ""


def _keystone_users(database: str, run: Path) -> int:
    """Rows in Keystone's `user` table, read from the database server itself."""
    if database == "postgresql":
        cmd = [str(_pg_bindir() / "psql"), "-X", "-At", "-h", str(run), "-U", "postgres", "-d", "keystone",
               "-c", 'SELECT count(*) FROM "user"']  # fmt: skip
    else:
        cmd = [_mariadb_bins()[2], "--no-defaults", "-S", str(run / "mysqld.sock"), "-u", "root", "-N", "-B",
               "-e", "SELECT count(*) FROM keystone.user"]  # fmt: skip
    return int(subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=30).stdout.strip())


# PostgreSQL's search is opt-in (REDLINE_OPTIN=1): the default suite keeps one database's
# whole search within CI's time (examples/study/keystone-table1.yaml searches both).
_PG_OPTIN = pytest.mark.skipif(not os.environ.get("REDLINE_OPTIN"), reason="opt-in: REDLINE_OPTIN=1 (~2 min)")


@pytest.mark.slow
@pytest.mark.parametrize("database, tmpfs", [pytest.param("postgresql", False, marks=_PG_OPTIN), ("mariadb", True)])
def test_quick_capacity_on_keystone_database(lab_root, tmp_path, monkeypatch, database, tmpfs):
    t0 = time.monotonic()
    sdir = lab_root / "keystone"
    up = run_redline(
        "lab", "keystone", "up", "--database", database, *(["--db-tmpfs"] if tmpfs else []),
        *(["--cpus", TARGET] if TARGET else []), "--state-dir", str(sdir), "--json", timeout=240,
    )  # fmt: skip
    assert up.returncode == 0 and "Traceback" not in up.stderr, up.stderr
    state = json.loads(up.stdout)
    assert state["config"]["database"] == database
    assert state["config"]["db_storage"] == ("tmpfs" if tmpfs else "disk")
    assert os.path.ismount(sdir / "db") == tmpfs
    assert PASSWORD not in up.stdout and "keystone:" not in (sdir / "state.json").read_text()
    # Keystone's admin and the 4 benchmark users were written to that server's database.
    assert _keystone_users(database, sdir / "db" / "run") == 5
    servers = [p for p in state["extra_pids"] if _exe(p) in ("postgres", "mariadbd")]
    assert len(servers) == 1, state["extra_pids"]
    db_pid = servers[0]
    assert alive(db_pid) and _lab_processes(lab_root), "the database server should be running"

    creds = ["--os-auth-url", state["url"], "--os-username", "admin", "--os-project-name", "admin"]
    monkeypatch.setenv("OS_PASSWORD", PASSWORD)
    # A coarse search (one bisection after the bracket) keeps the test short; N is bounded by
    # the target's CPU (found_search). A low start keeps the first probe stable on a busy machine.
    cap = run_redline(
        "capacity", "--scenario", "keystone.validate", *creds, "--protocol", "quick",
        "--start", "20", "--resolution", "50%", "--cpus", GEN, "--results", str(tmp_path), "--json", timeout=300,
    )  # fmt: skip
    out, doc = found_search(cap, cores=len(TARGET_CPUS or CPUS))
    assert Path(out["report"]).is_file()
    assert doc["target"]["lab"]["database"] == database
    print(f"{database} ({'tmpfs' if tmpfs else 'disk'}): validate N = {out['outcome']['n']:g}/s\n{probe_table(doc)}")

    down = run_redline("lab", "keystone", "down", "--state-dir", str(sdir))
    assert down.returncode == 0 and str(db_pid) in down.stdout, down.stderr
    for pid in (state["pid"], *state["extra_pids"]):
        assert not group_members(pid) and not alive(pid)
    assert _lab_processes(lab_root) == []
    assert not os.path.ismount(sdir / "db")
    print(f"{database}: up + capacity + down in {time.monotonic() - t0:.0f} s")


@pytest.mark.slow
def test_database_that_cannot_start_says_why(lab_root):
    """A real start failure (a setting the server rejects): its log's error line, no process left."""
    sdir = str(lab_root / "keystone")
    pg = run_redline("lab", "keystone", "up", "--database", "postgresql", "--cache", "none",
                     "--db-set", "no_such_setting=1", "--state-dir", sdir, timeout=120)  # fmt: skip
    assert "PostgreSQL exited at start" in (line := assert_one_line_error(pg))
    assert 'unrecognized configuration parameter "no_such_setting"' in line
    maria = run_redline("lab", "keystone", "up", "--database", "mariadb", "--cache", "none", "--db-tmpfs",
                        "--db-set", "no_such_setting=1", "--state-dir", sdir, timeout=120)  # fmt: skip
    assert "MariaDB exited at start" in (line := assert_one_line_error(maria))
    assert "unknown variable 'no_such_setting=1'" in line
    assert _lab_processes(lab_root) == []
    assert not os.path.ismount(Path(sdir) / "db")


@pytest.mark.slow
def test_database_options_one_line(lab_root, monkeypatch):
    sdir = str(lab_root / "keystone")
    for args, expected in [
        (["--database", "oracle"], "--database must be one of sqlite, postgresql, mariadb"),
        (["--database", "postgresql", "--db-set", "fsync"], "--db-set wants NAME=VALUE"),
        (["--database", "sqlite", "--db-set", "a=b"], "--db-set applies to postgresql and mariadb"),
    ]:
        assert expected in assert_one_line_error(run_redline("lab", "keystone", "up", *args, "--state-dir", sdir))
    # Another PostgreSQL build (or none): REDLINE_PG_BINDIR points at a directory without it.
    monkeypatch.setenv("REDLINE_PG_BINDIR", str(lab_root / "no-postgres"))
    missing = run_redline("lab", "keystone", "up", "--database", "postgresql", "--cache", "none", "--state-dir", sdir)
    assert "PostgreSQL is not installed (apt-get install postgresql)" in assert_one_line_error(missing)
    assert _lab_processes(lab_root) == []


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("mount") is None, reason="no mount(8)")
def test_sqlite_on_tmpfs_comes_and_goes(lab_root):
    """SQLite on a tmpfs: Keystone's file is on the mount while up; `down` unmounts it."""
    sdir = lab_root / "keystone"
    up = run_redline(
        "lab", "keystone", "up", "--cache", "none", "--db-tmpfs", "--state-dir", str(sdir), "--json", timeout=240
    )
    assert up.returncode == 0, up.stderr
    assert os.path.ismount(sdir / "db") and (sdir / "db" / "keystone.db").stat().st_size > 0
    assert run_redline("lab", "keystone", "down", "--state-dir", str(sdir)).returncode == 0
    assert not os.path.ismount(sdir / "db") and _lab_processes(lab_root) == []


def test_failure_line_is_the_error_not_the_epilogue():
    pg = "LOG:  starting PostgreSQL 15\nFATAL:  could not map anonymous shared memory\nLOG:  database system is shut down\n"
    assert _last_line(pg) == "FATAL:  could not map anonymous shared memory"
    maria = "[Note] Starting\n[ERROR] mariadbd: unknown variable 'x=1'\n[ERROR] Aborting\n"
    assert _last_line(maria) == "[ERROR] mariadbd: unknown variable 'x=1'"
    assert _last_line("only a note\n\n") == "only a note"
