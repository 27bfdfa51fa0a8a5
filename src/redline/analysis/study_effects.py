"""The effect of each factor of a study's matrix, with an interval from its pairs and repeats.

Pure: cells in (their factors, repeat and metric value), effects out. A factor's level is
compared with the factor's first level on a log scale, pair by pair: a pair is the two
groups of cells that agree on every other factor, each group's repeats averaged in logs.
Ratios keep "+4 %" meaningful whatever the metric's size, and a geometric mean of ratios
does not let the largest configuration dominate."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from redline.model.study import Effect


@dataclass(frozen=True)
class Observation:
    factors: dict[str, Any]
    value: float  # > 0


def _key(factors: dict[str, Any], without: str) -> tuple[tuple[str, str], ...]:
    return tuple(sorted((k, repr(v)) for k, v in factors.items() if k != without))


def _shown(value: Any) -> str:
    return ("true" if value else "false") if isinstance(value, bool) else str(value)


def _t_interval(xs: Sequence[float], confidence: float) -> tuple[float, float] | None:
    from scipy import stats

    n = len(xs)
    if n < 2:
        return None
    mean = sum(xs) / n
    sd = math.sqrt(sum((x - mean) ** 2 for x in xs) / (n - 1))
    half = float(stats.t.ppf(0.5 + confidence / 2, n - 1)) * sd / math.sqrt(n)
    return mean - half, mean + half


def _welch(a: Sequence[float], b: Sequence[float], confidence: float) -> tuple[float, float] | None:
    """Interval of mean(b) − mean(a) from two sets of repeats (Welch–Satterthwaite)."""
    from scipy import stats

    if len(a) < 2 or len(b) < 2:
        return None
    ma, mb = sum(a) / len(a), sum(b) / len(b)
    va = sum((x - ma) ** 2 for x in a) / (len(a) - 1) / len(a)
    vb = sum((x - mb) ** 2 for x in b) / (len(b) - 1) / len(b)
    se = math.sqrt(va + vb)
    if se == 0:
        return mb - ma, mb - ma
    df = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
    half = float(stats.t.ppf(0.5 + confidence / 2, df)) * se
    return mb - ma - half, mb - ma + half


def factor_effects(
    levels: Mapping[str, Sequence[Any]], observations: Sequence[Observation], metric: str, confidence: float = 0.95
) -> list[Effect]:
    """One Effect per factor level other than the factor's first, for the factors with ≥ 2 levels."""
    effects: list[Effect] = []
    for factor, values in levels.items():
        if len(values) < 2:
            continue
        base = values[0]
        # group key (the other factors) -> level -> log values of its repeats
        groups: dict[tuple[tuple[str, str], ...], dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
        for o in observations:
            if factor in o.factors and o.value > 0:
                groups[_key(o.factors, factor)][repr(o.factors[factor])].append(math.log(o.value))
        for level in values[1:]:
            pairs = [
                (g[repr(base)], g[repr(level)]) for g in groups.values() if g.get(repr(base)) and g.get(repr(level))
            ]
            what = Effect(factor, _shown(level), _shown(base), metric, math.nan, confidence=confidence)
            if not pairs:
                effects.append(replace(what, note="no pair of done cells differs only in it"))
                continue
            diffs = [sum(b) / len(b) - sum(a) / len(a) for a, b in pairs]
            mean = sum(diffs) / len(diffs)
            if len(pairs) >= 2:
                iv, note = _t_interval(diffs, confidence), ""
            else:
                iv = _welch(pairs[0][0], pairs[0][1], confidence)
                note = "" if iv else "one pair and no repeats: no interval"
            lo, hi = (math.exp(iv[0]), math.exp(iv[1])) if iv else (None, None)
            effects.append(replace(what, ratio=math.exp(mean), low=lo, high=hi, pairs=len(pairs), note=note))
    return effects
