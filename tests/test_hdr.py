"""HDR histograms: recording through numpy matches the library's own record_value, and
merged per-worker percentiles equal those of the concatenated samples within HDR
precision (3 significant digits, whole µs)."""

from __future__ import annotations

import numpy as np
import pytest
from hdrh.histogram import HdrHistogram

from redline.analysis import hdr


def _exact(values_us: np.ndarray, p: float) -> float:
    """The value at HDR's rank for p (p/100 · n rounded half up, at least 1), exactly."""
    rank = max(1, int(p * values_us.size / 100 + 0.5))
    return float(np.sort(values_us)[rank - 1])


def test_vectorised_recording_equals_record_value():
    rng = np.random.default_rng(7)
    values_ns = np.concatenate([rng.integers(0, 5_000_000_000, 3000), [0, 999, 1000, 2047_000, 3_600_000_000_000]])
    ours = hdr.of_ns(values_ns)
    theirs = HdrHistogram(hdr.LOWEST_US, hdr.HIGHEST_US, hdr.DIGITS)
    for v in values_ns // 1000:
        assert theirs.record_value(int(v))
    assert np.array_equal(np.ctypeslib.as_array(ours.counts), np.ctypeslib.as_array(theirs.counts))
    assert (ours.get_total_count(), ours.get_min_value(), ours.get_max_value()) == (
        theirs.get_total_count(),
        theirs.get_min_value(),
        theirs.get_max_value(),
    )


@pytest.mark.parametrize("workers", [1, 3, 8])
def test_merged_percentiles_equal_the_concatenated_samples(workers):
    rng = np.random.default_rng(workers)
    # a latency mix with a long tail: lognormal body, 1 % of answers 50–500 ms
    parts = []
    for w in range(workers):
        body = rng.lognormal(mean=np.log(2e6), sigma=0.6, size=20_000 + 1000 * w)
        tail = rng.uniform(5e7, 5e8, size=200 + 10 * w)
        parts.append(np.concatenate([body, tail]).astype(np.int64))
    encoded = [hdr.encode(hdr.of_ns(p)) for p in parts]  # what each worker ships
    merged = hdr.merged_encoded(encoded)
    union_us = np.concatenate(parts) // 1000
    assert merged.get_total_count() == union_us.size
    for p in (50, 90, 99, 99.9):
        exact = _exact(union_us, p)
        got = merged.get_value_at_percentile(p)
        assert abs(got - exact) <= 1e-3 * exact + 1, (p, got, exact)
    figures = hdr.percentiles_ms(merged)
    assert figures["max"] == pytest.approx(union_us.max() / 1e3, rel=1e-3)


def test_an_empty_histogram_has_no_figures_and_merges_as_nothing():
    empty = hdr.encode(hdr.of_ns(np.zeros(0, np.int64)))
    one = hdr.encode(hdr.of_ns(np.array([1_500_000])))
    assert hdr.percentiles_ms(hdr.decode(empty)) == {}
    merged = hdr.merged_encoded([empty, one])
    assert merged.get_total_count() == 1 and hdr.percentiles_ms(merged)["p50"] == pytest.approx(1.5, rel=1e-3)
