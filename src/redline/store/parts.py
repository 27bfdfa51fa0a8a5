"""A run's rows written to its folder while it runs: `samples/<worker>-<seq>.npz`.

Each part is an ordinary samples file (the same encoding as samples.npz, ~5 bytes per
request) holding one worker's consecutive rows. A part is written when a worker has
handed over PART_ROWS rows or PART_S seconds have passed since its last part, so that a
run killed outright (kill -9, power loss) keeps every part but the last few seconds', and
the writer holds at most a part per worker. Parts are written by one thread, atomically
(written aside, then renamed), so the workers' hand-overs never wait for compression.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from redline.errors import UserError
from redline.model.samples import SampleClock, Samples
from redline.store import npz

PART_ROWS = 131_072
PART_S = 5.0
_STOP = None


class SampleParts:
    """The run folder's sample sink (load/chunks.py:SampleSink)."""

    def __init__(self, directory: Path, part_rows: int = PART_ROWS, part_s: float = PART_S) -> None:
        self.directory = directory
        self.part_rows = part_rows
        self.part_s = part_s
        self.clock: SampleClock | None = None
        self.steps: tuple[tuple[str, ...], tuple[int, ...]] = ((), ())
        self.queue: queue.Queue[tuple[int, dict[str, np.ndarray]] | None] = queue.Queue()
        self.thread: threading.Thread | None = None
        self.error: BaseException | None = None
        self.parts_written = 0

    def begin(self, clock: SampleClock, step_names: tuple[str, ...], step_prev: tuple[int, ...]) -> None:
        self.clock, self.steps = clock, (step_names, step_prev)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.thread = threading.Thread(target=self._write_loop, name="redline-sample-parts", daemon=True)
        self.thread.start()

    def add(self, worker: int, columns: dict[str, np.ndarray]) -> None:
        if self.error is not None:
            raise UserError(f"cannot write samples to {self.directory}: {self.error}")
        self.queue.put((worker, columns))

    def close(self) -> None:
        """Write what is buffered and wait for the writer; raises what it met."""
        if self.thread is None:
            return
        self.queue.put(_STOP)
        self.thread.join()
        self.thread = None
        if self.error is not None:
            raise UserError(f"cannot write samples to {self.directory}: {self.error}")

    def _write_loop(self) -> None:
        buffers: dict[int, list[dict[str, np.ndarray]]] = {}
        rows: dict[int, int] = {}
        last: dict[int, float] = {}
        seq: dict[int, int] = {}
        try:
            while True:
                try:
                    item = self.queue.get(timeout=1.0)
                except queue.Empty:
                    item = (-1, {})
                if item is _STOP:
                    for w in list(buffers):
                        self._write(w, buffers.pop(w), seq)
                    return
                worker, cols = item
                now = time.monotonic()
                if worker >= 0:
                    buffers.setdefault(worker, []).append(cols)
                    rows[worker] = rows.get(worker, 0) + len(cols["intended_ns"])
                    last.setdefault(worker, now)
                for w in list(buffers):
                    if rows[w] >= self.part_rows or now - last[w] >= self.part_s:
                        self._write(w, buffers.pop(w), seq)
                        rows[w], last[w] = 0, now
        except Exception as exc:  # noqa: BLE001 — raised in the caller's thread by add/close
            self.error = exc

    def _write(self, worker: int, buffer: list[dict[str, np.ndarray]], seq: dict[int, int]) -> None:
        assert self.clock is not None
        k = seq.get(worker, 0)
        seq[worker] = k + 1
        npz.write_samples(self.directory / part_name(worker, k), Samples.of_parts(buffer, self.clock, *self.steps))
        self.parts_written += 1


def part_name(worker: int, seq: int) -> str:
    return f"w{worker:03d}-{seq:06d}.npz"


def part_worker(path: Path) -> int:
    return int(path.name[1:].split("-", 1)[0])


def part_paths(directory: Path) -> list[Path]:
    """The parts in a fixed order (worker, then sequence); never a half-written one."""
    return sorted(p for p in directory.glob("w*-*.npz") if p.is_file())


def part_rows(path: Path) -> int:
    """How many rows a part holds, reading only its smallest column."""
    with np.load(path) as data:
        return int(data["outcome"].shape[0])


def read_parts(directory: Path) -> Iterator[Samples]:
    for path in part_paths(directory):
        yield npz.read_samples(path)
