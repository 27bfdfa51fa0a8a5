"""Reports: HTML (self-contained, charts holding data), PNGs, partial folders, the CLI.

The capacity folder used here is real: `redline run` probes against a calibrated target
(capacity 400/s), assembled into run.json the way `redline capacity` writes it (see the
contract in docs/report.md), with verdicts from `redline.analysis.degradation.judge`
and a host monitor running through all probes. It is built once per session.
"""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import GEN_CPUS, TARGET_CPUS, assert_one_line_error, redline_cmd, run_redline
from redline.analysis.bottleneck import single_threaded_bottlenecks
from redline.analysis.degradation import GeneratorFlags, PaperCriterion, RobustCriterion, judge
from redline.analysis.run_summary import summarize
from redline.lab.process import start_calibrated
from redline.model.samples import RequestOutcome, Samples
from redline.monitor import Monitor, PidTree
from redline.report import write_reports
from redline.report.charts import latency_over_time, probe_points, throughput
from redline.report.load import ProbeData, read_run
from redline.store import RunFolder
from redline.store.npz import write_monitor, write_samples

PROBE_RATES = (200.0, 600.0, 300.0)  # stable, degraded (capacity 400), stable
# Six 1 s windows are the fewest the robust trend tests use; the overloaded probe is a
# short trial (its trends go untested, its backlog and completion still degrade it).
WINDOWS_S = (6.0, 3.0, 6.0)
WARMUP_S = 0.5


# -- building real run folders -------------------------------------------------------------


def build_capacity_folder(root: Path, keep_run_copy: Path | None = None) -> Path:
    """A capacity run folder per the run.json contract, from real `redline run` probes.

    keep_run_copy: also keep the first probe's untouched `redline run` folder there.
    """
    root.mkdir(parents=True)
    scratch = root.parent / (root.name + "-runs")
    lab = start_calibrated(servers=4, service_ms=10.0, cpus=TARGET_CPUS)
    monitor = Monitor(interval_s=0.5, groups={"target": PidTree(lab.pid)})
    probes: list[dict] = []
    began = time.monotonic()
    monitor.start()
    try:
        for index, (rate, window) in enumerate(zip(PROBE_RATES, WINDOWS_S)):
            started = time.monotonic_ns()
            proc = subprocess.Popen(
                redline_cmd(
                    "run", "--url", lab.url + "/", "--rate", f"{rate:g}", "--duration", f"{window:g}",
                    "--warmup", f"{WARMUP_S:g}", "--results", str(scratch), "--name", f"p{index}",
                    "--cpus", ",".join(map(str, GEN_CPUS)), "--json",
                ),
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True,
            )  # fmt: skip
            monitor.add_group("generator", PidTree(proc.pid))
            out, err = proc.communicate(timeout=60)
            ended = time.monotonic_ns()
            assert proc.returncode == 0, err
            run_dir = Path(json.loads(out)["run_dir"])
            run_doc = json.loads((run_dir / "run.json").read_text())
            if index == 0 and keep_run_copy is not None:
                shutil.copytree(run_dir, keep_run_copy)
            rel = f"probes/{index:02d}-{rate:g}"
            (root / rel).mkdir(parents=True)
            shutil.move(run_dir / "timeline.npz", root / rel / "timeline.npz")
            samples = RunFolder.open(run_dir).read_samples()  # a run writes its rows in parts
            write_samples(root / rel / "samples.npz", samples)
            health = run_doc["health"]
            flags = GeneratorFlags(health["generator_bound"], tuple(health["reasons"]))
            verdict = judge(samples, rate, flags, RobustCriterion())
            cut = monitor.series().between(started, ended)
            cpu = {k: float(np.nanmean(v)) if np.isfinite(v).any() else None for k, v in cut.groups.items()}
            probes.append(
                {
                    "index": index, "rate": rate, "phase": "confirm" if index == 2 else "bracket",
                    "full": index == 2, "attempt": 0, "workers": len(health["workers"]),
                    "warmup_s": WARMUP_S, "window_s": window, "started_ns": started, "ended_ns": ended,
                    "interrupted": False, "stopped_early": None, "verdict": verdict.to_json(), "summary": run_doc["summary"],
                    "health": health, "target_cpu_pct": cpu.get("target"),
                    "generator_cpu_pct": cpu.get("generator"), "dir": rel,
                }
            )  # fmt: skip
    finally:
        series = monitor.stop()
        lab.stop()
    write_monitor(root / "monitor.npz", series)
    stable = [p["rate"] for p in probes if p["verdict"]["state"] == "stable"]
    doc = {
        **{k: run_doc[k] for k in ("schema_version", "tool", "started_at", "host", "target")},
        "command": "capacity",
        "command_line": "redline capacity --url http://127.0.0.1:PORT/ --protocol quick (assembled by tests/test_report.py)",
        "status": "complete",
        "plan": {k: run_doc["plan"][k] for k in ("arrival", "workers", "cpus", "connection_cap")},
        "protocol": {
            "name": "test",
            "short_warmup_s": WARMUP_S,
            "short_window_s": WINDOWS_S[1],
            "full_warmup_s": WARMUP_S,
            "full_window_s": WINDOWS_S[0],
        },
        "criterion": "robust",
        "outcome": {
            "state": "found",
            "n": max(stable) if stable else None,
            "reason": "assembled by the test from its probes",
        },
        "time_taken_s": round(time.monotonic() - began, 1),
        "findings": [f.to_json() for f in single_threaded_bottlenecks(series)]
        or [
            {
                "id": "test.finding",
                "title": "a finding shown by the report",
                "severity": "low",
                "evidence": ["evidence sentence"],
                "why": "why sentence",
                "fix": "fix sentence",
                "source": "tests",
            }
        ],
        "probes": probes,
    }
    (root / "run.json").write_text(json.dumps(doc, indent=1))
    shutil.rmtree(scratch, ignore_errors=True)
    return root


def session_folders(tmp_path_factory) -> tuple[Path, Path]:
    """(capacity folder, run folder), built once per session and shared by both test files."""
    base = tmp_path_factory.getbasetemp()
    cap, run = base / "capacity-folder", base / "run-folder"
    if not (cap / "run.json").is_file():
        build_capacity_folder(cap, keep_run_copy=run)
    return cap, run


@pytest.fixture
def folders(tmp_path_factory, tmp_path) -> tuple[Path, Path]:
    """Fresh copies, so each test may write reports into them or damage them."""
    cap, run = session_folders(tmp_path_factory)
    return shutil.copytree(cap, tmp_path / "cap"), shutil.copytree(run, tmp_path / "run")


# -- reading the report back --------------------------------------------------------------


def figures(html: str) -> dict[str, dict]:
    """The plotly figures embedded in the page, by chart id."""
    blocks = re.findall(r'<script type="application/json" data-figure="([^"]+)">(.*?)</script>', html, re.S)
    return {fid: json.loads(text) for fid, text in blocks}


def values(v) -> np.ndarray:
    """A plotly data array: a JSON list, or plotly ≥ 6's typed array {dtype, bdata}."""
    if v is None:
        return np.zeros(0)
    if isinstance(v, dict) and "bdata" in v:
        return np.frombuffer(base64.b64decode(v["bdata"]), dtype=np.dtype(v["dtype"])).astype(float)
    return np.array([np.nan if x is None else x for x in v], dtype=float)


def points(trace: dict) -> int:
    """How many drawable (finite x and y) points a trace holds."""
    x, y = values(trace.get("x")), values(trace.get("y"))
    n = min(x.size, y.size)
    return int(np.count_nonzero(np.isfinite(x[:n]) & np.isfinite(y[:n])))


def assert_self_contained(html: str) -> None:
    # No element may load anything from the network (the plotly bundle's own strings
    # mention URLs, e.g. in error messages; only src/href attributes fetch).
    assert not re.search(r'<(script|link|img|iframe)[^>]+(src|href)\s*=\s*["\']?(https?:)?//', html, re.I)
    assert not re.search(r"<script[^>]+src=", html, re.I), "every script must be inline"
    assert html.count('<script type="text/javascript">') == 2  # plotly.js once + the loader
    assert "MathJax.js" not in html and "cdn.plot.ly" not in html.split("</head>")[1]


# -- tests ----------------------------------------------------------------------------------


def test_capacity_report_is_self_contained_and_charts_hold_data(folders):
    cap, _ = folders
    paths = write_reports(cap)
    assert paths[0] == cap / "report.html"
    html = paths[0].read_text()
    assert_self_contained(html)

    figs = figures(html)
    assert {"search", "knee", "throughput", "host", "latency-0", "latency-1", "latency-2"} <= set(figs)
    for fid, fig in figs.items():
        assert any(points(t) >= 2 for t in fig["data"]), f"{fid}: no trace with data"
    # Search trace: one point per probe, rates as run.
    search_rates = sorted(v for t in figs["search"]["data"] if t.get("mode") == "markers" for v in values(t["y"]))
    assert search_rates == sorted(PROBE_RATES)
    # Each probe's latency chart carries the trends its verdict fitted (robust: p50 and p99).
    doc = json.loads((cap / "run.json").read_text())
    for p in doc["probes"]:
        names = [t.get("name", "") for t in figs[f"latency-{p['index']}"]["data"]]
        tested = [k for k, tr in p["verdict"]["figures"]["trend"].items() if tr.get("tested")]
        assert all(f"{k} trend" in names for k in tested), names
        assert sum(points(t) for t in figs[f"latency-{p['index']}"]["data"]) > 100
    # Host: busy cores, the target group, a disk.
    host_names = [t.get("name", "") for t in figs["host"]["data"]]
    assert "busy cores" in host_names and "group target" in host_names

    # The text a reviewer audits: N, each probe's verdict reasons, generator health, facts.
    from markupsafe import escape

    assert f"{doc['outcome']['n']:,.1f} requests/s" in html
    for p in doc["probes"]:
        assert f'id="probe-{p["index"]}"' in html
        for reason in p["verdict"]["reasons"]:
            assert str(escape(reason)) in html
    assert str(escape(doc["command_line"])) in html
    assert doc["host"]["cpu_model"] in html and doc["host"]["kernel"] in html
    assert "Generator health" in html and str(escape(doc["findings"][0]["title"])) in html
    assert "This report is partial" not in html


def test_capacity_pngs_exist_and_are_not_blank(folders):
    import matplotlib.image

    cap, _ = folders
    pngs = [p for p in write_reports(cap) if p.suffix == ".png"]
    names = {p.name for p in pngs}
    assert {"search.png", "knee.png", "throughput.png", "host.png"} <= names
    assert {f"latency-{i:02d}-{r:g}.png" for i, r in enumerate(PROBE_RATES)} <= names
    for p in pngs:
        assert p.parent == cap / "png" and p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert p.stat().st_size > 15_000, p
        img = matplotlib.image.imread(p)
        assert img.shape[0] > 300 and img.shape[1] > 600
        assert float(img[..., :3].std()) > 0.05, f"{p.name} looks blank"


def test_run_folder_report_and_cli(folders):
    _, run = folders
    proc = run_redline("report", str(run))
    assert proc.returncode == 0, proc.stderr
    listed = [Path(line) for line in proc.stdout.split()]
    assert run / "report.html" in listed and run / "png" / "latency.png" in listed
    html = (run / "report.html").read_text()
    assert_self_contained(html)
    figs = figures(html)
    assert set(figs) == {"throughput", "latency-0", "host"}  # a run monitors the host too; no search
    assert all(any(points(t) > 2 for t in f["data"]) for f in figs.values())
    offered = values(next(t for t in figs["throughput"]["data"] if t["name"].startswith("offered"))["y"])
    assert np.nanmedian(offered) == pytest.approx(PROBE_RATES[0], rel=0.05)
    doc = json.loads((run / "run.json").read_text())
    assert doc["command_line"] in html.replace("&#39;", "'").replace("&amp;", "&")


def test_partial_capacity_folder_still_renders(folders):
    cap, _ = folders
    doc = json.loads((cap / "run.json").read_text())
    doc["status"] = "interrupted"
    del doc["outcome"], doc["time_taken_s"]
    (cap / doc["probes"][2]["dir"] / "samples.npz").unlink()  # missing
    damaged = cap / doc["probes"][1]["dir"] / "samples.npz"
    damaged.write_bytes(damaged.read_bytes()[:5000])  # truncated mid-write
    (cap / "monitor.npz").unlink()
    doc["probes"].append({"index": 3, "rate": 350.0, "phase": "bisect"})  # a probe cut off at once
    (cap / "run.json").write_text(json.dumps(doc))

    paths = write_reports(cap)
    html = (cap / "report.html").read_text()
    assert "This report is partial" in html
    for said in ("interrupted", f"{doc['probes'][2]['dir']}/samples.npz is missing",
                 f"{doc['probes'][1]['dir']}/samples.npz could not be read", "monitor.npz is missing",
                 "no outcome recorded"):  # fmt: skip
        assert said in html, said
    figs = figures(html)
    assert "host" not in figs and "latency-0" in figs
    # Without samples the verdict's own windowed p50/p99 is drawn instead.
    assert any(points(t) >= 6 for t in figs["latency-2"]["data"])
    assert (cap / "png" / "search.png") in paths


def test_running_folder_with_only_run_json(tmp_path):
    doc = {"schema_version": 1, "command": "run", "status": "running", "command_line": "redline run --rate 5",
           "plan": {"rate": 5.0}, "host": {"hostname": "h"}}  # fmt: skip
    (tmp_path / "run.json").write_text(json.dumps(doc))
    paths = write_reports(tmp_path)
    assert paths == [tmp_path / "report.html"]
    html = paths[0].read_text()
    assert "This report is partial" in html and "samples.npz is missing" in html and "running" in html
    assert figures(html) == {}


def test_not_a_run_folder_is_one_line_error(tmp_path):
    line = assert_one_line_error(run_redline("report", str(tmp_path)))
    assert "not a run folder" in line
    (tmp_path / "run.json").write_text("{not json")
    assert "cannot read" in assert_one_line_error(run_redline("report", str(tmp_path)))


# -- pure chart data prep -------------------------------------------------------------------


def _synthetic(
    rate: float = 100.0, seconds: float = 10.0, slope_ms_per_s: float = 0.0, errors_every: int = 0
) -> Samples:
    """A constant-rate probe whose latency is 10 ms + slope·t (t from the window start)."""
    n = int(rate * seconds)
    start = 1_000_000_000_000
    intended = start + (np.arange(n) * (1e9 / rate)).astype(np.int64)
    t = (intended - start) / 1e9
    latency = ((10.0 + slope_ms_per_s * t) * 1e6).astype(np.int64)
    outcome = np.zeros(n, np.int8)
    status = np.full(n, 200, np.int16)
    if errors_every:
        outcome[::errors_every] = RequestOutcome.HTTP
        status[::errors_every] = 503
    return Samples(
        intended_ns=intended, sent_ns=intended, done_ns=intended + latency, status=status, outcome=outcome,
        bytes_in=np.full(n, 10, np.int32), worker=np.zeros(n, np.int16),
        start_ns=start, measure_from_ns=start, anchor_mono_ns=0, anchor_wall_ns=0,
    )  # fmt: skip


def _probe(samples: Samples | None, verdict=None, rate: float = 100.0) -> ProbeData:
    return ProbeData(
        index=0, rate=rate, phase="bisect", full=False, attempt=0, workers=1, warmup_s=0.0, window_s=10.0,
        started_ns=samples.start_ns if samples else 0, ended_ns=0, interrupted=False, stopped_early=None,
        verdict=verdict, summary=None, health=None, target_cpu_pct=None, generator_cpu_pct=None, dir="p",
        samples=samples,
    )  # fmt: skip


def test_latency_windows_and_paper_fit_line():
    s = _synthetic(slope_ms_per_s=20.0)  # 10 → 210 ms over 10 s: a = 0.02 s/s, degraded
    verdict = judge(s, 100.0, None, PaperCriterion())
    assert verdict.degraded
    series = latency_over_time(_probe(s, verdict))
    assert series is not None and series.t_s.size == 10
    np.testing.assert_allclose(series.t_s, np.arange(10) + 0.5)
    # Window k holds t in [k, k+1): its median latency is 10 + 20·(k + 0.495) ms.
    np.testing.assert_allclose(series.p50_ms, 10 + 20 * (np.arange(10) + 0.495), atol=0.2)
    (fit,) = series.trends
    assert fit.label == "least-squares fit"
    np.testing.assert_allclose(fit.ms, [10.0, 10.0 + 20.0 * 10], atol=0.5)
    assert series.answered == 1000 and series.thinned_to == 1000


def test_latency_robust_trend_line_thinning_and_errors():
    s = _synthetic(rate=1000.0, slope_ms_per_s=5.0, errors_every=100)
    verdict = judge(s, 1000.0, None, RobustCriterion())
    series = latency_over_time(_probe(s, verdict, rate=1000.0), max_points=500)
    assert {t.label for t in series.trends} == {"p50 trend", "p99 trend"}
    p50 = next(t for t in series.trends if t.label == "p50 trend")
    assert (p50.ms[1] - p50.ms[0]) / (p50.t_s[1] - p50.t_s[0]) == pytest.approx(5.0, rel=0.05)
    assert series.error_t_s.size == 100 and series.thinned_to <= 500
    assert series.answered == 10_000  # HTTP errors are answers too (they have a latency)


def test_throughput_and_probe_points_from_synthetic_run(tmp_path):
    s = _synthetic(rate=50.0, seconds=4.0)
    write_samples(tmp_path / "samples.npz", s)
    # only p50 recorded: the other percentiles must come out as gaps, not zeros
    summary = summarize(s, 4.0, 50.0).to_json() | {"latency_ms": {"p50": 10.0}}
    doc = {"schema_version": 1, "command": "run", "status": "complete",
           "plan": {"rate": 50.0, "duration_s": 4.0, "warmup_s": 0.0}, "summary": summary}  # fmt: skip
    (tmp_path / "run.json").write_text(json.dumps(doc))
    run = read_run(tmp_path)
    tp = throughput(run)
    assert tp is not None
    np.testing.assert_array_equal(tp.offered, [50, 50, 50, 50])
    assert tp.achieved[1:].tolist() == [50, 50, 50]  # answers land 10 ms after their send time
    pts = probe_points(run)
    assert pts.rate.tolist() == [50.0] and pts.state == ("n/a",) and np.isnan(pts.p99_ms[0])
