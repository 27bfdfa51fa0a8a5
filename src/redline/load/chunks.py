"""What the parent does with the chunks of rows its workers hand over during a run.

Every chunk feeds the run's streaming figures — how well the schedule was kept, and each
worker's HDR histograms of latency and lag over the measurement window — and then goes to
a sink: kept in memory (a capacity probe, whose verdict reads its rows) or written to the
run folder as it comes (`redline run`, whose length is not bounded).
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from redline.analysis import hdr
from redline.load.health import ScheduleKeeping
from redline.model.histograms import RunHistograms
from redline.model.samples import NOT_SET, RequestOutcome, SampleClock, Samples


class SampleSink(Protocol):
    """Where the rows go. `begin` comes once, before the first chunk; `add` gets one
    worker's rows (Samples' columns plus `worker`), ascending in intended time per worker."""

    def begin(self, clock: SampleClock, step_names: tuple[str, ...], step_prev: tuple[int, ...]) -> None: ...

    def add(self, worker: int, columns: dict[str, np.ndarray]) -> None: ...

    def close(self) -> None: ...


class InMemory:
    """The default sink: rows kept until the run ends, then merged in intended order."""

    def __init__(self) -> None:
        self.parts: list[dict[str, np.ndarray]] = []
        self.clock: SampleClock | None = None
        self.steps: tuple[tuple[str, ...], tuple[int, ...]] = ((), ())

    def begin(self, clock: SampleClock, step_names: tuple[str, ...], step_prev: tuple[int, ...]) -> None:
        self.clock, self.steps = clock, (step_names, step_prev)

    def add(self, worker: int, columns: dict[str, np.ndarray]) -> None:
        self.parts.append(columns)

    def close(self) -> None:
        pass

    def samples(self) -> Samples:
        assert self.clock is not None, "no run began"
        return Samples.of_parts(self.parts, self.clock, *self.steps)


class ChunkCollector:
    """Streaming figures of every chunk, then the chunk to the sink."""

    def __init__(self, workers: int, clock: SampleClock, sink: SampleSink) -> None:
        self.start_ns = clock.start_ns
        self.measure_from_ns = clock.measure_from_ns
        self.sink = sink
        self.keeping = ScheduleKeeping()
        self.latency = [hdr.new() for _ in range(workers)]
        self.lag = [hdr.new() for _ in range(workers)]
        self.rows = 0

    def add(self, worker: int, cols: dict[str, np.ndarray]) -> None:
        intended, done, sent = cols["intended_ns"], cols["done_ns"], cols["sent_ns"]
        dispatched = cols.pop("dispatched_ns")
        self.keeping.add(intended, dispatched, sent, done)
        measured = intended >= self.measure_from_ns
        answered = measured & (cols["outcome"] <= RequestOutcome.HTTP) & (done != NOT_SET)
        hdr.record_ns(self.latency[worker], done[answered] - intended[answered])
        on_time = measured & (dispatched != NOT_SET)
        hdr.record_ns(self.lag[worker], dispatched[on_time] - intended[on_time])
        cols["worker"] = np.full(intended.size, worker, dtype=np.int16)
        self.rows += int(intended.size)
        self.sink.add(worker, cols)

    def histograms(self) -> RunHistograms:
        return RunHistograms(
            latency_us=tuple(hdr.encode(h) for h in self.latency),
            schedule_lag_us=tuple(hdr.encode(h) for h in self.lag),
        )
