"""What every run.json starts with: the schema, the tool, the command, the host, the target."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from redline.model.codec import JsonRecord

# Bumped when a reader of the previous version would misread a newer run.json.
# Additions (new keys) do not bump it: readers ignore keys they do not know.
SCHEMA_VERSION = 1


@dataclass(frozen=True)
class Tool(JsonRecord):
    name: str = "redline"
    version: str = ""


@dataclass(frozen=True, kw_only=True)
class RunDocument(JsonRecord):
    """The header shared by every command's run.json. `target`, `plan` and `host` are
    descriptions (free-form, JSON-able): their shape is the target's or the command's own."""

    schema_version: int = SCHEMA_VERSION
    tool: Tool = field(default_factory=Tool)
    command: str
    command_line: str = ""
    started_at: str = ""
    status: str = "running"  # running, complete, interrupted, abandoned, incomplete, failed
    host: dict[str, Any] = field(default_factory=dict)
    target: dict[str, Any] = field(default_factory=dict)
    plan: dict[str, Any] = field(default_factory=dict)
    error: str | None = None  # why a failed run failed
    files: dict[str, str] = field(default_factory=dict)  # what the folder holds, by role
