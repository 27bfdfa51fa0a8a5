"""Reports: HTML (self-contained, charts holding data), PNGs, partial folders, the CLI.

The folders are real: a quick `redline capacity` and a short `redline run` against the
calibrated target (1 server x 10 ms: capacity 100/s), written by the commands themselves,
built once per session (tests/test_report_browser.py shares them). The report's figures —
N, each probe's rate, p50 and p99, the limit paragraph — are checked against run.json,
against the probes' samples.npz (percentiles recomputed exactly with numpy) and against
the calibrated capacity. The tests at the end (`test_running_folder_with_only_run_json`,
the chart data prep on synthetic samples) test pure rendering of a document the test
writes itself, and say so.
"""

from __future__ import annotations

import base64
import json
import math
import re
import shutil
from pathlib import Path

import lxml.html
import numpy as np
import pytest

from conftest import GEN_CPUS, TARGET_CPUS, assert_one_line_error, run_redline
from redline.analysis.degradation import PaperCriterion, RobustCriterion, judge
from redline.analysis.run_summary import summarize
from redline.lab.process import start_calibrated
from redline.model.samples import RequestOutcome, Samples
from redline.report import write_reports
from redline.report.charts import latency_over_time, probe_points, throughput
from redline.report.load import ProbeData, read_run
from redline.store import RunFolder
from redline.store.npz import write_samples

CAPACITY = 100.0  # the calibrated target's: 1 server x 10 ms
RUN_RATE = 50.0
GEN = ",".join(map(str, GEN_CPUS))


# -- real run folders, written by the commands ---------------------------------------------


def _command(*args: str, timeout: float) -> Path:
    proc = run_redline(*args, "--json", timeout=timeout)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    out = json.loads(proc.stdout)
    run_dir = Path(out["run_dir"])
    assert Path(out["report"]) == run_dir / "report.html"
    return run_dir


def build_real_folders(base: Path) -> tuple[Path, Path]:
    """(capacity folder, run folder): a quick search (10 % resolution: ~5 probes, ~60 s) and
    a 3 s run at 50/s, both against one calibrated target on the target's CPU."""
    lab = start_calibrated(servers=1, service_ms=10.0, cpus=TARGET_CPUS)  # as conftest's `calibrated`
    try:
        common = ("--url", lab.url + "/", "--cpus", GEN, "--target-pid", str(lab.pid))
        cap = _command("capacity", *common, "--protocol", "quick", "--resolution", "10%",
                       "--results", str(base / "capacity"), timeout=400)  # fmt: skip
        run = _command("run", *common, "--rate", f"{RUN_RATE:g}", "--duration", "3", "--warmup", "0.5",
                       "--results", str(base / "run"), timeout=120)  # fmt: skip
    finally:
        lab.stop()
    return cap, run


def session_folders(tmp_path_factory) -> tuple[Path, Path]:
    """(capacity folder, run folder), built once per session and shared by both test files."""
    base = tmp_path_factory.getbasetemp() / "real-folders"
    done = base / "folders.json"
    if not done.is_file():
        base.mkdir(parents=True, exist_ok=True)
        cap, run = build_real_folders(base)
        done.write_text(json.dumps([str(cap), str(run)]))
    cap, run = (Path(p) for p in json.loads(done.read_text()))
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
    doc = json.loads((cap / "run.json").read_text())
    assert len(doc["probes"]) >= 3  # below N, N, above N at least
    assert {"search", "knee", "throughput", "host"} | {f"latency-{p['index']}" for p in doc["probes"]} <= set(figs)
    for fid, fig in figs.items():
        assert any(points(t) >= 2 for t in fig["data"]), f"{fid}: no trace with data"
    # Search trace: one point per probe, rates as run.
    search_rates = sorted(v for t in figs["search"]["data"] if t.get("mode") == "markers" for v in values(t["y"]))
    assert search_rates == sorted(p["rate"] for p in doc["probes"])
    # Each probe's latency chart carries the trends its verdict fitted (robust: p50 and p99).
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
    doc = json.loads((cap / "run.json").read_text())
    assert {f"latency-{p['index']:02d}-{p['rate']:g}.png" for p in doc["probes"]} <= names
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
    assert np.nanmedian(offered) == pytest.approx(RUN_RATE, rel=0.05)
    doc = json.loads((run / "run.json").read_text())
    assert doc["command_line"] in html.replace("&#39;", "'").replace("&amp;", "&")


def test_partial_capacity_folder_still_renders(folders):
    cap, _ = folders
    doc = json.loads((cap / "run.json").read_text())
    doc["status"] = "interrupted"
    del doc["outcome"], doc["time_taken_s"]
    # The longest probe loses its samples (its verdict's windowed series has a point per
    # second of its window); another one's are truncated mid-write.
    gone = max(doc["probes"], key=lambda p: p["window_s"])
    damaged_probe = next(p for p in doc["probes"] if p["index"] != gone["index"] and p["index"] != 0)
    (cap / gone["dir"] / "samples.npz").unlink()  # missing
    damaged = cap / damaged_probe["dir"] / "samples.npz"
    damaged.write_bytes(damaged.read_bytes()[:5000])  # truncated mid-write
    (cap / "monitor.npz").unlink()
    cut = len(doc["probes"])
    doc["probes"].append({"index": cut, "rate": 350.0, "phase": "bisect"})  # a probe cut off at once
    (cap / "run.json").write_text(json.dumps(doc))

    paths = write_reports(cap)
    html = (cap / "report.html").read_text()
    assert "This report is partial" in html
    for said in ("interrupted", f"{gone['dir']}/samples.npz is missing",
                 f"{damaged_probe['dir']}/samples.npz could not be read", "monitor.npz is missing",
                 "no outcome recorded"):  # fmt: skip
        assert said in html, said
    figs = figures(html)
    assert "host" not in figs and "latency-0" in figs
    # Without samples the verdict's own windowed p50/p99 is drawn instead.
    assert gone["window_s"] >= 6
    assert any(points(t) >= 6 for t in figs[f"latency-{gone['index']}"]["data"])
    assert (cap / "png" / "search.png") in paths


# -- the figures of reports the commands wrote, against run.json and the samples -----------


def window_truth(samples: Samples, window_s: float) -> dict:
    """Straight from the rows, with numpy: the window's scheduled and answered counts and the
    sorted latencies (ms, from the intended send time) of its answered rows."""
    start, end = samples.measure_from_ns, samples.measure_from_ns + int(window_s * 1e9)
    scheduled = (samples.intended_ns >= start) & (samples.intended_ns < end)
    done = (samples.done_ns >= start) & (samples.done_ns < end)
    latency = np.sort(samples.latency_ns[scheduled & samples.completed]) / 1e6
    return {"scheduled": int(scheduled.sum()), "ok_done": int((done & samples.ok).sum()), "latency_ms": latency}


def assert_percentile(reported_ms: float, latency_ms: np.ndarray, p: float) -> None:
    """The reported percentile (an HDR histogram: 3 significant digits) lies between the two
    order statistics every definition of the p-th percentile falls between, widened by the
    histogram's 0.1 % resolution and the figures' rounding (1 µs)."""
    n = latency_ms.size
    k = p / 100 * n
    lo, hi = latency_ms[max(1, math.floor(k)) - 1], latency_ms[min(n, math.ceil(k)) - 1]
    assert lo * 0.999 - 0.001 <= reported_ms <= hi * 1.001 + 0.001, (p, reported_ms, lo, hi)


def _text(dom, element_id: str) -> str:
    return " ".join(dom.get_element_by_id(element_id).text_content().split())


def _probe_rows(dom) -> list[list[str]]:
    rows = dom.xpath('//h2[@id="verdicts"]/following-sibling::div[1]//tbody/tr')
    return [[c.text_content().strip() for c in r.xpath("./td")] for r in rows]


def _ms(cell: str) -> float:
    return float(cell.replace(",", ""))


def test_capacity_report_figures_are_those_of_run_json_and_the_samples(folders):
    cap, _ = folders
    doc = json.loads((cap / "run.json").read_text())
    html = (cap / "report.html").read_text()  # as `redline capacity` wrote it
    dom = lxml.html.fromstring(html)
    folder = RunFolder.open(cap)

    # N: the search found it, within the calibrated capacity, and it is a rate the samples
    # show sustained at full length.
    assert doc["status"] == "complete" and doc["outcome"]["state"] == "found", doc["outcome"]
    n = doc["outcome"]["n"]
    assert 0.9 * CAPACITY <= n <= CAPACITY, doc["outcome"]
    assert _text(dom, "result-n") == f"{n:,.1f} requests/s"
    at_n = next(p for p in doc["probes"] if p["rate"] == n and p["full"] and p["verdict"]["state"] == "stable")
    at_n_truth = window_truth(folder.read_samples(at_n["dir"]), at_n["summary"]["window_s"])
    assert at_n_truth["ok_done"] / at_n["window_s"] == pytest.approx(n, rel=0.02)

    # Each probe's row: rate, offered, achieved, p50, p99 as in run.json, and run.json's as in its samples.
    rows = _probe_rows(dom)
    assert len(rows) == len(doc["probes"])
    for row, p in zip(rows, doc["probes"]):
        summary = p["summary"]
        assert row[0] == str(p["index"]) and row[2] == f"{p['rate']:,.1f}/s" and row[-1] == p["verdict"]["state"]
        lat = summary["latency_ms"]
        assert (row[5], row[6]) == (f"{summary['offered_rps']:,.1f}", f"{summary['achieved_rps']:,.1f}")
        assert (row[7], row[9]) == (f"{lat['p50']:,.2f}", f"{lat['p99']:,.2f}")
        truth = window_truth(folder.read_samples(p["dir"]), summary["window_s"])
        assert summary["scheduled"] == truth["scheduled"] > 0
        assert summary["offered_rps"] == pytest.approx(truth["scheduled"] / summary["window_s"], abs=0.001)
        assert summary["achieved_rps"] == pytest.approx(truth["ok_done"] / summary["window_s"], abs=0.001)
        for key, q in (("p50", 50), ("p99", 99)):
            assert_percentile(_ms(row[7 if key == "p50" else 9]), truth["latency_ms"], q)
            assert_percentile(lat[key], truth["latency_ms"], q)
    # The knee chart plots the same p99s.
    knee = next(t for t in figures(html)["knee"]["data"] if t.get("name") == "p99")
    plotted = sorted(zip(values(knee["x"]), values(knee["y"])))
    assert plotted == sorted((p["rate"], p["summary"]["latency_ms"]["p99"]) for p in doc["probes"])

    # What limits N: the page's paragraph is run.json's, and its figures are the samples'.
    limit = doc["limit"]
    assert _text(dom, "limit-headline") == " ".join(limit["headline"].split())
    assert _text(dom, "limit-paragraph") == " ".join(limit["paragraph"].split())
    assert limit["kind"] == "latency_bound" and limit["paragraph"].startswith(f"N = {n:g}/s is latency-bound")
    achieved = at_n_truth["ok_done"] / at_n["summary"]["window_s"]
    alone = min(p["settle_before"]["last_ms"] for p in doc["probes"] if p.get("settle_before"))
    k = achieved * alone / 1000
    assert (
        f"At N the target served {achieved:,.4g}/s, and one request alone takes {alone:.3g} ms: about {k:.1f} "
        "requests at once" in limit["paragraph"]
    ), limit["paragraph"]
    # One server: about one request served at once (the calibrated truth), 10 ms each alone.
    assert 0.8 <= k <= 1.2 and 10.0 <= alone < 20.0, (k, alone)


def test_run_report_figures_are_those_of_run_json_and_the_samples(folders):
    _, run = folders
    doc = json.loads((run / "run.json").read_text())
    dom = lxml.html.fromstring((run / "report.html").read_text())  # as `redline run` wrote it
    big = [
        " ".join(e.text_content().split()) for e in dom.xpath('//section[@id="result"]//div[contains(@class, "big")]')
    ]
    s, lat = doc["summary"], doc["summary"]["latency_ms"]
    assert big[:2] == [f"{s['offered_rps']:,.1f}/s", f"{s['achieved_rps']:,.1f}/s"]
    assert big[3] == f"{lat['p50']:,.2f} · {lat['p99']:,.2f} ms"
    truth = window_truth(RunFolder.open(run).read_samples(), s["window_s"])
    assert s["window_s"] == 3.0 and s["scheduled"] == truth["scheduled"] == pytest.approx(RUN_RATE * 3, abs=1)
    assert s["offered_rps"] == pytest.approx(truth["scheduled"] / 3.0, abs=0.001) == pytest.approx(RUN_RATE, rel=0.01)
    assert s["achieved_rps"] == pytest.approx(truth["ok_done"] / 3.0, abs=0.001)
    assert_percentile(lat["p50"], truth["latency_ms"], 50)
    assert_percentile(lat["p99"], truth["latency_ms"], 99)
    # 50/s on a 10 ms server: no queue, every answer at least the service time.
    assert truth["latency_ms"][0] >= 10.0
    assert _text(dom, "limit-paragraph") == " ".join(doc["limit"]["paragraph"].split())
    (row,) = _probe_rows(dom)
    # a run's row has no index and phase: rate, window, workers, offered, achieved, p50, p95, p99, errors
    assert row[0] == f"{RUN_RATE:,.1f}/s" and row[5] == f"{lat['p50']:,.2f}" and row[7] == f"{lat['p99']:,.2f}"


# -- pure rendering of documents the test writes itself -------------------------------------


def test_running_folder_with_only_run_json(tmp_path):
    # Pure rendering: a hand-written run.json of a run that has just begun.
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


# -- pure chart data prep (synthetic samples, not a measurement) ----------------------------


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
