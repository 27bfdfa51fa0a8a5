"""The host changes the audit recommends: plan them (pure), apply them only when asked,
keeping a backup of every file touched under <root>/var/backups/redline/<stamp>/."""

from __future__ import annotations

import json
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from redline.errors import UserError
from redline.model.finding import Change, Finding, Status

SYSCTL_FILE = "/etc/sysctl.d/90-redline.conf"


@dataclass(frozen=True)
class PlannedChange:
    finding_id: str
    change: Change

    def describe(self) -> str:
        c = self.change
        if c.kind == "write":
            extra = f" (and persist {c.persist} in {SYSCTL_FILE})" if c.persist else ""
            return f"echo {c.value} > {c.path}{extra}"
        where = f"[{c.section}] " if c.section else ""
        return f"set {where}{c.key} = {c.value} in {c.path}"


def plan(findings: tuple[Finding, ...] | list[Finding]) -> list[PlannedChange]:
    return [PlannedChange(f.id, c) for f in findings if f.status is Status.FAIL for c in f.changes]


def set_flat_key(text: str, key: str, value: str) -> str:
    """libvirtd.conf / qemu.conf / sysctl.conf: replace the active `key = ...` line or append one."""
    pattern = re.compile(rf"^\s*{re.escape(key)}\s*=.*$", re.M)
    if pattern.search(text):
        return pattern.sub(f"{key} = {value}", text, count=1)
    return (text if text.endswith("\n") or not text else text + "\n") + f"{key} = {value}\n"


def set_ini_key(text: str, section: str, key: str, value: str) -> str:
    """Set key in [section] of an oslo.config INI file, creating the section if needed."""
    lines = text.splitlines()
    start = None
    for i, line in enumerate(lines):
        if line.strip() == f"[{section}]":
            start = i
            break
    if start is None:
        return (text.rstrip("\n") + "\n\n" if text.strip() else "") + f"[{section}]\n{key} = {value}\n"
    end = next((j for j in range(start + 1, len(lines)) if lines[j].strip().startswith("[")), len(lines))
    for j in range(start + 1, end):
        if re.match(rf"^\s*{re.escape(key)}\s*=", lines[j], re.I):
            lines[j] = f"{key} = {value}"
            return "\n".join(lines) + "\n"
    insert_at = end
    while insert_at > start + 1 and not lines[insert_at - 1].strip():
        insert_at -= 1
    lines.insert(insert_at, f"{key} = {value}")
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class Applied:
    description: str
    path: str
    backup: str | None


def apply(changes: list[PlannedChange], root: str | Path = "/", stamp: str | None = None) -> tuple[Path, list[Applied]]:
    """Apply `changes` under `root`. Every file is copied to the backup folder before it is
    written; a manifest.json there lists what changed so a person can undo it."""
    base = Path(root)
    stamp = stamp or time.strftime("%Y%m%dT%H%M%S")
    backup_dir = base / "var/backups/redline" / stamp
    done: list[Applied] = []
    sysctl: dict[str, str] = {}

    def backup(host_path: str) -> str | None:
        real = base / host_path.lstrip("/")
        if not real.exists():
            return None
        dest = backup_dir / host_path.lstrip("/")
        if not dest.exists():  # first copy is the original
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(real, dest)
        return str(dest)

    for pc in changes:
        c = pc.change
        real = base / c.path.lstrip("/")
        try:
            saved = backup(c.path)
            if c.kind == "write":
                real.write_text(c.value + "\n")
                if c.persist:
                    sysctl[c.persist] = c.value
            elif c.kind == "conf":
                old = real.read_text() if real.exists() else ""
                new = (
                    set_ini_key(old, c.section, c.key or "", c.value)
                    if c.section
                    else set_flat_key(old, c.key or "", c.value)
                )
                real.parent.mkdir(parents=True, exist_ok=True)
                real.write_text(new)
            else:
                raise UserError(f"unknown change kind {c.kind}")
        except OSError as exc:
            raise UserError(f"cannot change {c.path}: {exc.strerror}; backups so far are in {backup_dir}") from exc
        done.append(Applied(pc.describe(), c.path, saved))
    if sysctl:
        saved = backup(SYSCTL_FILE)
        real = base / SYSCTL_FILE.lstrip("/")
        text = real.read_text() if real.exists() else "# written by redline tune host --apply\n"
        for k, v in sysctl.items():
            text = set_flat_key(text, k, v)
        real.parent.mkdir(parents=True, exist_ok=True)
        real.write_text(text)
        done.append(Applied(f"persist {', '.join(sysctl)} in {SYSCTL_FILE}", SYSCTL_FILE, saved))
    if done:
        backup_dir.mkdir(parents=True, exist_ok=True)
        (backup_dir / "manifest.json").write_text(
            json.dumps([{"change": a.description, "path": a.path, "backup": a.backup} for a in done], indent=2)
        )
    return backup_dir, done
