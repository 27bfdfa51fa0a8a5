"""The jinja2 environment every report page is rendered with, and what pages embed.

All pages extend `templates/base.html.j2` (one skeleton, one stylesheet). Autoescape is
on for every template: target descriptions, error messages and command lines come from
outside and must never become markup.
"""

from __future__ import annotations

import base64
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, Undefined

TEMPLATES = Path(__file__).parent / "templates"
MISSING = "—"


def num(value: Any, spec: str = ".2f") -> str:
    """`value` in format `spec`; a figure not measured (None, NaN, inf) is a dash."""
    if value is None or isinstance(value, Undefined) or (isinstance(value, float) and not math.isfinite(value)):
        return MISSING
    return format(value, spec)


def environment(undefined: type[Undefined] = StrictUndefined) -> Environment:
    """A fresh environment on `templates/` (callers may add filters without touching others').

    StrictUndefined by default so a misspelt name fails the render instead of leaving a
    blank on the page; the run report passes ChainableUndefined for partial run.json files.
    """
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=True,
        undefined=undefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["num"] = num
    return env


def render(name: str, **context: Any) -> str:
    return environment().get_template(name).render(**context)


@dataclass(frozen=True)
class Embedded:
    """A PNG inlined as a data: URI, so the page stays one self-contained file."""

    name: str
    uri: str

    @classmethod
    def png(cls, path: Path) -> Embedded:
        return cls(path.name, "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode())
