"""`--threshold` gates: parsing and judging (pure), and the exit codes of `run` and `capacity`
against a real calibrated target on 127.0.0.1."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

from conftest import GEN_CPUS, assert_one_line_error, run_redline
from redline.analysis.thresholds import (
    ThresholdError,
    evaluate_capacity,
    evaluate_run,
    format_value,
    metric_names,
    parse_threshold,
    parse_thresholds,
)
from redline.model.capacity import CapacityResult, ProbeResult, SearchOutcome
from redline.model.health import GeneratorHealth
from redline.model.run import RunResult
from redline.model.summary import RunSummary
from redline.model.thresholds import ThresholdReport
from redline.model.verdict import Verdict

GEN = ",".join(map(str, GEN_CPUS))

# -- parsing ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, metric, op, value, unit",
    [
        ("p99<250ms", "p99", "<", 250.0, "ms"),
        ("p99 < 250 ms", "p99", "<", 250.0, "ms"),
        ("P99<250MS", "p99", "<", 250.0, "ms"),
        ("p50<=10", "p50", "<=", 10.0, "ms"),  # no unit: ms
        ("p90<0.5s", "p90", "<", 500.0, "ms"),
        ("p95>=1.5s", "p95", ">=", 1500.0, "ms"),
        ("p99.9<250us", "p99.9", "<", 0.25, "ms"),
        ("max<800µs", "max", "<", 0.8, "ms"),
        ("avg<=0.5s", "avg", "<=", 500.0, "ms"),
        ("p99<1e3", "p99", "<", 1000.0, "ms"),
        ("service_p50<12ms", "service_p50", "<", 12.0, "ms"),
        ("service_p99.9<1s", "service_p99.9", "<", 1000.0, "ms"),
        ("service_avg<11", "service_avg", "<", 11.0, "ms"),
        ("service_max<2s", "service_max", "<", 2000.0, "ms"),
        ("lag_p99<5ms", "lag_p99", "<", 5.0, "ms"),
        ("lag_max<0.1s", "lag_max", "<", 100.0, "ms"),
        ("lag_p99.9<20", "lag_p99.9", "<", 20.0, "ms"),
        ("errors<0.1%", "errors", "<", 0.001, "ratio"),
        ("errors<=5%", "errors", "<=", 0.05, "ratio"),
        ("errors==0", "errors", "==", 0.0, "ratio"),
        ("errors<0.01", "errors", "<", 0.01, "ratio"),
        ("errors<=100%", "errors", "<=", 1.0, "ratio"),
        ("error_count==0", "error_count", "==", 0.0, "count"),
        ("error_count<5", "error_count", "<", 5.0, "count"),
        ("achieved>=500", "achieved", ">=", 500.0, "/s"),
        ("achieved>=500/s", "achieved", ">=", 500.0, "/s"),
        ("achieved>490rps", "achieved", ">", 490.0, "/s"),
    ],
)
def test_good_expressions(text, metric, op, value, unit):
    t = parse_threshold(text)
    assert (t.metric, t.op, t.unit) == (metric, op, unit)
    assert t.value == pytest.approx(value)
    assert t.expression == text.strip()


@pytest.mark.parametrize(
    "text, words",
    [
        ("p99", "expected METRIC OP VALUE[UNIT]"),
        ("p99 250ms", "expected METRIC OP VALUE[UNIT]"),
        ("p99=<250ms", "expected METRIC OP VALUE[UNIT]"),
        ("p99<-1ms", "expected METRIC OP VALUE[UNIT]"),
        ("p99<ms", "expected METRIC OP VALUE[UNIT]"),
        ("latency<250ms", "unknown metric 'latency'"),
        ("p98<250ms", "unknown metric 'p98'"),
        ("service_errors<1%", "unknown metric 'service_errors'"),
        ("lag_p95<5ms", "unknown metric 'lag_p95'"),  # the generator's health keeps no p95 of lag
        ("lag_avg<5ms", "unknown metric 'lag_avg'"),
        ("p99<250min", "p99 takes ms, s or us, not 'min'"),
        ("p99<5%", "p99 takes ms, s or us"),
        ("errors<1ms", "errors is a ratio"),
        ("errors<5", "at most 100%"),
        ("errors<101%", "at most 100%"),
        ("achieved>=500ms", "achieved is a rate"),
        ("error_count<1.5", "error_count is a whole number"),
        ("error_count<1%", "error_count is a whole number"),
    ],
)
def test_bad_expressions_name_the_expression(text, words):
    with pytest.raises(ThresholdError) as exc:
        parse_threshold(text)
    msg = str(exc.value)
    assert msg.startswith(f"bad threshold {text!r}"), msg
    assert words in msg, msg


def test_every_metric_listed_parses_and_the_list_is_complete():
    names = metric_names()
    assert len(names) == len(set(names)) == 7 + 7 + 4 + 5
    for name in names:
        assert parse_threshold(f"{name}>=0").metric == name
    assert "lag_p95" not in names and "lag_avg" not in names


def test_comma_separated_and_repeated():
    got = parse_thresholds(["p99<250ms,errors<0.1%", "achieved>=100"])
    assert [t.expression for t in got] == ["p99<250ms", "errors<0.1%", "achieved>=100"]
    with pytest.raises(ThresholdError, match="an empty expression between commas"):
        parse_thresholds(["p99<250ms,"])


def test_n_only_for_capacity():
    (t,) = parse_thresholds(["n>=500"], "capacity")
    assert (t.metric, t.value, t.unit) == ("n", 500.0, "/s")
    assert parse_thresholds(["n>=500/s"], "capacity")[0].value == 500.0
    with pytest.raises(ThresholdError, match=r"bad threshold 'n>=500': n is the capacity search's result; run"):
        parse_thresholds(["n>=500"], "run")


def test_format_value():
    assert format_value(16.379, "ms") == "16.38 ms"
    assert format_value(0.001, "ms") == "1.0 µs"
    assert format_value(0.001, "ratio") == "0.100%"
    assert format_value(1234.5, "/s") == "1,234.5/s"
    assert format_value(3.0, "count") == "3"


# -- judging ----------------------------------------------------------------------------


def _summary(**kw) -> RunSummary:
    d = dict(
        window_s=2.0, scheduled=200, offered_rps=100.0, planned_rps=100.0, achieved_rps=98.0, responses_rps=100.0,
        responses=200, errors=4, error_ratio=0.02, outcomes={"ok": 196, "http": 4}, status_codes={"200": 196, "503": 4},
        latency_ms={"p50": 10.5, "p90": 11.0, "p95": 11.5, "p99": 14.0, "p99.9": 15.0, "mean": 10.8, "max": 16.0},
        service_ms={"p50": 10.2, "p90": 10.6, "p95": 10.9, "p99": 12.0, "p99.9": 12.5, "mean": 10.3, "max": 13.0},
    )  # fmt: skip
    d.update(kw)
    return RunSummary(**d)  # type: ignore[arg-type]


def _health() -> GeneratorHealth:
    return GeneratorHealth(
        generator_bound=False, reasons=(), lag_ms={"p50": 0.1, "p90": 0.2, "p99": 0.9, "p99.9": 1.5, "max": 2.5},
        send_lag_ms={}, late_share=0.0, workers=(), cap_hits=0, connection_cap=100, in_flight_max=3, backlog_max=0,
    )  # fmt: skip


def _run(summary: RunSummary | None = None) -> RunResult:
    return RunResult(status="complete", summary=summary or _summary(), health=_health())


@pytest.mark.parametrize(
    "text, measured, passed",
    [
        ("p50<11ms", 10.5, True),
        ("p90<=11", 11.0, True),
        ("p95<11ms", 11.5, False),
        ("p99<0.015s", 14.0, True),
        ("p99.9<15ms", 15.0, False),
        ("max<=16", 16.0, True),
        ("avg<10.8", 10.8, False),
        ("service_p99<12.5", 12.0, True),
        ("service_avg<=10.3", 10.3, True),
        ("service_max<13", 13.0, False),
        ("lag_p99<1ms", 0.9, True),
        ("lag_max<2ms", 2.5, False),
        ("errors<1%", 0.02, False),
        ("errors<=2%", 0.02, True),
        ("error_count<=4", 4.0, True),
        ("error_count==0", 4.0, False),
        ("achieved>=98", 98.0, True),
        ("achieved>100/s", 98.0, False),
    ],
)
def test_evaluate_run_reads_each_figure(text, measured, passed):
    (check,) = evaluate_run(parse_thresholds([text]), _run()).checks
    assert check.measured == pytest.approx(measured)
    assert check.passed is passed
    assert check.source == "the run window (2 s)" and check.window_s == 2.0
    assert check.reason.endswith(f"{text}: {'passed' if passed else 'BROKEN'}"), check.reason


def test_evaluate_run_counts_what_each_figure_comes_from():
    checks = evaluate_run(parse_thresholds(["p99<20ms", "errors<5%", "achieved>=1", "lag_p99<5ms"]), _run()).checks
    assert [c.samples for c in checks] == [200, 200, 196, 200]
    assert checks[0].reason == (
        "p99 = 14.00 ms over 200 responses (from intended send time) of the run window (2 s); p99<20ms: passed"
    )
    assert "over 196 successful responses" in checks[2].reason


def test_a_missing_figure_fails_never_passes():
    no_answer = _summary(responses=0, latency_ms={}, service_ms={}, outcomes={"timeout": 200}, errors=200)
    (check,) = evaluate_run(parse_thresholds(["p99<1s"]), _run(no_answer)).checks
    assert not check.passed and check.measured is None
    assert check.reason.startswith("p99<1s: not measured — no responses in the run window")
    (check,) = evaluate_run(parse_thresholds(["p99<1s"]), RunResult(status="interrupted")).checks
    assert not check.passed and "without a summary" in check.reason


def test_report_passed_and_broken_round_trip():
    report = evaluate_run(parse_thresholds(["p99<20ms", "errors<1%", "max<1ms"]), _run())
    assert not report.passed and [c.threshold.expression for c in report.broken] == ["errors<1%", "max<1ms"]
    d = report.to_json()
    assert d["passed"] is False and d["broken"] == 2
    back = ThresholdReport.from_json(json.loads(json.dumps(d)))
    assert back == report


def _probe(index: int, rate: float, state: str, full: bool, summary: RunSummary) -> ProbeResult:
    return ProbeResult(
        index=index, rate=rate, phase="confirm" if full else "bisect", full=full, attempt=0, workers=1,
        warmup_s=1.0, window_s=summary.window_s, started_ns=0, ended_ns=0, interrupted=False, stopped_early=None,
        verdict=Verdict(state=state, criterion="robust", reasons=("x",)),  # type: ignore[arg-type]
        summary=summary, health=_health(), dir=f"probes/{index}",
    )  # fmt: skip


def test_evaluate_capacity_uses_n_and_the_full_probe_at_n():
    probes = (
        _probe(0, 400, "stable", False, _summary(window_s=3.0)),
        _probe(1, 450, "degraded", False, _summary(latency_ms={"p99": 900.0})),
        _probe(2, 400, "stable", True, _summary(window_s=10.0, latency_ms={"p99": 12.0})),
    )
    doc = CapacityResult(status="complete", probes=probes, outcome=SearchOutcome("found", 400.0, "ok"))
    checks = evaluate_capacity(parse_thresholds(["n>=400", "n>400", "p99<13ms"], "capacity"), doc).checks
    assert [c.passed for c in checks] == [True, False, True]
    assert checks[0].source == "the search outcome (found)" and checks[0].samples is None
    assert checks[2].measured == 12.0  # the full-length confirmation, not the short trial
    assert checks[2].source == "probe 3 at N = 400/s (full-length confirmation, 10 s)"


def test_evaluate_capacity_without_n_fails_every_gate_and_says_why():
    probes = (_probe(0, 100, "degraded", False, _summary()),)
    doc = CapacityResult(
        status="complete", probes=probes, outcome=SearchOutcome("never_stable", None, "100/s degraded")
    )
    checks = evaluate_capacity(parse_thresholds(["n>=1", "errors<=100%"], "capacity"), doc).checks
    assert [c.passed for c in checks] == [False, False]
    assert all("the search found no N (never_stable: 100/s degraded)" in c.reason for c in checks)


# -- the commands -----------------------------------------------------------------------


def _redline_run(url: str, tmp_path: Path, *args: str) -> tuple[object, Path | None]:
    proc = run_redline(
        "run", "--url", url, "--cpus", GEN, "--results", str(tmp_path), "--no-profile", "--json", *args, timeout=90
    )
    assert "Traceback" not in proc.stderr, proc.stderr
    dirs = [p for p in tmp_path.iterdir() if p.is_dir()]
    return proc, (dirs[0] if len(dirs) == 1 else None)


@pytest.fixture(scope="module")
def target():
    """One calibrated target (4 × 10 ms: 400/s) for the module's runs."""
    from conftest import TARGET_CPUS
    from redline.lab.process import start_calibrated

    lab = start_calibrated(servers=4, service_ms=10, cpus=TARGET_CPUS)
    yield lab
    lab.stop()


def test_run_with_a_threshold_that_holds_exits_0(target, tmp_path):
    proc, run_dir = _redline_run(
        target.url + "/", tmp_path, "--rate", "50", "--duration", "1", "--threshold", "p50<2s,errors<=1%",
        "--threshold", "achieved>=25",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    gates = out["thresholds"]
    assert gates["passed"] is True and gates["broken"] == 0
    assert [c["threshold"]["expression"] for c in gates["checks"]] == ["p50<2s", "errors<=1%", "achieved>=25"]
    p50 = gates["checks"][0]["measured"]
    assert 9.0 <= p50 <= 500.0 and p50 == out["summary"]["latency_ms"]["p50"]
    assert gates["checks"][2]["measured"] == out["summary"]["achieved_rps"]
    assert run_dir is not None
    assert json.loads((run_dir / "run.json").read_text())["thresholds"] == gates


def test_run_with_a_broken_threshold_exits_99_and_says_so(target, tmp_path):
    proc, run_dir = _redline_run(
        target.url + "/", tmp_path, "--rate", "50", "--duration", "1", "--threshold", "p99<0.001ms,errors<1%"
    )
    assert proc.returncode == 99, proc.stderr
    assert run_dir is not None
    doc = json.loads((run_dir / "run.json").read_text())
    assert doc["status"] == "complete"
    broken, held = doc["thresholds"]["checks"]
    assert doc["thresholds"] | {"checks": None} == {"checks": None, "passed": False, "broken": 1}
    assert broken["passed"] is False and broken["measured"] == doc["summary"]["latency_ms"]["p99"] >= 9.0
    assert broken["reason"].endswith("p99<0.001ms: BROKEN") and held["passed"] is True
    html = (run_dir / "report.html").read_text()
    assert 'id="thresholds"' in html and "1 of 2 broken" in html
    assert '<tr class="gate broken"' in html and "<code>p99&lt;0.001ms</code>" in html
    assert f"{broken['measured']:.2f} ms" in html and "&lt; 1.0 µs" in html


def test_run_with_every_request_failing_exits_1_without_thresholds(calibrated, tmp_path):
    lab = calibrated(servers=4, service_ms=10, shed_above=0)  # 503 to every request
    proc, run_dir = _redline_run(lab.url + "/", tmp_path, "--rate", "40", "--duration", "1")
    assert proc.returncode == 1, proc.stderr
    line = assert_one_line_error(proc)
    assert "no request succeeded: 40 errors of 40 requests (HTTP 503 ×40)" in line, line
    assert run_dir is not None and str(run_dir) in line
    doc = json.loads((run_dir / "run.json").read_text())
    assert doc["summary"]["outcomes"] == {"http": 40} and doc.get("thresholds") is None
    assert (run_dir / "report.html").is_file()


def test_no_success_wins_over_a_broken_threshold(calibrated, tmp_path):
    lab = calibrated(servers=4, service_ms=10, shed_above=0)
    proc, run_dir = _redline_run(lab.url + "/", tmp_path, "--rate", "20", "--duration", "1", "--threshold", "errors<1%")
    assert proc.returncode == 1, proc.stderr
    assert run_dir is not None
    (check,) = json.loads((run_dir / "run.json").read_text())["thresholds"]["checks"]
    assert check["measured"] == 1.0 and check["passed"] is False


@pytest.mark.parametrize(
    "expr, words",
    [
        ("p99<250zz", "bad threshold 'p99<250zz': p99 takes ms, s or us, not 'zz'"),
        ("latency<1s", "unknown metric 'latency'"),
        ("n>=100", "n is the capacity search's result; run has none"),
    ],
)
def test_a_bad_threshold_exits_2_before_any_load(tmp_path, expr, words):
    # The target is a listening socket nobody accepts on: every connection redline made
    # would wait in its accept queue, so an empty queue afterwards is the server's own
    # count of requests sent: none, not even a connection (the 30 s run never started).
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)
        url = f"http://127.0.0.1:{listener.getsockname()[1]}/"
        proc = run_redline("run", "--url", url, "--rate", "50", "--duration", "30", "--threshold", expr,
                           "--results", str(tmp_path), timeout=120)  # fmt: skip
        assert proc.returncode == 2
        assert words in assert_one_line_error(proc)
        listener.setblocking(False)
        with pytest.raises(BlockingIOError):
            listener.accept()  # no connection ever arrived
    assert not any(tmp_path.iterdir())  # no run folder


def test_a_bad_threshold_with_the_embedded_target_exits_2(tmp_path):
    proc = run_redline("run", "--threshold", "p99 lt 5ms", "--results", str(tmp_path), timeout=60)
    assert proc.returncode == 2
    assert "bad threshold 'p99 lt 5ms'" in assert_one_line_error(proc)
    assert "calibrated target on" not in proc.stderr  # not even started
    assert not any(tmp_path.iterdir())


def test_junit_folder_must_exist(tmp_path):
    proc = run_redline("run", "--url", "http://127.0.0.1:9/", "--rate", "5", "--threshold", "p99<1s",
                       "--junit", str(tmp_path / "nope" / "j.xml"), "--results", str(tmp_path))  # fmt: skip
    assert proc.returncode == 2 and "its folder does not exist" in assert_one_line_error(proc)


# A short search: a fixed range, 1 s trials (warm-up + window), coarse resolution.
_SHORT = ("--protocol", "quick", "--min", "20", "--max", "60", "--resolution", "50%")


def _capacity(lab, tmp_path: Path, *args: str) -> tuple[int, dict, dict]:
    proc = run_redline(
        "capacity", "--url", lab.url + "/", "--cpus", GEN, "--target-pid", str(lab.pid), "--no-profile",
        "--results", str(tmp_path), "--json", *_SHORT, *args, timeout=240,
    )  # fmt: skip
    assert "Traceback" not in proc.stderr, proc.stderr
    out = json.loads(proc.stdout)
    return proc.returncode, out, json.loads((Path(out["run_dir"]) / "run.json").read_text())


def test_capacity_without_an_answer_keeps_its_own_exit_code(calibrated, tmp_path):
    lab = calibrated(servers=4, service_ms=10, shed_above=0)  # every probe degrades: never stable
    rc, out, doc = _capacity(lab, tmp_path, "--threshold", "errors<1%")
    assert out["outcome"]["state"] == "never_stable" and out["outcome"]["n"] is None
    assert rc == 4  # not 99: the search's own answer is worse
    (check,) = doc["thresholds"]["checks"]
    assert check["passed"] is False and check["measured"] is None
    assert check["reason"].startswith("errors<1%: not measured — the search found no N (never_stable")


@pytest.mark.slow
def test_capacity_threshold_on_n_and_the_probe_at_n(target, tmp_path):
    rc, out, doc = _capacity(target, tmp_path, "--threshold", "n>=1000,p99<2s")
    assert out["outcome"]["state"] == "at_upper_bound" and out["outcome"]["n"] == 60, out["outcome"]
    assert rc == 99
    n_check, p99_check = doc["thresholds"]["checks"]
    assert n_check["measured"] == 60 and n_check["passed"] is False
    assert n_check["reason"] == "n = 60.0/s of the search outcome (at_upper_bound); n>=1000: BROKEN"
    assert (
        p99_check["passed"] is True and p99_check["source"].startswith("probe ") and "N = 60/s" in p99_check["source"]
    )
    html = (Path(out["run_dir"]) / "report.html").read_text()
    assert 'id="thresholds"' in html and "1 of 2 broken" in html and "n from the search outcome" in html
