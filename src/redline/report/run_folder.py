"""Run folders: `results/<UTC time>-<name>/` holding run.json and the samples.

run.json is written when a run starts (status "running") and rewritten when it ends,
atomically each time, so that a crash or a Ctrl-C never leaves a folder without a
readable description of what was being measured.
"""

from __future__ import annotations

import json
import re
import sys
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from redline import __version__
from redline.atomic import write_text
from redline.errors import UserError
from redline.load.samples import Samples
from redline.redact import redacted_command_line
from redline.report.host_facts import host_facts

SCHEMA_VERSION = 1
RUN_JSON = "run.json"
SAMPLES = "samples.npz"


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-")[:60] or "run"


@dataclass
class RunFolder:
    path: Path

    @classmethod
    def create(cls, results_dir: Path, name: str) -> "RunFolder":
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
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
    def open(cls, path: Path) -> "RunFolder":
        if not (path / RUN_JSON).is_file():
            raise UserError(f"{path} is not a run folder (no {RUN_JSON})")
        return cls(path)

    def header(self, command: str, target: dict, plan: dict) -> dict[str, Any]:
        return {
            "schema_version": SCHEMA_VERSION,
            "tool": {"name": "redline", "version": __version__},
            "command": command,
            "command_line": redacted_command_line(sys.argv),
            "started_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "status": "running",
            "host": host_facts(),
            "target": target,
            "plan": plan,
        }

    def write_json(self, doc: dict[str, Any], name: str = RUN_JSON) -> Path:
        return write_text(self.path / name, json.dumps(doc, indent=2, sort_keys=False, default=_jsonable) + "\n")

    def read_json(self, name: str = RUN_JSON) -> dict[str, Any]:
        try:
            return json.loads((self.path / name).read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise UserError(f"cannot read {self.path / name}: {exc}") from None

    def save_samples(self, samples: Samples, name: str = SAMPLES) -> Path:
        target = self.path / name
        samples.save(target)
        return target

    def load_samples(self, name: str = SAMPLES) -> Samples:
        return Samples.load(self.path / name)


def _jsonable(value: Any) -> Any:
    import numpy as np

    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON-serialisable: {type(value).__name__}")
