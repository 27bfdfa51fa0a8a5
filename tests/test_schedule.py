import numpy as np
import pytest

from redline.load.schedule import Schedule


def test_constant_rate_is_evenly_spaced():
    off = Schedule(rate=200, duration_s=10).offsets_ns()
    assert off.size == 2000
    gaps = np.diff(off)
    assert gaps.min() == gaps.max() == 5_000_000


def test_poisson_has_the_rate_and_exponential_gaps():
    off = Schedule(rate=1000, duration_s=20, arrival="poisson", seed=3).offsets_ns()
    assert abs(off.size - 20000) < 4 * np.sqrt(20000)
    gaps = np.diff(off) / 1e9
    assert abs(gaps.mean() - 1e-3) < 5e-5
    assert abs(gaps.std() / gaps.mean() - 1.0) < 0.05  # coefficient of variation of an exponential
    assert np.all(np.diff(off) >= 0) and off[-1] < 20e9


def test_poisson_is_reproducible_by_seed():
    a = Schedule(rate=50, duration_s=5, arrival="poisson", seed=7).offsets_ns()
    b = Schedule(rate=50, duration_s=5, arrival="poisson", seed=7).offsets_ns()
    c = Schedule(rate=50, duration_s=5, arrival="poisson", seed=8).offsets_ns()
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_linear_ramp_rate_at_both_ends():
    s = Schedule(rate=100, end_rate=500, duration_s=10)
    off = s.offsets_ns() / 1e9
    assert off.size == 3000  # (100 + 500) / 2 × 10
    first = np.count_nonzero(off < 1.0)
    last = np.count_nonzero(off >= 9.0)
    assert 115 <= first <= 125  # mean rate over [0, 1) is 120
    assert 475 <= last <= 485  # mean rate over [9, 10) is 480


def test_falling_ramp():
    off = Schedule(rate=400, end_rate=0, duration_s=4).offsets_ns() / 1e9
    assert off.size == 800
    assert np.count_nonzero(off < 1) > np.count_nonzero(off >= 3)


def test_shares_deal_the_schedule_round_robin_block_by_block():
    s = Schedule(rate=10, duration_s=1)
    off = s.offsets_ns()
    parts = [np.concatenate(list(s.share(w, 3, size=4))) for w in range(3)]
    assert [p.size for p in parts] == [s.share_count(w, 3) for w in range(3)] == [4, 3, 3]
    assert parts[0][0] < parts[1][0] < parts[2][0]
    assert all(np.array_equal(p, off[w::3]) for w, p in enumerate(parts))


@pytest.mark.parametrize("kw", [dict(arrival="constant"), dict(arrival="poisson", seed=5, end_rate=900)])
def test_blocks_are_the_whole_schedule_bit_for_bit(kw):
    s = Schedule(rate=300, duration_s=20, **kw)
    whole = s.offsets_ns()
    assert np.array_equal(np.concatenate(list(s.blocks(size=777))), whole)
    assert s.count() == whole.size


@pytest.mark.parametrize(
    "kw", [dict(rate=0, duration_s=1), dict(rate=1, duration_s=0), dict(rate=1, duration_s=1, arrival="x")]
)
def test_bad_schedules_are_refused(kw):
    with pytest.raises(ValueError):
        Schedule(**kw)
