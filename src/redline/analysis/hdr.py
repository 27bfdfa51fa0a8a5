"""HDR histograms (PyPI `hdrhistogram`) of latencies and schedule lags.

Each worker records its own; histograms of the same layout add exactly, so figures merge
across workers — and across machines — without shipping every sample. Values are
recorded in whole µs from 1 µs to 1 h at 3 significant digits: a percentile read back is
within 0.1 % (and 1 µs) of the exact one.

Recording goes through numpy, not `record_value` (one Python call per value would cost
more than the request it measures); the index arithmetic is the library's own
(HdrHistogram._counts_index_for), and tests/test_hdr.py checks both agree.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
from hdrh.histogram import HdrHistogram

LOWEST_US = 1
HIGHEST_US = 3_600_000_000  # 1 h
DIGITS = 3
PERCENTILES = (50, 90, 95, 99, 99.9)


def new() -> HdrHistogram:
    return HdrHistogram(LOWEST_US, HIGHEST_US, DIGITS)


def record_ns(hist: HdrHistogram, values_ns: np.ndarray) -> HdrHistogram:
    """Add `values_ns` (ns, rounded down to µs, negatives as 0, above 1 h as 1 h) to `hist`."""
    if values_ns.size == 0:
        return hist
    us = np.clip(np.asarray(values_ns, dtype=np.int64) // 1000, 0, HIGHEST_US)
    mask = hist.sub_bucket_mask
    # bit length of (v | mask): frexp's exponent, exact for integers below 2**53
    bits = np.frexp((us | mask).astype(np.float64))[1].astype(np.int64)
    bucket = bits - hist.unit_magnitude - (hist.sub_bucket_half_count_magnitude + 1)
    sub = us >> (bucket + hist.unit_magnitude)
    index = ((bucket + 1) << hist.sub_bucket_half_count_magnitude) + sub - hist.sub_bucket_half_count
    counts = np.ctypeslib.as_array(hist.counts)
    counts += np.bincount(index, minlength=hist.counts_len)[: hist.counts_len].astype(counts.dtype)
    hist.total_count += int(us.size)
    hist.min_value = min(hist.min_value, int(us.min()))
    hist.max_value = max(hist.max_value, int(us.max()))
    return hist


def of_ns(values_ns: np.ndarray) -> HdrHistogram:
    return record_ns(new(), values_ns)


def encode(hist: HdrHistogram) -> str:
    """The standard compressed, base64 form (readable by any HdrHistogram library)."""
    return bytes(hist.encode()).decode("ascii")


def decode(text: str) -> HdrHistogram:
    return HdrHistogram.decode(text.encode("ascii"))


def merged(hists: Iterable[HdrHistogram]) -> HdrHistogram:
    out = new()
    for h in hists:
        if h.get_total_count():
            out.add(h)
    return out


def merged_encoded(encodings: Sequence[str]) -> HdrHistogram:
    return merged(decode(e) for e in encodings)


def percentiles_ms(hist: HdrHistogram, percentiles: Sequence[float] = PERCENTILES) -> dict[str, float]:
    """`p50`… and `max`, in ms; empty for an empty histogram."""
    if not hist.get_total_count():
        return {}
    out = {f"p{p:g}": round(hist.get_value_at_percentile(p) / 1e3, 4) for p in percentiles}
    out["max"] = round(hist.get_max_value() / 1e3, 4)
    return out
