"""A run's (or probe's) HDR histograms: one per worker, kept apart so that they can be
merged exactly with other workers' or machines' (analysis/hdr.py reads them)."""

from __future__ import annotations

from dataclasses import dataclass

from redline.model.codec import JsonRecord

SCHEMA = "redline.histograms/1"


@dataclass(frozen=True)
class RunHistograms(JsonRecord):
    """Encoded HdrHistograms (base64, compressed) of the measurement window, per worker:
    latency from the intended send time of every answered request, and schedule lag
    (dispatch − intended) of every dispatched one. Values in µs, 1 µs–1 h, 3 digits."""

    latency_us: tuple[str, ...]
    schedule_lag_us: tuple[str, ...]
    schema: str = SCHEMA
