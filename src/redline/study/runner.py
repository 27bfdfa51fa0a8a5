"""Running a study: for each cell, bring its lab up, run its job, bring the lab down, record.

Every step is the `redline` command a user would type, run as a child process: a cell that
crashes cannot take the study with it, and each cell's record lists the command lines it
ran (secrets go by environment: REDLINE_LAB_PASSWORD to the lab, OS_PASSWORD to the job).
`study.json` is rewritten (whole or not at all) at every change of a cell, so a study
killed at any point resumes: done and failed cells are kept, a cell found `running` or
`interrupted` is run again (its earlier attempt's folder kept beside), and a lab a killed
cell left up is brought down first.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from redline import interrupts
from redline.atomic import write_text
from redline.errors import UserError
from redline.model.codec import SchemaError, from_json, to_json
from redline.model.study import CellPlan, CellRecord, StudyState
from redline.store.layout import STUDY_CELLS as CELLS
from redline.store.layout import STUDY_JSON as STATE_FILE
from redline.store.layout import STUDY_YAML as SPEC_COPY
from redline.study.spec_file import CommandOf, StudySpec, argv_of, lab_command

JOB_STOP_GRACE_S = 120.0  # a job given SIGINT/SIGTERM writes what it measured, then exits
LAB_TIMEOUT_S = 1800.0  # the first Keystone lab installs Keystone; the hypervisor lab builds an image
# The job's exit codes that still leave a complete result to read (1: no request
# succeeded; 4/5: no stable rate / inconclusive; 99: a threshold broken).
RESULT_CODES = (0, 1, 4, 5, 99)
INTERRUPTED_CODES = (130, 143)
CHILD_COLUMNS = "200"  # the children's rich output, in the logs: one line per line, not wrapped at 80


class StudyInterrupted(Exception):
    """Ctrl-C or SIGTERM during a cell: recorded, the lab brought down, the study stopped."""


@dataclass(frozen=True)
class Event:
    """What the runner tells the terminal: a cell starting or ending, a child's last line."""

    kind: str  # start | line | end | skip | again
    cell: CellPlan
    index: int  # 1-based among all cells
    total: int
    text: str = ""
    eta_s: float | None = None


def study_folder(results: Path, name: str) -> Path:
    return results / name


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _die_with_parent() -> None:
    # A study killed outright (SIGKILL, a crash) must not leave its job running unobserved.
    with contextlib.suppress(OSError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class Study:
    """One study folder: its state, and the loop over its cells."""

    def __init__(self, spec: StudySpec, folder: Path, command_of: CommandOf, source_text: str, labs_root: Path) -> None:
        """`labs_root`: where the cells' labs keep their state, one directory per target kind,
        reused from cell to cell (every `up` starts afresh, but the hypervisor lab's image
        cache survives). Never inside the study folder: it holds keys and passwords."""
        self.spec, self.folder, self.command_of, self.labs_root = spec, folder, command_of, labs_root
        self.password = "study-" + secrets.token_hex(12)  # lives in this process only
        self.state = self._open(source_text)

    # -- the state file --

    def _open(self, source_text: str) -> StudyState:
        path = self.folder / STATE_FILE
        if path.is_file():
            try:
                old = from_json(StudyState, json.loads(path.read_text()))
            except (OSError, ValueError, SchemaError) as exc:
                raise UserError(f"{path} cannot be read ({exc}); move it away to start the study afresh") from None
            if old.plan_digest != self.spec.digest():
                raise UserError(
                    f"{self.folder} holds another study (other cells than {self.spec.file} makes now): "
                    "give another --results folder, or restore the file it was made from"
                )
            return replace(old, resumed=(*old.resumed, _now()))
        try:
            (self.folder / CELLS).mkdir(parents=True, exist_ok=True)
            write_text(self.folder / SPEC_COPY, source_text)
        except OSError as exc:
            raise UserError(f"cannot create the study folder {self.folder}: {exc.strerror or exc}") from None
        state = StudyState(
            name=self.spec.name,
            file=str(Path(self.spec.file).resolve()),
            plan_digest=self.spec.digest(),
            cells=self.spec.cells,
            records=tuple(CellRecord(id=c.id) for c in self.spec.cells),
            started_utc=_now(),
        )
        self._save(state)
        return state

    def _save(self, state: StudyState) -> None:
        write_text(self.folder / STATE_FILE, json.dumps(to_json(state), indent=2) + "\n")

    def _put(self, record: CellRecord) -> None:
        records = tuple(record if r.id == record.id else r for r in self.state.records)
        self.state = replace(self.state, records=records)
        self._save(self.state)

    # -- the loop --

    def run(self, on_event: Callable[[Event], None]) -> StudyState:
        total = len(self.state.cells)
        for index, cell in enumerate(self.state.cells, start=1):
            rec = self.state.record(cell.id)
            if rec.status in ("done", "failed"):
                on_event(Event("skip", cell, index, total, f"{rec.status} before"))
                continue
            if rec.status in ("running", "interrupted"):
                on_event(
                    Event("again", cell, index, total, f"attempt {rec.attempts} was {rec.status}: running it again")
                )
            on_event(Event("start", cell, index, total, eta_s=self._eta()))
            rec = self._run_cell(cell, rec, _liner(on_event, cell, index, total))
            on_event(Event("end", cell, index, total, rec.reason or rec.status, eta_s=self._eta()))
        return self.state

    def _eta(self) -> float | None:
        took = [r.duration_s for r in self.state.records if r.status in ("done", "failed") and r.duration_s]
        left = sum(1 for r in self.state.records if r.status not in ("done", "failed"))
        return sum(took) / len(took) * left if took and left else None

    def _run_cell(self, cell: CellPlan, rec: CellRecord, on_line: Callable[[str], None]) -> CellRecord:
        if rec.lab_state:
            self._lab_down(cell, Path(rec.lab_state), on_line)  # left up by a killed attempt
        attempt = rec.attempts + 1
        cell_dir = self.folder / CELLS / cell.id / f"attempt-{attempt}"
        cell_dir.mkdir(parents=True, exist_ok=True)
        lab_state = self.labs_root / cell.target if cell.target != "url" else None
        if lab_state is not None:
            lab_state.mkdir(parents=True, exist_ok=True)
        t0 = time.monotonic()
        rec = replace(
            rec, status="running", attempts=attempt, reason=None, run_dir=None, started_utc=_now(),
            duration_s=None, exit_code=None, commands=(), lab_state=str(lab_state) if lab_state else None,
        )  # fmt: skip
        self._put(rec)
        commands: list[tuple[str, ...]] = []
        try:
            url = None
            if lab_state is not None:
                up = self._lab_up_argv(cell, lab_state)
                commands.append(tuple(up))
                self._put(replace(rec, commands=tuple(commands)))  # what runs is in study.json as it runs
                on_line(f"lab {cell.target} up")
                code, out, last = self._child(up, cell_dir / "lab.log", on_line, self._lab_env(), LAB_TIMEOUT_S)
                if code in INTERRUPTED_CODES:
                    raise StudyInterrupted
                if code != 0:
                    return self._end(rec, t0, commands, "failed", f"lab {cell.target} up failed: {last}", code)
                url = _lab_url(out)
            job = self._job_argv(cell, cell_dir, url, lab_state)
            commands.append(tuple(job))
            self._put(replace(rec, commands=tuple(commands)))
            on_line(f"redline {cell.command}")
            code, out, last = self._child(job, cell_dir / "job.log", on_line, self._job_env(cell), None)
            if code in INTERRUPTED_CODES:
                run_dir = _run_dir(out, cell_dir)
                rec = replace(rec, run_dir=self._rel(run_dir))
                return self._end(rec, t0, commands, "interrupted", f"interrupted ({last})", code, stop=True)
            run_dir = _run_dir(out, cell_dir)
            if code in RESULT_CODES and run_dir is not None:
                rec = replace(rec, run_dir=self._rel(run_dir))
                return self._end(rec, t0, commands, "done", None, code)
            return self._end(rec, t0, commands, "failed", f"redline {cell.command} failed ({code}): {last}", code)
        except (KeyboardInterrupt, StudyInterrupted):
            if self.state.record(cell.id).status == "running":  # not yet recorded by _end
                self._end(rec, t0, commands, "interrupted", "interrupted before the job ended", None)
            raise StudyInterrupted from None
        finally:
            if lab_state is not None:
                self._lab_down(cell, lab_state, on_line)
                self._put(replace(self.state.record(cell.id), lab_state=None))

    def _end(
        self,
        rec: CellRecord,
        t0: float,
        commands: list[tuple[str, ...]],
        status: str,
        reason: str | None,
        code: int | None,
        stop: bool = False,
    ) -> CellRecord:
        rec = replace(
            rec, status=status, reason=reason, exit_code=code, duration_s=round(time.monotonic() - t0, 1),
            commands=tuple(commands),
        )  # fmt: skip
        self._put(rec)
        if stop:
            raise StudyInterrupted
        return rec

    def _rel(self, path: Path | None) -> str | None:
        if path is None:
            return None
        try:
            return str(path.resolve().relative_to(self.folder.resolve()))
        except ValueError:
            return str(path)

    # -- command lines --

    def _redline(self) -> list[str]:
        return [sys.executable, "-m", "redline"]

    def _lab_up_argv(self, cell: CellPlan, lab_state: Path) -> list[str]:
        words = lab_command(cell.target)
        assert words is not None
        return [
            *self._redline(),
            *words,
            *argv_of(cell.lab, self.command_of(words)),
            "--state-dir",
            str(lab_state),
            "--json",
        ]

    def _job_argv(self, cell: CellPlan, cell_dir: Path, url: str | None, lab_state: Path | None) -> list[str]:
        argv = [*self._redline(), cell.command, *argv_of(cell.options, self.command_of((cell.command,)))]
        if cell.target in ("keystone", "identity") and url:
            argv += ["--os-auth-url", url]
            if not {"os-username", "os-cloud", "os-auth-type"} & set(cell.options):
                argv += ["--os-username", "admin", "--os-project-name", "admin"]
        elif cell.target == "hypervisor" and lab_state is not None:
            argv += ["--driver", "libvirt", "--state-dir", str(lab_state)]
        return [*argv, "--results", str(cell_dir), "--json"]

    def _lab_env(self) -> dict[str, str]:
        return os.environ | {"REDLINE_LAB_PASSWORD": self.password, "COLUMNS": CHILD_COLUMNS}

    def _job_env(self, cell: CellPlan) -> dict[str, str]:
        env = os.environ | {"COLUMNS": CHILD_COLUMNS}
        if cell.target in ("keystone", "identity"):
            env["OS_PASSWORD"] = self.password  # the lab's admin and bench users'
        env.pop("REDLINE_LAB_PASSWORD", None)
        return env

    def _lab_down(self, cell: CellPlan, lab_state: Path, on_line: Callable[[str], None]) -> None:
        words = lab_command(cell.target)
        if words is None or not lab_state.exists():
            return
        on_line(f"lab {cell.target} down")
        down = [*self._redline(), *words[:-1], "down", "--state-dir", str(lab_state)]
        try:
            subprocess.run(down, capture_output=True, timeout=300, env=self._lab_env(), start_new_session=True)
        except subprocess.TimeoutExpired:
            on_line(f"lab {cell.target} down took longer than 300 s (state: {lab_state})")

    # -- children --

    def _child(
        self,
        argv: Sequence[str],
        log: Path,
        on_line: Callable[[str], None],
        env: dict[str, str],
        timeout: float | None,
    ) -> tuple[int, str, str]:
        """Run a command, its stderr to `log` line by line (and to `on_line`); (exit code,
        stdout, its last stderr line). Ctrl-C / SIGTERM reach it from here, once."""
        with open(log, "w", encoding="utf-8") as fh:
            proc = subprocess.Popen(
                list(argv), stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                env=env, text=True, errors="replace", start_new_session=True, preexec_fn=_die_with_parent,
            )  # fmt: skip
            last = [""]
            reader = threading.Thread(target=self._pump, args=(proc.stderr, fh, on_line, last), daemon=True)
            reader.start()
            out_chunks: list[str] = []
            drain = threading.Thread(target=lambda: out_chunks.append(proc.stdout.read() if proc.stdout else ""))
            drain.start()
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.terminate()
                proc.wait(timeout=JOB_STOP_GRACE_S)
                last[0] = f"did not end within {timeout:.0f} s: stopped"
            except KeyboardInterrupt:
                # The child is in its own session (a terminal's Ctrl-C reaches the study
                # only): it gets the study's signal once, and its time to save.
                code, _word = interrupts.exit_status()
                proc.send_signal(code - 128)
                try:
                    proc.wait(timeout=JOB_STOP_GRACE_S)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
                reader.join(timeout=5)
                drain.join(timeout=5)
                return code, "".join(out_chunks), last[0] or "stopped"
            reader.join(timeout=5)
            drain.join(timeout=5)
        return proc.returncode, "".join(out_chunks), last[0]

    def _pump(self, stream: IO[str] | None, fh: IO[str], on_line: Callable[[str], None], last: list[str]) -> None:
        if stream is None:
            return
        for line in stream:
            line = line.rstrip("\n").replace(self.password, "<redacted>")
            fh.write(line + "\n")
            fh.flush()
            if line.strip():
                # A command's own verdict ("redline: error: …") is the reason to keep, not
                # whatever it printed after it.
                if line.startswith("redline:") or not last[0].startswith("redline:"):
                    last[0] = line.strip()
                on_line(line.strip())


def _liner(on_event: Callable[[Event], None], cell: CellPlan, index: int, total: int) -> Callable[[str], None]:
    return lambda line: on_event(Event("line", cell, index, total, line))


def _lab_url(stdout: str) -> str | None:
    try:
        doc = json.loads(stdout[stdout.index("{") :])
    except ValueError:
        return None
    url = doc.get("url") if isinstance(doc, dict) else None
    return str(url) if url else None


def _run_dir(stdout: str, cell_dir: Path) -> Path | None:
    """The run folder the job made: from its --json output, else the one folder it left."""
    try:
        doc: Any = json.loads(stdout[stdout.index("{") :])
        if isinstance(doc, dict) and doc.get("run_dir"):
            return Path(doc["run_dir"])
    except ValueError:
        pass
    found = [p for p in cell_dir.iterdir() if p.is_dir() and (p / "run.json").is_file()]
    return found[0] if len(found) == 1 else None
