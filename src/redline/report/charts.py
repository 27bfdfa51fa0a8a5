"""The data behind each chart, prepared once for both renderers (HTML and PNG).

Pure functions from `RunData` to arrays: no plotting, no I/O. Each returns None when
the folder holds nothing to draw, so a partial run still gets every chart it can.

Time axes: a probe's latency chart counts seconds from the start of its measurement
window (warm-up is negative), as the verdicts do, so the fitted trends stored in the
verdict figures draw on it directly. Whole-run charts (throughput, host) count seconds
from the first probe's start on CLOCK_MONOTONIC, the clock samples and monitor share.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np

from redline.analysis.stats import grouped_quantiles
from redline.model.samples import NOT_SET, RequestOutcome
from redline.report.load import ProbeData, RunData

_NS = 1e9
MAX_SCATTER = 2500  # answers drawn as points per probe; percentiles use every row
TOP_PROCESSES = 5
TOP_DISKS = 3


@dataclass(frozen=True)
class TrendLine:
    """A fitted line from a verdict, in the latency chart's units (s, ms)."""

    label: str
    t_s: np.ndarray
    ms: np.ndarray
    text: str  # the slope in words, for a hover or a legend


@dataclass(frozen=True)
class LatencySeries:
    """Latency over time of one probe, by *intended* send time (open loop).

    t_s / p50_ms / p90_ms / p99_ms: per window of `width_s`, centres in seconds since the
    measurement window began (negative: warm-up); NaN where a window had no answer.
    scatter_*: a thinning of the individual answers (every k-th by schedule order).
    error_t_s: scheduled time of each failed request (drawn as a rug).
    source: "samples", or "verdict" when only the verdict's windowed series survived.
    """

    probe_index: int
    label: str
    state: str
    width_s: float
    t_s: np.ndarray
    p50_ms: np.ndarray
    p90_ms: np.ndarray
    p99_ms: np.ndarray
    scatter_t_s: np.ndarray
    scatter_ms: np.ndarray
    error_t_s: np.ndarray
    trends: tuple[TrendLine, ...]
    answered: int
    thinned_to: int
    source: str
    stride: int = 1  # percentiles from every k-th request (a long run's report)


@dataclass(frozen=True)
class Throughput:
    """Per-second request counts over the whole run, probes laid end to end.

    t_s: bin starts, seconds since the run's origin; NaN rows separate probes so lines
    break in the gaps between them instead of drawing a slope across idle time.
    offered: requests scheduled in the second; achieved: 2xx/3xx answers completed in
    it; errors: failed requests completed in it.
    """

    t_s: np.ndarray
    offered: np.ndarray
    achieved: np.ndarray
    errors: np.ndarray


@dataclass(frozen=True)
class ProbePoints:
    """One row per probe, from the stored summaries and verdicts (the search trace, the
    knee, offered vs achieved). Missing figures are NaN."""

    index: np.ndarray
    rate: np.ndarray
    state: tuple[str, ...]
    phase: tuple[str, ...]
    full: np.ndarray
    offered_rps: np.ndarray
    achieved_rps: np.ndarray
    p50_ms: np.ndarray
    p90_ms: np.ndarray
    p99_ms: np.ndarray
    error_ratio: np.ndarray
    hover: tuple[str, ...]
    n: float | None  # the search's answer, drawn as a reference line

    def __len__(self) -> int:
        return int(self.index.shape[0])


@dataclass(frozen=True)
class Span:
    """When one probe ran, on the whole-run axis (shaded behind host charts)."""

    t0_s: float
    t1_s: float
    label: str
    state: str


@dataclass(frozen=True)
class HostSeries:
    """Host CPU, disk and per-process CPU from monitor.npz, seconds since the origin.

    busy_cores: sum over CPUs of busy %, / 100 (so 1.5 = one and a half cores busy).
    groups / processes: percent of *one* core (250 = two and a half cores); NaN when absent.
    """

    t_s: np.ndarray
    cpus: int
    busy_cores: np.ndarray
    disks: dict[str, np.ndarray]
    groups: dict[str, np.ndarray]
    processes: dict[str, np.ndarray]
    spans: tuple[Span, ...]


# -- latency over time ------------------------------------------------------------------


def latency_over_time(probe: ProbeData, width_s: float = 1.0, max_points: int = MAX_SCATTER) -> LatencySeries | None:
    """Windowed p50/p90/p99, a thinned scatter and the verdict's fitted trends."""
    trends = _trend_lines(probe)
    s = probe.samples
    if s is None or len(s) == 0:
        return _latency_from_verdict(probe, trends)
    s = s.sorted()
    keep = s.outcome != RequestOutcome.UNSENT_INTERRUPTED  # never offered: neither late nor failed
    t = s.t_seconds()[keep]
    answered = s.completed[keep]
    lat_ms = (s.latency_ns[keep] / 1e6).astype(np.float64)
    errors = s.errors[keep]
    if t.size == 0:
        return _latency_from_verdict(probe, trends)

    start = np.floor(t.min() / width_s) * width_s
    n_win = max(1, int(np.ceil((t.max() - start) / width_s + 1e-9)))
    idx = np.clip(np.floor((t - start) / width_s).astype(np.int64), 0, n_win - 1)
    q = grouped_quantiles(idx[answered], lat_ms[answered], n_win, (0.5, 0.9, 0.99))
    centres = start + (np.arange(n_win) + 0.5) * width_s

    at, al = t[answered], lat_ms[answered]
    step = max(1, int(np.ceil(at.size / max_points)))
    return LatencySeries(
        probe_index=probe.index,
        label=probe.label,
        state=probe.state,
        width_s=width_s,
        t_s=centres,
        p50_ms=q[0],
        p90_ms=q[1],
        p99_ms=q[2],
        scatter_t_s=at[::step],
        scatter_ms=al[::step],
        error_t_s=t[errors],
        trends=trends,
        answered=int(at.size) * probe.sample_stride,
        thinned_to=int(at[::step].size),
        source="samples",
        stride=probe.sample_stride,
    )


def _latency_from_verdict(probe: ProbeData, trends: tuple[TrendLine, ...]) -> LatencySeries | None:
    """Without samples, the robust verdict's own per-window series is still worth drawing."""
    series = (probe.verdict.figures.get("series") if probe.verdict else None) or {}
    t = _arr(series.get("t_s"))
    if t.size == 0:
        return None
    nan = np.full(t.size, np.nan)
    empty = np.zeros(0)
    width = float(probe.verdict.figures.get("window_s") or 1.0) if probe.verdict else 1.0
    return LatencySeries(
        probe.index, probe.label, probe.state, width, t,
        _arr(series.get("p50_ms"), t.size), nan, _arr(series.get("p99_ms"), t.size),
        empty, empty, empty, trends, 0, 0, "verdict",
    )  # fmt: skip


def _trend_lines(probe: ProbeData) -> tuple[TrendLine, ...]:
    """The lines the verdict fitted: Theil–Sen of windowed p50/p99 (robust) or the
    least-squares latency = a·t + b (paper)."""
    if probe.verdict is None:
        return ()
    fig = probe.verdict.figures
    out: list[TrendLine] = []
    for key, tr in (fig.get("trend") or {}).items():
        if not isinstance(tr, dict) or not tr.get("tested"):
            continue
        slope, icpt, t0, t1 = (tr.get(k) for k in ("slope_ms_per_s", "intercept_ms", "t0_s", "t1_s"))
        if None in (slope, icpt, t0, t1):
            continue
        ts = np.array([t0, t1], dtype=float)
        text = f"Theil–Sen {slope:+.3f} ms/s"
        if tr.get("p_increasing") is not None:
            text += f", Mann–Kendall p = {tr['p_increasing']:.2g}"
        out.append(TrendLine(f"{key} trend", ts, icpt + slope * ts, text))
    fit = fig.get("fit")
    if isinstance(fit, dict) and fit.get("a_s_per_s") is not None and fit.get("b_s") is not None:
        a, b = float(fit["a_s_per_s"]), float(fit["b_s"])
        span = float(fig.get("span_s") or probe.window_s or 0.0)
        if span > 0:
            ts = np.array([0.0, span])
            out.append(TrendLine("least-squares fit", ts, (b + a * ts) * 1e3, f"a = {a:.5f} s/s, b = {b * 1e3:.1f} ms"))
    return tuple(out)


# -- throughput -------------------------------------------------------------------------


def throughput(run: RunData) -> Throughput | None:
    """Offered vs achieved per second, every probe with samples on one time axis."""
    origin = run.origin_ns
    parts: list[tuple[np.ndarray, ...]] = []
    for p in run.probes:
        s = p.samples
        if s is None or len(s) == 0 or origin is None:
            continue
        scheduled = s.intended_ns[s.outcome != RequestOutcome.UNSENT_INTERRUPTED]
        if scheduled.size == 0:
            continue
        first = int(scheduled.min())
        done = s.done_ns
        last = int(max(scheduled.max(), done[done != NOT_SET].max() if np.any(done != NOT_SET) else 0))
        n = int((last - first) // _NS) + 1
        k = p.sample_stride  # each row drawn stands for k (every k-th row of a long run)
        offered = k * np.bincount(((scheduled - first) // _NS).astype(np.int64), minlength=n)[:n]
        ok = s.ok & (done != NOT_SET)
        err = s.errors & (done != NOT_SET)
        achieved = k * np.bincount(((done[ok] - first) // _NS).astype(np.int64), minlength=n)[:n]
        errors = k * np.bincount(((done[err] - first) // _NS).astype(np.int64), minlength=n)[:n]
        t0 = (first - origin) / _NS
        # A last bin that the run covers only in part would draw a fake dip: keep whole
        # seconds (50 ms of slack for the final inter-arrival gap and answer time).
        m = max(1, min(n, int((last - first + 0.05 * _NS) // _NS)))
        parts.append((t0 + np.arange(m, dtype=float), offered[:m], achieved[:m], errors[:m]))
    if not parts:
        return None
    gap = (np.array([np.nan]),) * 4
    cols = [np.concatenate([c for part in parts for c in (part[k], gap[k])][:-1]).astype(float) for k in range(4)]
    return Throughput(*cols)


# -- per probe: search trace, knee, offered vs achieved ---------------------------------


def probe_points(run: RunData) -> ProbePoints | None:
    probes = [p for p in run.probes if p.rate is not None]
    if not probes:
        return None

    def col(f: Callable[[ProbeData], float | None]) -> np.ndarray:
        return np.array([np.nan if (v := f(p)) is None else float(v) for p in probes], dtype=float)

    return ProbePoints(
        index=np.array([p.index for p in probes], dtype=int),
        rate=col(lambda p: p.rate),
        state=tuple(p.state for p in probes),
        phase=tuple(p.phase for p in probes),
        full=np.array([p.full for p in probes], dtype=bool),
        offered_rps=col(lambda p: p.summary.offered_rps if p.summary else None),
        achieved_rps=col(lambda p: p.summary.achieved_rps if p.summary else None),
        p50_ms=col(lambda p: p.latency_ms("p50")),
        p90_ms=col(lambda p: p.latency_ms("p90")),
        p99_ms=col(lambda p: p.latency_ms("p99")),
        error_ratio=col(lambda p: p.summary.error_ratio if p.summary else None),
        hover=tuple(_probe_hover(p) for p in probes),
        n=run.outcome.n if run.outcome else None,
    )


def _probe_hover(p: ProbeData) -> str:
    trial = "full" if p.full else "short"
    head = f"probe {p.index}: {p.rate:g}/s, {p.phase} ({trial}), {p.state}"
    first = p.verdict.reasons[0] if p.verdict and p.verdict.reasons else ""
    return head + (f" — {first}" if first else "")


# -- host -------------------------------------------------------------------------------


def host_series(run: RunData) -> HostSeries | None:
    mon = run.monitor
    if mon is None or len(mon) == 0:
        return None
    origin = run.origin_ns if run.origin_ns is not None else int(mon.t_ns[0])
    t = (mon.t_ns - origin) / _NS
    disks = {}
    if mon.disk_busy_pct.ndim == 2 and mon.disk_busy_pct.shape[1]:
        # The busiest few: a host lists loop and partition devices nobody needs to see.
        order = np.argsort(-mon.disk_busy_pct.mean(axis=0))[:TOP_DISKS]
        disks = {mon.disk_names[i]: mon.disk_busy_pct[:, i].astype(float) for i in order}
    procs: dict[str, np.ndarray] = {}
    if mon.procs and mon.proc_cpu_pct.size:
        pc = mon.proc_cpu_pct.astype(float)
        with np.errstate(invalid="ignore"):
            means = np.array([np.nanmean(c) if np.isfinite(c).any() else -1.0 for c in pc.T])
        for i in np.argsort(-means)[:TOP_PROCESSES]:
            if means[i] >= 0:
                info = mon.procs[i]
                procs[f"{info.label} [{', '.join(info.groups)}]" if info.groups else info.label] = pc[:, i]
    spans = tuple(
        Span((p.started_ns - origin) / _NS, (p.ended_ns - origin) / _NS, p.label, p.state)
        for p in run.probes
        if p.started_ns and p.ended_ns
    )
    return HostSeries(
        t_s=t,
        cpus=mon.cpus,
        busy_cores=(mon.cpu_pct.sum(axis=1) / 100.0).astype(float) if mon.cpus else np.zeros(len(mon)),
        disks=disks,
        groups={k: v.astype(float) for k, v in mon.groups.items()},
        processes=procs,
        spans=spans,
    )


def _arr(values: Iterable[float | None] | None, n: int | None = None) -> np.ndarray:
    a = np.array([np.nan if v is None else float(v) for v in (values or ())], dtype=float)
    if n is not None and a.size != n:
        return np.full(n, np.nan)
    return a
