"""Files that are either whole or absent: a run interrupted mid-write never leaves half a
report or half a run.json for a later reader to trip on."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np


def write_text(path: Path, text: str) -> Path:
    """Write `text` under a temporary name in the same folder, then rename it into place."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
    return path


def write_npz(path: Path, **arrays: np.ndarray) -> Path:
    """An uncompressed .npz (fast to write and read), renamed into place once complete."""
    return _write_npz(path, np.savez, arrays)


def write_npz_compressed(path: Path, **arrays: np.ndarray) -> Path:
    """A deflated .npz, renamed into place once complete."""
    return _write_npz(path, np.savez_compressed, arrays)


def _write_npz(path: Path, save: Any, arrays: dict[str, np.ndarray]) -> Path:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as fh:
        # numpy's default, spelt out so that no entry of **arrays can be taken for it
        save(fh, allow_pickle=True, **arrays)
    os.replace(tmp, path)
    return path
