"""Capacity search policy: which rate to probe next, and when N is found (pure).

The policy is a function of the probes run so far, so the driver (redline.jobs) stays a
loop and the whole search can be replayed from a run.json. Like FD.io's MLRsearch, it
spends short trials while bracketing and bisecting, and full-length trials only to
confirm the answer — the study (seed 003) confirmed N by running N−1 and N+1; we run N
and N + one resolution step, both at full length.

Evidence is weighed by trial length: a full-length verdict overrides short ones, so a
rate that looked stable for 6 s but degrades over the full window moves the search down.
Once a full-length trial has failed at a rate a short trial passed, short trials are known
to flatter this target: from then on every probe is full length and only full-length
"stable" counts, so the search bisects down in a few probes instead of stepping down one
resolution step per failed confirmation (and never reports a rate only a short trial held).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from redline.model.capacity import SearchOutcome

Phase = Literal["bracket", "bisect", "confirm"]
ProbeState = Literal["stable", "degraded", "inconclusive"]


@dataclass(frozen=True)
class SearchConfig:
    start_rate: float = 100.0
    min_rate: float | None = None  # with max_rate: a fixed bracket, bisected (the study: 1..200)
    max_rate: float | None = None
    resolution_rel: float = 0.02  # stop bisecting when hi − lo ≤ this × lo ...
    resolution_abs: float = 0.0  # ... or ≤ this many requests/s (whichever is larger)
    growth: float = 2.0  # bracketing factor
    floor_rate: float = 0.5  # below this no rate is tried: "never stable"
    max_probes: int = 40
    inconclusive_retries: int = 2  # each retried with one more generator process
    # After short trials proved optimistic, search with full-length trials only (off for
    # the study's protocol, which bisects with short trials by definition).
    full_after_contradiction: bool = True

    def __post_init__(self) -> None:
        if not self.start_rate > 0:
            raise ValueError("the start rate must be positive")
        if self.min_rate is not None and self.max_rate is not None and not 0 < self.min_rate < self.max_rate:
            raise ValueError("need 0 < min rate < max rate")
        if self.resolution_rel <= 0 and self.resolution_abs <= 0:
            raise ValueError("the resolution must be positive")
        if self.growth <= 1:
            raise ValueError("the growth factor must exceed 1")

    def step(self, rate: float) -> float:
        return max(self.resolution_abs, self.resolution_rel * rate)

    def round(self, rate: float) -> float:
        """Rates on the resolution's grid when it is absolute (the study stepped by 1)."""
        if self.resolution_abs >= 1 and self.resolution_rel <= 0:
            return float(max(1, round(rate)))
        return float(f"{rate:.4g}")


@dataclass(frozen=True)
class ProbeRecord:
    rate: float
    phase: Phase
    full: bool  # a full-length trial
    state: ProbeState
    attempt: int = 0  # 0 for the first try at this rate and length
    achieved: float | None = None  # successful responses/s: past capacity, an estimate of it


@dataclass(frozen=True)
class Step:
    """Probe `rate` next; `full` for a full-length trial; `attempt` > 0 for a retry."""

    rate: float
    phase: Phase
    full: bool
    attempt: int = 0


def _lowest_degraded(history: list[ProbeRecord], hi: float) -> ProbeRecord | None:
    return next((p for p in history if p.rate == hi and p.state == "degraded"), None)


def short_trials_misled(history: list[ProbeRecord]) -> bool:
    """A rate passed a short trial and failed a full-length one."""
    short_stable = {p.rate for p in history if not p.full and p.state == "stable"}
    return any(p.full and p.state == "degraded" and p.rate in short_stable for p in history)


def _known(history: list[ProbeRecord], full_only: bool = False) -> tuple[float | None, float | None]:
    """(lo, hi): the highest rate known stable below the lowest rate known degraded.

    `full_only`: a short trial's "stable" is not evidence (a short "degraded" still is:
    short trials flatter a target, they do not slander it)."""
    full_stable = [p.rate for p in history if p.full and p.state == "stable"]
    full_degraded = [p.rate for p in history if p.full and p.state == "degraded"]
    top_full_stable = max(full_stable, default=float("-inf"))
    low_full_degraded = min(full_degraded, default=float("inf"))
    stable = full_stable + [
        p.rate for p in history if not full_only and not p.full and p.state == "stable" and p.rate < low_full_degraded
    ]
    degraded = full_degraded + [
        p.rate for p in history if not p.full and p.state == "degraded" and p.rate > top_full_stable
    ]
    hi = min(degraded, default=None)
    lo = max((r for r in stable if hi is None or r < hi), default=None)
    return lo, hi


def next_step(config: SearchConfig, history: list[ProbeRecord]) -> Step | SearchOutcome:
    """The next probe, or the outcome when the search is over."""
    full_only = config.full_after_contradiction and short_trials_misled(history)
    if history and history[-1].state == "inconclusive":
        last = history[-1]
        if last.attempt < config.inconclusive_retries:
            return Step(last.rate, last.phase, last.full, last.attempt + 1)
        lo, _ = _known(history, full_only)
        return SearchOutcome(
            "inconclusive",
            lo,
            f"the probe at {last.rate:g}/s stayed inconclusive after {last.attempt + 1} tries "
            "(the generator was the limit): the target's capacity is at least the last stable "
            "rate, and could not be measured further on this machine",
        )
    if len(history) >= config.max_probes:
        lo, _ = _known(history, full_only)
        return SearchOutcome("probe_limit", lo, f"stopped after {config.max_probes} probes")

    lo, hi = _known(history, full_only)
    fixed = config.min_rate is not None and config.max_rate is not None

    # 1. Bracket: find a degraded rate above a stable one.
    if hi is None:
        top = config.max_rate
        if lo is None:
            rate = (config.min_rate + top) / 2 if fixed else config.start_rate  # type: ignore[operator]
        elif top is not None and lo >= top:
            return _confirm_or_finish(config, history, lo, None, at_bound=True)
        else:
            rate = lo * config.growth if top is None else min(top, lo * config.growth if not fixed else top)
        return Step(config.round(rate), "bisect" if fixed else "bracket", full_only)
    if lo is None:
        floor = config.min_rate if config.min_rate is not None else config.floor_rate
        tried_floor = any(p.rate <= floor and p.state == "degraded" for p in history)
        if tried_floor:
            return SearchOutcome("never_stable", None, f"even {floor:g}/s degraded: the target sustained no rate tried")
        rate = max(floor, (floor + hi) / 2 if fixed else hi / config.growth)
        if hi - rate <= config.step(rate) and rate > floor:
            rate = floor
        return Step(config.round(rate), "bisect" if fixed else "bracket", full_only)

    # 2. Narrow the bracket while it is wider than the resolution. An overloaded probe
    #    served about the target's capacity, so its achieved rate is the first guess
    #    (MLRsearch does the same with the forwarding rate); plain bisection otherwise.
    step = config.step(lo)
    if hi - lo > step * 1.0001:
        guess = _guess(config, history, lo, hi, step, full_only)
        if guess is not None:
            return Step(guess, "bisect", full_only)
        mid = config.round((lo + hi) / 2)
        if mid <= lo or mid >= hi:
            return _confirm_or_finish(config, history, lo, hi)
        return Step(mid, "bisect", full_only)

    # 3. Confirm at full length: N passes, the next step fails.
    return _confirm_or_finish(config, history, lo, hi)


def _guess(
    config: SearchConfig, history: list[ProbeRecord], lo: float, hi: float, step: float, full: bool
) -> float | None:
    top = _lowest_degraded(history, hi)
    if top is None or top.achieved is None:
        return None
    # One guess per degraded bound: a target that serves far less than its capacity when
    # overloaded (Keystone without a cache) would otherwise have the search creep up from
    # lo one resolution step at a time; after the guess, bisect.
    after = history[history.index(top) + 1 :]
    if top.achieved < lo - step or any(p.phase == "bisect" for p in after):
        return None  # below a rate it sustained, what it served says nothing of its capacity
    # What an overloaded probe served is its capacity give or take the answers that happen to
    # complete inside its window (1501/s measured on a 1500/s target): half a step below it
    # keeps the guess on the side the target can sustain, instead of a rate one answer too high.
    est = top.achieved - step / 2
    if est <= lo + step:
        guess = lo + step  # capacity looks like lo: check just above it
    elif est >= hi - step:
        guess = hi - step  # capacity looks like hi: check just below it
    else:
        guess = est
    guess = config.round(guess)
    tried = {p.rate for p in history if p.full == full}
    if not lo < guess < hi or guess in tried:
        return None
    return guess


def _confirm_or_finish(
    config: SearchConfig, history: list[ProbeRecord], n: float, hi: float | None, at_bound: bool = False
) -> Step | SearchOutcome:
    full = {p.rate: p.state for p in history if p.full}
    if full.get(n) != "stable":
        return Step(n, "confirm", True)
    if at_bound:
        return SearchOutcome("at_upper_bound", n, f"{n:g}/s, the upper bound of the search, was sustained: N ≥ {n:g}/s")
    above = config.round(n + config.step(n))
    if hi is not None and above > hi:
        above = hi
    if full.get(above) is None:
        return Step(above, "confirm", True)
    # _known() already moved lo up had `above` passed; here it failed at full length.
    return SearchOutcome(
        "found",
        n,
        f"{n:g}/s sustained at full length and {above:g}/s (one step more) degraded",
    )
