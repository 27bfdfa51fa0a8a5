"""Files that are either whole or absent: a run interrupted mid-write never leaves half a
report or half a run.json for a later reader to trip on."""

from __future__ import annotations

import os
from pathlib import Path


def write_text(path: Path, text: str) -> Path:
    """Write `text` under a temporary name in the same folder, then rename it into place."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
    return path
