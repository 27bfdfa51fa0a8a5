"""Each finding type judged on synthetic monitor series of known answer, and the limit
paragraph composed from them: the figures it quotes are the series' own."""

from __future__ import annotations

import numpy as np
import pytest

from redline.analysis.diagnosis import LoadFacts, cpu_cost, diagnose_window
from redline.analysis.limit import decisive_probes, limit_of_run, limit_of_search
from redline.model.capacity import ProbeResult
from redline.model.finding import Evidence, Finding, Severity, Status
from redline.model.health import GeneratorHealth
from redline.model.profile import PackageShare, ProfileSummary
from redline.model.series import MonitorSeries, ProcessInfo
from redline.model.summary import RunSummary
from redline.model.verdict import Verdict

N = 10  # ticks per synthetic window


def series(
    host: list[float],
    procs: list[tuple[ProcessInfo, float]],
    *,
    disk: float | None = None,
    dstate: float = 0.0,
    avail: float = 0.5,
    swap: float = 0.0,
    iowait: float = 0.0,
) -> MonitorSeries:
    """A window of N ticks: each CPU at a constant busy %, each process at a constant % of a core."""
    groups: dict[str, np.ndarray] = {}
    for p, pct in procs:
        for g in p.groups:
            groups[g] = groups.get(g, np.zeros(N, np.float32)) + pct
    total = 8 << 30
    return MonitorSeries(
        interval_s=1.0,
        t_ns=np.arange(1, N + 1, dtype=np.int64) * 1_000_000_000,
        cpu_pct=np.tile(np.array(host, np.float32), (N, 1)),
        disk_names=("sda",) if disk is not None else (),
        disk_busy_pct=np.full((N, 1 if disk is not None else 0), disk or 0.0, np.float32),
        mem_total_bytes=total,
        mem_used_bytes=np.full(N, int(total * (1 - avail)), np.int64),
        mem_available_bytes=np.full(N, int(total * avail), np.int64),
        net_sent_Bps=np.zeros(N),
        net_recv_Bps=np.zeros(N),
        groups=groups,
        procs=tuple(p for p, _ in procs),
        proc_cpu_pct=np.array([[pct for _, pct in procs]] * N, np.float32).reshape(N, len(procs)),
        start_ns=0,
        proc_dstate=np.array([[dstate if "target" in p.groups else 0.0 for p, _ in procs]] * N, np.float32).reshape(
            N, len(procs)
        ),
        iowait_cores=np.full(N, iowait, np.float32),
        swap_in_Bps=np.full(N, swap),
        swap_out_Bps=np.zeros(N),
    )


def proc(pid: int, name: str, group: str = "target", cpus: tuple[int, ...] = (0, 1), threads: int = 4) -> ProcessInfo:
    return ProcessInfo(pid, name, f"{name} --serve", (group,), threads, cpus)


def load(
    achieved: float = 1000.0,
    mean_ms: float = 5.0,
    *,
    errors: int = 0,
    codes: dict[str, int] | None = None,
    generator_bound: bool = False,
    degraded: bool | None = False,
    gen_cpus: tuple[int, ...] = (0,),
) -> LoadFacts:
    return LoadFacts(
        offered_rps=achieved,
        achieved_rps=achieved,
        mean_ms=mean_ms,
        p50_ms=mean_ms,
        p99_ms=mean_ms * 3,
        errors=errors,
        error_ratio=errors / max(1.0, achieved * N),
        status_codes=codes or {"200": int(achieved * N)},
        generator_bound=generator_bound,
        generator_reasons=("schedule lag p99 48.0 ms > 10 ms",) if generator_bound else (),
        lag_p99_ms=48.0 if generator_bound else 0.1,
        generator_cpus=gen_cpus,
        degraded=degraded,
    )


def ids(findings: tuple[Finding, ...]) -> list[str]:
    return [f.id for f in findings]


# -- one case per finding type --


def test_target_pinned_to_its_one_cpu_and_busy_is_cpu_saturated_with_cost_and_ceiling():
    # The demo's case: the identity service's two workers share CPU 1 at 93 %; the generator has CPU 0.
    s = series(
        [35.0, 95.0],
        [
            (proc(10, "python", cpus=(1,)), 47.0),
            (proc(11, "python", cpus=(1,)), 46.0),
            (proc(20, "redline", "generator", cpus=(0,)), 30.0),
        ],
    )
    found = diagnose_window(s, load(achieved=970.0))
    assert ids(found)[0] == "target.cpu_saturated"
    f = found[0]
    assert f.figures["cpus"] == 1 and f.figures["busy_share"] == pytest.approx(0.93, abs=1e-3)
    assert f.figures["cpu_ms_per_request"] == pytest.approx(0.93 * 1000 / 970, rel=1e-3)
    assert f.figures["ceiling_rps"] == pytest.approx(970 / 0.93, rel=1e-3)
    assert f.figures["share_of_ceiling"] == pytest.approx(0.93, abs=1e-3)
    assert "one worker process per CPU" in f.fix
    # not single-threaded: each worker is bound to one CPU by its affinity, not by its threading
    assert "bottleneck.single_thread" not in ids(found)


def test_one_worker_pinned_at_a_core_while_cpus_it_may_use_idle_is_single_threaded():
    s = series(
        [30.0, 100.0],
        [(proc(10, "python", threads=1), 99.0), (proc(20, "redline", "generator", cpus=(0,)), 28.0)],
    )
    found = diagnose_window(s, load(achieved=520.0, degraded=True))
    assert ids(found)[0] == "bottleneck.single_thread"
    assert found[0].figures["median_idle_cores"] == pytest.approx(0.7, abs=0.01)
    assert "more worker processes" in found[0].fix
    assert "target.cpu_saturated" not in ids(found)  # one of two CPUs: 50 %


def test_a_starved_generator_is_blamed_not_the_target():
    s = series(
        [100.0, 40.0],
        [
            (proc(10, "python"), 40.0),
            (proc(20, "redline", "generator", cpus=(0,)), 35.0),
            (proc(30, "hog", "other"), 65.0),
        ],
    )
    found = diagnose_window(s, load(generator_bound=True, degraded=None))
    assert ids(found)[0] == "generator.bound"
    assert any("other processes took" in e.text for e in found[0].evidence)
    limit = limit_of_run(found, None)
    assert limit is not None and limit.kind == "generator"


def test_database_as_the_hot_process_is_named():
    s = series(
        [60.0, 70.0],
        [(proc(10, "keystone"), 40.0), (proc(11, "mariadbd", cpus=(0, 1)), 85.0)],
    )
    found = diagnose_window(s, load(achieved=50.0, degraded=True))
    db = next(f for f in found if f.id == "target.database_hot")
    assert db.figures["name"] == "mariadbd" and db.severity == Severity.HIGH
    assert db.figures["cpu_ms_per_request"] == pytest.approx(17.0)


def test_processes_waiting_on_the_disk_are_io_bound():
    s = series([20.0, 15.0], [(proc(10, "postgres"), 10.0)], disk=93.0, dstate=0.6, iowait=0.5)
    found = diagnose_window(s, load(achieved=40.0, degraded=True))
    io = next(f for f in found if f.id == "host.io_wait")
    assert io.figures["dstate_share"] == pytest.approx(0.6) and io.figures["disk_sda_busy_pct"] == pytest.approx(93.0)
    assert "target.latency_bound" not in ids(found)  # the disk is the saturated resource


def test_memory_pressure_and_swapping():
    s = series([50.0, 50.0], [(proc(10, "python"), 60.0)], avail=0.02, swap=5e6)
    found = diagnose_window(s, load(degraded=True))
    assert ids(found)[0] == "host.memory_pressure"
    assert len(found[0].evidence) == 2  # low memory and the swap rate


def test_nothing_saturated_and_degraded_is_latency_bound_with_the_pool_size():
    # The calibrated target: 4 servers sleeping 10 ms, CPU idle.
    s = series([12.0, 4.0], [(proc(10, "python", cpus=(1,)), 3.0), (proc(20, "redline", "generator", cpus=(0,)), 10.0)])
    found = diagnose_window(s, load(achieved=392.0, mean_ms=10.2, degraded=True))
    assert ids(found) == ["target.latency_bound"]
    assert found[0].figures["in_flight"] == pytest.approx(4.0, abs=0.01)
    assert "~4 requests in flight" in found[0].title


def test_nothing_saturated_at_a_healthy_rate_is_headroom_never_silence():
    s = series([12.0, 10.0], [(proc(10, "python", cpus=(1,)), 10.0)])
    found = diagnose_window(s, load(achieved=100.0, degraded=None))
    assert ids(found) == ["target.headroom"]
    assert found[0].figures["ceiling_rps"] == pytest.approx(1000.0)  # 1 ms per request on 1 CPU


def test_errors_are_a_finding_with_their_codes():
    s = series([12.0, 10.0], [(proc(10, "python"), 10.0)])
    found = diagnose_window(s, load(errors=500, codes={"200": 9500, "503": 500}, degraded=True))
    err = next(f for f in found if f.id == "target.errors")
    assert "503 × 500" in err.evidence[0].text


def test_target_cpus_shared_with_other_work():
    s = series(
        [97.0, 96.0],
        [(proc(10, "python"), 100.0), (proc(20, "redline", "generator", cpus=(0, 1)), 90.0)],
    )
    found = diagnose_window(s, load(degraded=True, gen_cpus=(0, 1)))
    shared = next(f for f in found if f.id == "host.cpu_shared")
    assert any("generator used 0.90 cores" in e.text for e in shared.evidence)


def test_generator_near_its_limit_is_a_warning_only():
    s = series(
        [95.0, 30.0], [(proc(10, "python", cpus=(1,)), 30.0), (proc(20, "redline", "generator", cpus=(0,)), 95.0)]
    )
    found = diagnose_window(s, load(degraded=None))
    near = next(f for f in found if f.id == "generator.near_limit")
    assert near.severity == Severity.LOW and ids(found)[0] == "target.headroom"


def test_an_empty_window_still_says_something():
    empty = series([0.0], [])
    cut = empty.between(100 * 10**9, 200 * 10**9)
    assert ids(diagnose_window(cut, load())) == ["target.unmonitored"]


def test_cpu_cost_needs_a_monitored_target():
    s = series([50.0, 50.0], [(proc(20, "redline", "generator"), 50.0)])
    assert cpu_cost(s, load()) is None


# -- the limit of a search --


def _probe(index: int, rate: float, state: str, findings: tuple[Finding, ...], full: bool = True, profile=None):
    summary = RunSummary(
        10.0, int(rate * 10), rate, rate, rate, rate, int(rate * 10), 0, 0.0, latency_ms={"mean": 5.0, "p50": 5.0}
    )
    health = GeneratorHealth(False, (), {"p99": 0.1}, {"p99": 0.1}, 0.0, (), 0, 1000, 4, 0)
    return ProbeResult(
        index=index, rate=rate, phase="confirm", full=full, attempt=0, workers=1, warmup_s=2, window_s=12,
        started_ns=0, ended_ns=1, interrupted=False, stopped_early=None,
        verdict=Verdict(state, "robust", (), {}), summary=summary, health=health, dir=f"probes/{index}",
        findings=findings, profile=profile,
    )  # fmt: skip


def _saturated(share: float, achieved: float) -> Finding:
    s = series([30.0, share * 100], [(proc(10, "python", cpus=(1,)), share * 100)])
    return diagnose_window(s, load(achieved=achieved))[0]


def test_decisive_probes_are_the_full_probe_at_n_and_the_first_degraded_above():
    probes = [
        _probe(0, 100, "stable", (), full=False),
        _probe(1, 1000, "degraded", (), full=False),
        _probe(2, 980, "stable", (), full=False),
        _probe(3, 990, "degraded", (), full=False),
        _probe(4, 980, "stable", ()),
        _probe(5, 990, "degraded", ()),
    ]
    at_n, over = decisive_probes(probes, 980)
    assert at_n is not None and at_n.index == 4 and over is not None and over.index == 5


def test_the_limit_quotes_the_cost_at_n_the_ceiling_and_links_the_audit_and_hot_code():
    at_n = _saturated(0.93, 980.0)
    over = _saturated(0.99, 1000.0)
    profile = ProfileSummary(
        pids=(10,), rate_hz=100, duration_s=12.0, samples=1200, idle_share=None, file="probes/4/profile.txt.gz",
        flamegraph=None, top_self=(), top_total=(),
        packages=(PackageShare("bcrypt", 0.81, 0.81), PackageShare("python (stdlib)", 0.05, 0.9)),
    )  # fmt: skip
    probes = [_probe(4, 980, "stable", (at_n,), profile=profile), _probe(5, 1000, "degraded", (over,))]
    audit = (
        Finding(
            "keystone.password_hash_rounds", "Keystone password hash cost", Severity.MEDIUM, Status.FAIL,
            (Evidence("/etc/keystone/keystone.conf", "password_hash_rounds = 12"),), fix="lower it",
        ),
        Finding("host.swappiness", "swappiness", Severity.LOW, Status.FAIL),
    )  # fmt: skip
    limit = limit_of_search(probes, 980.0, audit, unit="token issue")
    assert limit is not None and limit.kind == "target_cpu" and limit.probe == 4
    assert limit.figures["at_n"]["busy_share"] == pytest.approx(0.93, abs=1e-3)
    assert "93 % busy at N" in limit.paragraph.replace("93%", "93 %")
    assert "per token issue" in limit.paragraph and "ceiling near 1,054/s" in limit.paragraph
    assert limit.hot_code is not None and limit.hot_code.startswith("bcrypt")
    assert any("hash" in a for a in limit.advice) and "trade-off" in limit.paragraph
    assert [a.id for a in limit.audit] == ["keystone.password_hash_rounds"]  # the unrelated check is not linked


def test_a_search_without_stable_or_degraded_probes_is_limited_by_what_the_last_probe_found():
    s = series([100.0, 40.0], [(proc(20, "redline", "generator", cpus=(0,)), 99.0)])
    starved = diagnose_window(s, load(generator_bound=True))
    limit = limit_of_search([_probe(0, 400, "inconclusive", ()), _probe(1, 400, "inconclusive", starved)], None)
    assert limit is not None and limit.kind == "generator" and limit.probe == 1
    assert limit_of_search([], None) is None


def test_a_latency_bound_limit_counts_the_requests_in_flight_at_n_not_in_the_overload():
    calm = series([12.0, 4.0], [(proc(10, "python", cpus=(1,)), 3.0)])
    at_n = diagnose_window(calm, load(achieved=392.0, mean_ms=10.2, degraded=False))
    over = diagnose_window(calm, load(achieved=400.0, mean_ms=150.0, degraded=True))  # queueing inflates it
    limit = limit_of_search([_probe(4, 392, "stable", at_n), _probe(5, 400, "degraded", over)], 392.0)
    assert limit is not None and limit.kind == "latency_bound"
    assert limit.figures["in_flight_at_n"] == pytest.approx(392 * 10.2 / 1000, abs=0.01)  # Little's law at N
    # served at once: N × the lowest stable p50 (5 ms in _probe): the pool, without the queue
    assert limit.figures["concurrency_at_n"] == pytest.approx(392 * 5.0 / 1000, abs=0.01)
    assert limit.headline == "latency-bound: ~2 requests served at once at N, nothing saturates"
