"""Run folders: `results/<UTC time>-<name>/` holding run.json and the arrays beside it.

run.json is written when a run starts (status "running") and rewritten as it goes and when
it ends, atomically each time, so a crash or a Ctrl-C never leaves a folder without a
readable description of what was being measured. It is read back into the typed result of
the command that wrote it, after its schema version is checked.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Union

import numpy as np

from redline import __version__
from redline.atomic import write_text
from redline.errors import UserError
from redline.model.capacity import CapacityResult, ProbeResult
from redline.model.codec import SchemaError, from_json
from redline.model.document import SCHEMA_VERSION, Tool
from redline.model.histograms import RunHistograms
from redline.model.run import RunResult
from redline.model.samples import Samples
from redline.model.series import MonitorSeries
from redline.model.storm import ScaleResult, StormRunResult
from redline.redact import redacted_command_line
from redline.store import layout, npz, parts
from redline.store.host_facts import host_facts
from redline.storm.model import StormResult

AnyResult = Union[RunResult, CapacityResult, StormRunResult, ScaleResult]
RESULT_TYPES: dict[str, type[AnyResult]] = {
    "run": RunResult,
    "capacity": CapacityResult,
    "storm": StormRunResult,
    "scale": ScaleResult,
}


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-")[:60] or "run"


@dataclass(frozen=True)
class Loaded:
    """A result read back, with the parts of run.json that could not be read (a probe
    record damaged by hand, say): a report shows what it can and lists the rest."""

    result: AnyResult
    problems: tuple[str, ...] = ()


@dataclass(frozen=True)
class RunFolder:
    path: Path

    @classmethod
    def create(cls, results_dir: Path, name: str) -> RunFolder:
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        base = results_dir / f"{stamp}-{_slug(name)}"
        path, k = base, 1
        try:
            results_dir.mkdir(parents=True, exist_ok=True)
            while True:
                try:
                    path.mkdir()
                    break
                except FileExistsError:
                    k += 1
                    path = base.with_name(f"{base.name}-{k}")
        except OSError as exc:
            raise UserError(f"cannot create a run folder under {results_dir}: {exc.strerror}") from None
        return cls(path)

    @classmethod
    def open(cls, path: Path) -> RunFolder:
        path = Path(path)
        if not path.is_dir():
            raise UserError(f"{path} is not a run folder (not a directory)")
        if not (path / layout.RUN_JSON).is_file():
            raise UserError(f"{path} is not a run folder (no {layout.RUN_JSON})")
        return cls(path)

    # -- run.json --

    @staticmethod
    def header(target: dict[str, Any], plan: dict[str, Any]) -> dict[str, Any]:
        """The fields every result starts with (keyword arguments of any result type)."""
        return {
            "schema_version": SCHEMA_VERSION,
            "tool": Tool("redline", __version__),
            "command_line": redacted_command_line(sys.argv),
            "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "status": "running",
            "host": host_facts(),
            "target": target,
            "plan": plan,
        }

    def write(self, result: AnyResult) -> Path:
        text = json.dumps(result.to_json(), indent=2, default=_jsonable) + "\n"
        return write_text(self.path / layout.RUN_JSON, text)

    def read_document(self) -> dict[str, Any]:
        """run.json as JSON, its schema version checked."""
        doc_path = self.path / layout.RUN_JSON
        try:
            doc = json.loads(doc_path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise UserError(f"cannot read {doc_path}: {exc}") from None
        if not isinstance(doc, dict):
            raise UserError(f"{doc_path} does not hold a run description (not a JSON object)")
        check_schema(doc, doc_path)
        return doc

    def load(self) -> Loaded:
        """The typed result; UserError when run.json is unreadable, newer, or of no command."""
        doc = self.read_document()
        command = doc.get("command")
        cls = RESULT_TYPES.get(command) if isinstance(command, str) else None
        if cls is None:
            raise UserError(f"{self.path / layout.RUN_JSON} is not a result of a command redline knows ({command!r})")
        problems: list[str] = []
        if cls is CapacityResult:
            doc = _readable_probes(doc, problems)
        try:
            return Loaded(from_json(cls, doc), tuple(problems))
        except SchemaError as exc:
            raise UserError(f"{self.path / layout.RUN_JSON} is damaged: {exc}") from None

    def read(self) -> AnyResult:
        return self.load().result

    # -- the arrays --

    def file(self, name: str) -> Path:
        return self.path / name

    def write_samples(self, samples: Samples, rel: str = "") -> Path:
        d = self._dir(rel)
        return npz.write_samples(d / layout.SAMPLES, samples)

    def read_samples(self, rel: str = "") -> Samples:
        """Every row, from samples.npz or (a run that wrote as it went) its parts."""
        whole = self.path / rel / layout.SAMPLES
        if whole.is_file() or not self._parts(rel):
            return npz.read_samples(whole)
        return Samples.concat(list(parts.read_parts(self.path / rel / layout.SAMPLE_PARTS)))

    def sample_parts(self, rel: str = "") -> Iterator[Samples]:
        """The rows part by part (one part for a folder with samples.npz): bounded memory."""
        if self._parts(rel):
            yield from parts.read_parts(self.path / rel / layout.SAMPLE_PARTS)
        else:
            yield npz.read_samples(self.path / rel / layout.SAMPLES)

    def read_samples_thinned(self, max_rows: int, rel: str = "") -> tuple[Samples, int]:
        """Every k-th row of each worker (k the second value, 1 when all fit), at most about `max_rows`,
        read part by part: what a chart of a run of any length can hold."""
        if not self._parts(rel):
            return self.read_samples(rel), 1
        directory = self.path / rel / layout.SAMPLE_PARTS
        total = sum(parts.part_rows(p) for p in parts.part_paths(directory))
        stride = max(1, -(-total // max_rows))
        if stride == 1:
            return self.read_samples(rel), 1
        kept: list[Samples] = []
        seen: dict[int, int] = {}
        for path, part in zip(parts.part_paths(directory), parts.read_parts(directory)):
            # Every stride-th row of each worker, counted on across its parts: each worker's
            # rows are evenly spread over the run, so a thinned second keeps 1/stride of it.
            worker = parts.part_worker(path)
            n = seen.get(worker, 0)
            kept.append(part.select(np.arange((-n) % stride, len(part), stride)))
            seen[worker] = n + len(part)
        return Samples.concat(kept), stride

    def sample_writer(self, rel: str = "") -> parts.SampleParts:
        """A sink that writes the rows as parts while the run goes."""
        return parts.SampleParts(self._dir(rel) / layout.SAMPLE_PARTS)

    def has_samples(self, rel: str = "") -> bool:
        return (self.path / rel / layout.SAMPLES).is_file() or self._parts(rel)

    def samples_name(self, rel: str = "") -> str:
        """How the folder's rows are named in messages: samples.npz, or samples/ for parts."""
        name = f"{layout.SAMPLE_PARTS}/" if self._parts(rel) else layout.SAMPLES
        return f"{rel}/{name}" if rel else name

    def _parts(self, rel: str) -> bool:
        return bool(parts.part_paths(self.path / rel / layout.SAMPLE_PARTS))

    def write_histograms(self, histograms: RunHistograms, rel: str = "") -> Path:
        return write_text(self._dir(rel) / layout.HISTOGRAMS, json.dumps(histograms.to_json(), indent=1) + "\n")

    def read_histograms(self, rel: str = "") -> RunHistograms:
        return RunHistograms.from_json(json.loads((self.path / rel / layout.HISTOGRAMS).read_text()))

    def write_timelines(self, timelines: list[dict[str, np.ndarray]], rel: str = "") -> Path:
        return npz.write_timelines(self._dir(rel) / layout.TIMELINE, timelines)

    def read_timelines(self, rel: str = "") -> list[dict[str, np.ndarray]]:
        return npz.read_timelines(self.path / rel / layout.TIMELINE)

    def write_monitor(self, series: MonitorSeries) -> Path:
        return npz.write_monitor(self.path / layout.MONITOR, series)

    def read_monitor(self) -> MonitorSeries:
        return npz.read_monitor(self.path / layout.MONITOR)

    def has_monitor(self) -> bool:
        return (self.path / layout.MONITOR).is_file()

    def write_storm_marks(self, result: StormResult) -> Path:
        return npz.write_storm_marks(self.path / layout.PHASES, result)

    def read_storm_marks(self) -> StormResult:
        return npz.read_storm_marks(self.path / layout.PHASES)

    @property
    def console_dir(self) -> Path:
        return self.path.resolve() / layout.CONSOLE_DIR

    def _dir(self, rel: str) -> Path:
        d = self.path / rel if rel else self.path
        d.mkdir(parents=True, exist_ok=True)
        return d


def check_schema(doc: dict[str, Any], where: Path | str) -> None:
    """A run.json of a newer schema is refused (it may mean something this version would
    misread); one without a schema is not a redline result."""
    version = doc.get("schema_version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise UserError(f"{where} has no schema_version: it is not a redline run.json")
    if version > SCHEMA_VERSION:
        raise UserError(
            f"{where} was written by a newer redline (schema {version}; this redline {__version__} reads"
            f" schema {SCHEMA_VERSION}): upgrade redline to read it"
        )
    if version < 1:
        raise UserError(f"{where} has schema_version {version}, which no redline ever wrote")


def _readable_probes(doc: dict[str, Any], problems: list[str]) -> dict[str, Any]:
    """Drop probe records that cannot be read, saying which: the rest of the search stands."""
    probes = doc.get("probes")
    if not isinstance(probes, list):
        return doc
    kept = []
    for i, rec in enumerate(probes):
        try:
            from_json(ProbeResult, rec, f"probes[{i}]")
        except SchemaError as exc:
            problems.append(f"probe record {i} could not be read ({exc})")
            continue
        kept.append(rec)
    return doc | {"probes": kept}


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON-serialisable: {type(value).__name__}")
