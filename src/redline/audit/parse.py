"""Parsers for the config and kernel file formats the checks read. Pure functions of text."""

from __future__ import annotations

import re
from dataclasses import dataclass

# The CPU list syntax belongs to tune/; the checks import it from here with the other formats.
from redline.tune.cpulist import format_cpuset as format_cpuset
from redline.tune.cpulist import parse_cpuset as parse_cpuset


def parse_libvirt_conf(text: str) -> dict[str, str]:
    """libvirtd.conf / qemu.conf: `key = value` lines; strings quoted, lists in [ ]; # comments.

    Lists are returned as their comma-joined, unquoted items.
    """
    out: dict[str, str] = {}
    pending_key: str | None = None
    pending: list[str] = []
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip() if '"' not in raw else _strip_comment(raw).strip()
        if not line:
            continue
        if pending_key is not None:  # inside a multi-line list
            pending.append(line)
            if "]" in line:
                out[pending_key] = _unlist(" ".join(pending))
                pending_key = None
            continue
        if "=" not in line:
            continue
        key, value = (part.strip() for part in line.split("=", 1))
        if value.startswith("[") and "]" not in value:
            pending_key, pending = key, [value]
            continue
        out[key] = _unlist(value) if value.startswith("[") else value.strip('"')
    return out


def _strip_comment(line: str) -> str:
    in_quote = False
    for i, ch in enumerate(line):
        if ch == '"':
            in_quote = not in_quote
        elif ch == "#" and not in_quote:
            return line[:i]
    return line


def _unlist(value: str) -> str:
    return ",".join(item.strip().strip('"') for item in value.strip("[] ").split(",") if item.strip())


def parse_ini(text: str) -> dict[str, dict[str, str]]:
    """oslo.config style INI. Unlike configparser, [DEFAULT] does not leak into other sections,
    which matters because `workers` means different things in [DEFAULT] and [conductor].
    Keys are lower-cased; a repeated key keeps its last value, as oslo.config does."""
    out: dict[str, dict[str, str]] = {}
    section = "DEFAULT"
    last_key: str | None = None
    for raw in text.splitlines():
        stripped = raw.strip()
        if not stripped or stripped[0] in "#;":
            continue
        if stripped.startswith("[") and stripped.endswith("]"):
            section = stripped[1:-1].strip()
            last_key = None
            continue
        if raw[:1].isspace() and last_key is not None:  # continuation line
            out[section][last_key] += "\n" + stripped
            continue
        if "=" not in stripped:
            continue
        key, value = (part.strip() for part in stripped.split("=", 1))
        last_key = key.lower()
        out.setdefault(section, {})[last_key] = value
    return out


def bracketed(value: str) -> str | None:
    """The selected word of a sysfs choice file: "always [madvise] never" -> "madvise"."""
    m = re.search(r"\[([^\]]+)\]", value)
    return m.group(1) if m else (value.strip() or None)


@dataclass(frozen=True)
class IrqLine:
    irq: str
    counts: tuple[int, ...]
    name: str

    @property
    def is_device(self) -> bool:
        """Numbered IRQs belong to devices; named rows (LOC, RES, CAL...) are per-CPU events."""
        return self.irq.isdigit()


def parse_interrupts(text: str) -> list[IrqLine]:
    lines = text.splitlines()
    if not lines:
        return []
    ncpu = len(lines[0].split())
    out: list[IrqLine] = []
    for line in lines[1:]:
        if ":" not in line:
            continue
        irq, rest = line.split(":", 1)
        fields = rest.split()
        counts: list[int] = []
        for f in fields[:ncpu]:
            if not f.isdigit():
                break
            counts.append(int(f))
        name = " ".join(fields[len(counts) :])
        out.append(IrqLine(irq.strip(), tuple(counts), name))
    return out


def wsgi_processes(text: str, kind: str) -> int | None:
    """Worker processes declared in a uWSGI ini, an Apache vhost or a gunicorn config."""
    if kind == "uwsgi":
        ini = parse_ini(text)
        for section in ini.values():
            for key in ("processes", "workers"):
                if key in section and section[key].strip().isdigit():
                    return int(section[key])
        return None
    if kind == "apache":
        m = re.search(r"WSGIDaemonProcess\s+\S+.*?\bprocesses=(\d+)", text)
        if m:
            return int(m.group(1))
        return 1 if "WSGIDaemonProcess" in text else None  # mod_wsgi's default is one process
    if kind == "gunicorn":
        m = re.search(r"^\s*workers\s*=\s*(\d+)", text, re.M)
        return int(m.group(1)) if m else (1 if text.strip() else None)
    raise ValueError(kind)


def parse_version(text: str) -> tuple[int, ...]:
    """'9.0.0-4+deb12u2' -> (9, 0, 0); an epoch prefix ('1:') is dropped."""
    core = text.split(":", 1)[-1]
    m = re.match(r"(\d+(?:\.\d+)*)", core)
    return tuple(int(x) for x in m.group(1).split(".")) if m else ()
