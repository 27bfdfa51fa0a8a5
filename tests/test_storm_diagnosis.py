"""Where a storm's time goes: host CPU by group per phase, its findings, and the phase that grows with N.

Synthetic monitor series (numpy arrays built here) and synthetic marks: no hypervisor.
"""

from __future__ import annotations

import json
import math
import time

import numpy as np
import pytest

from redline.analysis.storm_diagnosis import (
    PhaseWindow,
    StormDiagnosis,
    diagnose_storm,
    fastest_growing_phase,
    phase_cpu,
    phase_windows,
)
from redline.jobs.scale import diagnose_scale_folder
from redline.jobs.storm import diagnose_storm_folder, run_storm_job
from redline.model.finding import Evidence, Finding, Severity
from redline.model.series import MonitorSeries, ProcessInfo
from redline.model.storm import ScalePoint, ScaleResult, StormRunResult
from redline.model.storm_diagnosis import PhaseCpu
from redline.store import RunFolder
from redline.storm.analysis import summarise
from redline.storm.model import MARKS, PHASES, InstanceSpec, StormPlan, StormResult
from redline.storm.probes import SshOutcome

NAN = math.nan
S = 1_000_000_000_000  # the storm's start, CLOCK_MONOTONIC ns
GROUPS = ("libvirtd", "qemu", "dnsmasq", "driver")


def _series(
    cpu: np.ndarray, procs: list[tuple[ProcessInfo, np.ndarray]], interval_s: float = 1.0, labels=GROUPS
) -> MonitorSeries:
    """One row per second from the storm's start: row k covers (S + k s, S + (k + 1) s]."""
    n = cpu.shape[0]
    pct = np.column_stack([v for _, v in procs]).astype(np.float32) if procs else np.zeros((n, 0), np.float32)
    groups = {}
    for g in labels:
        cols = [i for i, (p, _) in enumerate(procs) if g in p.groups]
        groups[g] = np.nansum(pct[:, cols], axis=1) if cols else np.full(n, np.nan, np.float32)
    return MonitorSeries(
        interval_s=interval_s,
        t_ns=S + (np.arange(n, dtype=np.int64) + 1) * int(interval_s * 1e9),
        cpu_pct=cpu.astype(np.float32),
        disk_names=(),
        disk_busy_pct=np.zeros((n, 0), np.float32),
        mem_total_bytes=8 << 30,
        mem_used_bytes=np.full(n, 1 << 30, np.int64),
        mem_available_bytes=np.full(n, 7 << 30, np.int64),
        net_sent_Bps=np.zeros(n),
        net_recv_Bps=np.zeros(n),
        groups=groups,
        procs=tuple(p for p, _ in procs),
        proc_cpu_pct=pct,
        start_ns=S,
    )


def _proc(pid: int, name: str, *groups: str, threads: int = 4) -> ProcessInfo:
    return ProcessInfo(pid, name, f"/usr/sbin/{name}", tuple(groups), threads)


# 4 instances: create 0 → 6 s, ping → 10 s, ssh → 12 s, pre-delete → 13 s, delete → 14 s.
MARKS_4 = np.array([
    [0.0, 5.0, 9.0, 11.0, 13.0, 14.0],
    [0.0, 5.5, 9.5, 11.5, 13.0, 14.0],
    [0.0, 6.0, 10.0, 12.0, 13.0, 14.0],
    [0.0, 6.0, 10.0, 12.0, 13.0, 14.0],
])  # fmt: skip
ROWS = 15
PING = slice(5, 10)  # the rows covering the ping window, 5–10 s
PING_ROWS = (np.arange(ROWS) >= 5) & (np.arange(ROWS) < 10)


def _quiet(n: int = ROWS) -> np.ndarray:
    return np.full((n, 2), 5.0)


def _by_id(findings, fid):
    return [f for f in findings if f.id == fid]


def _diagnose(series, marks=MARKS_4, **kw):
    return diagnose_storm(series, marks, S, MARKS, PHASES, **kw)


def test_phase_windows_run_from_first_entry_to_last_exit():
    marks = np.array([
        [0.0, 2.0, 5.0, 6.0, 7.0, 8.0],
        [1.0, 3.0, NAN, NAN, 20.0, 21.0],  # never answered ping: waits in ping until cleanup deletes it
        [1.0, NAN, NAN, NAN, NAN, NAN],  # never ran, never deleted: in create until the storm's end
    ])  # fmt: skip
    w = {x.phase: x for x in phase_windows(marks, MARKS, PHASES, end_s=30.0)}
    assert (w["create"].start_s, w["create"].end_s, w["create"].entered) == (0.0, 30.0, 3)
    assert (w["ping"].start_s, w["ping"].end_s, w["ping"].entered) == (2.0, 20.0, 2)
    assert w["ping"].mean_waiting == pytest.approx(((5 - 2) + (20 - 3)) / 18)
    assert (w["ssh"].start_s, w["ssh"].end_s, w["ssh"].entered) == (5.0, 6.0, 1)
    assert (w["delete"].start_s, w["delete"].end_s, w["delete"].entered) == (7.0, 21.0, 2)
    # without the storm's end, an instance that never left a phase has no exit: not counted
    assert {x.phase: x.end_s for x in phase_windows(marks, MARKS, PHASES)}["create"] == 3.0
    # a phase nobody spent time in has no window
    zero = np.array([[0.0, 1.0, 1.0, 2.0, 3.0, 4.0]])
    assert [x.phase for x in phase_windows(zero, MARKS, PHASES)] == ["create", "ssh", "delete"]
    # ping not observed: SSH attempts start once the instance runs, so ssh starts there
    no_ping = np.array([[0.0, 2.0, NAN, 6.0, 7.0, 8.0]])
    w = {x.phase: x for x in phase_windows(no_ping, MARKS, PHASES, skipped=("ping",))}
    assert list(w) == ["create", "ssh", "delete"] and (w["ssh"].start_s, w["ssh"].end_s) == (2.0, 6.0)
    both = phase_windows(no_ping, MARKS, PHASES, skipped=("ping", "ssh"))
    assert [(x.phase, x.start_s) for x in both] == [("create", 0.0), ("delete", 7.0)]


def test_phase_cpu_weights_partial_ticks_and_counts_each_process_once():
    cpu = np.array([[50.0, 50.0], [100.0, 100.0], [0.0, 0.0]])
    forked = _proc(11, "rpc-libvirtd", "libvirtd", "qemu")  # libvirtd forked it, then it exec'd qemu
    ssh = _proc(12, "ssh", "driver", "dnsmasq")  # in two groups: the specific one wins over the driver's tree
    s = _series(cpu, [(forked, np.array([40.0, 80.0, 0.0])), (ssh, np.array([10.0, 10.0, 0.0]))])
    # 0.5–2.0 s: half of row 0 (1.0 core busy) and all of row 1 (2.0 cores): weights 0.5 and 1
    pc = phase_cpu(s, PhaseWindow("create", 0.5, 2.0, 1, 1.0), S)
    assert pc is not None
    assert pc.groups["qemu"] == pytest.approx((0.5 * 0.4 + 0.8) / 1.5, abs=1e-3)
    assert pc.groups["libvirtd"] == 0.0 and pc.groups["driver"] == 0.0
    assert pc.groups["dnsmasq"] == pytest.approx(0.1, abs=1e-3)
    busy = (0.5 * 1.0 + 2.0) / 1.5
    assert pc.idle_cores == pytest.approx(2 - busy, abs=1e-3)
    assert pc.groups["other"] == pytest.approx(busy - pc.groups["qemu"] - 0.1, abs=2e-3)
    assert pc.busiest == "other" and pc.cpus == 2 and list(pc.groups) == [*GROUPS, "other"]
    assert phase_cpu(s, PhaseWindow("late", 10.0, 12.0, 1, 1.0), S) is None  # no sample in the window


def test_libvirtd_pinned_during_create_is_a_serialising_daemon():
    cpu = _quiet()
    cpu[:6] = [60.0, 50.0]  # 1.1 cores busy: 0.9 idle on a 2-CPU host
    libvirtd = np.zeros(ROWS)
    libvirtd[:6] = 100.0
    s = _series(
        cpu,
        [
            (_proc(100, "libvirtd", "libvirtd", threads=17), libvirtd),
            (_proc(200, "qemu-system-x86_64", "qemu"), np.full(ROWS, 2.0)),
        ],
    )
    d = _diagnose(s, virt_type="qemu")
    create = next(pc for pc in d.phase_cpu if pc.phase == "create")
    assert create.busiest == "libvirtd" and create.groups["libvirtd"] == pytest.approx(1.0, abs=0.01)
    assert create.idle_cores == pytest.approx(0.9, abs=0.01) and create.mean_waiting > 3
    (f,) = _by_id(d.findings, "storm.serialising_daemon")
    assert f.figures["phase"] == "create" and f.figures["name"] == "libvirtd"
    assert "libvirtd serialises create" in f.title and f.severity is Severity.HIGH
    assert "max_workers" in f.fix and "max_client_requests" in f.fix
    text = " ".join(e.text for e in f.evidence)
    assert "0.90 of its 2 CPUs idle" in text and "instances were waiting in create" in text
    assert f.why and f.source
    # the later phases, with a quiet host, are latency-bound: no phase is left without a finding
    assert {g.figures["phase"] for g in _by_id(d.findings, "storm.latency_bound")} == {"ping", "ssh", "delete"}


# The OpenStack lab's groups: one per service group, then libvirtd, qemu and redline's own.
LAB_GROUPS = ("keystone", "nova-api", "nova-conductor", "nova-scheduler", "nova-compute", "placement", "mariadb",
              "rabbitmq", "libvirtd", "qemu", "driver")  # fmt: skip


def _pinned_in_create(proc: ProcessInfo) -> StormDiagnosis:
    cpu = _quiet()
    cpu[:6] = [60.0, 50.0]
    busy = np.zeros(ROWS)
    busy[:6] = 100.0
    s = _series(cpu, [(proc, busy), (_proc(200, "qemu-system-x86_64", "qemu"), np.full(ROWS, 2.0))], labels=LAB_GROUPS)
    return _diagnose(s, virt_type="qemu", labels={"ssh": "guest up (console marker GUEST-UP)"})


@pytest.mark.parametrize(
    ("proc", "who", "fix"),
    [
        (_proc(301, "python3", "nova-conductor"), "nova-conductor (python3)", "[conductor] workers"),
        (_proc(302, "nova-scheduler", "nova-scheduler"), "nova-scheduler", "[scheduler] workers"),
        (_proc(401, "mariadbd", "mariadb"), "mariadb (mariadbd)", "innodb_buffer_pool_size"),
        (_proc(501, "beam.smp", "rabbitmq"), "rabbitmq (beam.smp)", "RabbitMQ"),
        (_proc(601, "uwsgi", "placement"), "placement (uwsgi)", "Placement"),  # by its group, not as Keystone's uWSGI
    ],
)
def test_a_lab_service_pinned_is_named_by_its_group_with_its_own_fix(proc, who, fix):
    d = _pinned_in_create(proc)
    (f,) = _by_id(d.findings, "storm.serialising_daemon")
    assert f.title.startswith(f"{who} serialises create:") and fix in f.fix
    assert f.figures["service"] == proc.groups[0] and f.figures["name"] == proc.name
    create = next(pc for pc in d.phase_cpu if pc.phase == "create")
    assert create.busiest == proc.groups[0] and list(create.groups)[: len(LAB_GROUPS)] == list(LAB_GROUPS)
    # a phase the driver names otherwise is called so in its findings, and gets no sshd advice
    ssh = [g for g in _by_id(d.findings, "storm.latency_bound") if g.figures["phase"] == "ssh"]
    assert ssh and ssh[0].title.startswith("guest up (console marker GUEST-UP) is latency-bound")
    assert "sshd" not in ssh[0].why + ssh[0].fix


def test_both_cpus_busy_with_qemu_is_a_saturated_host_naming_qemu():
    cpu = _quiet()
    cpu[PING] = [98.0, 98.0]
    guests = [np.where(PING_ROWS, 42.5, 1.0) for _ in range(4)]
    s = _series(
        cpu,
        [(_proc(300 + i, "qemu-system-x86_64", "qemu"), g) for i, g in enumerate(guests)]
        + [(_proc(100, "libvirtd", "libvirtd"), np.full(ROWS, 3.0))],
    )
    d = _diagnose(s, virt_type="qemu")
    (f,) = _by_id(d.findings, "storm.host_cpu_saturated")
    assert f.figures["phase"] == "ping" and f.figures["busiest"] == "qemu"
    assert "most by qemu (1.70 cores)" in f.title and "98 % busy" in f.title
    assert "KVM instead of TCG" in f.fix and "fewer guests per core" in f.fix
    ping = next(pc for pc in d.phase_cpu if pc.phase == "ping")
    assert ping.busiest == "qemu" and ping.groups["qemu"] == pytest.approx(1.7, abs=0.01)
    assert ping.idle_cores == pytest.approx(0.04, abs=0.01)
    # under KVM already, "use KVM" is no advice
    (k,) = _by_id(_diagnose(s, virt_type="kvm").findings, "storm.host_cpu_saturated")
    assert "KVM" not in k.fix


def test_a_phase_saturated_most_of_its_window_is_saturated_despite_its_tail():
    # seen on a real storm of 2 under TCG: 100 % for 3.5 of ping's 5 s, then 75 % and 50 %: 89 % on average
    cpu = _quiet()
    cpu[5:8] = [100.0, 100.0]
    cpu[8] = [75.0, 75.0]
    cpu[9] = [50.0, 50.0]
    guests = [np.where(PING_ROWS, 85.0, 1.0) for _ in range(2)]
    s = _series(cpu, [(_proc(300 + i, "qemu-system-x86_64", "qemu"), g) for i, g in enumerate(guests)])
    d = _diagnose(s, virt_type="qemu")
    ping = next(pc for pc in d.phase_cpu if pc.phase == "ping")
    assert ping.busy_cores / ping.cpus < 0.9 and ping.saturated_share == pytest.approx(0.6)
    (f,) = _by_id(d.findings, "storm.host_cpu_saturated")
    assert f.figures["phase"] == "ping" and "for 60% of the phase" in f.evidence[0].text
    assert not [g for g in _by_id(d.findings, "storm.latency_bound") if g.figures["phase"] == "ping"]


def test_a_saturated_host_taken_by_other_processes_says_so():
    cpu = _quiet()
    cpu[PING] = [99.0, 99.0]
    s = _series(cpu, [(_proc(300, "qemu-system-x86_64", "qemu"), np.full(ROWS, 30.0))])
    (f,) = _by_id(_diagnose(s).findings, "storm.host_cpu_saturated")
    assert f.figures["busiest"] == "other" and "quiet host" in f.fix


def test_an_idle_host_is_latency_bound_in_every_phase():
    s = _series(_quiet(), [(_proc(100, "libvirtd", "libvirtd"), np.full(ROWS, 2.0))])
    d = _diagnose(s)
    assert [pc.phase for pc in d.phase_cpu] == ["create", "ping", "ssh", "delete"]
    assert [f.id for f in d.findings] == ["storm.latency_bound"] * 4
    f = d.findings[1]
    assert f.severity is Severity.INFO and "ping is latency-bound" in f.title
    assert "1.9 of 2 CPUs idle" in f.title and "guests' own boot" in f.why and f.fix


def test_a_guest_at_one_core_on_an_unsaturated_host_is_guests_cpu_bound():
    cpu = _quiet()
    cpu[6:10] = [60.0, 55.0]
    guest = np.where((np.arange(ROWS) >= 6) & (np.arange(ROWS) < 10), 100.0, 1.0)  # 4 of the 5 ping samples
    s = _series(cpu, [(_proc(300, "qemu-system-x86_64", "qemu"), guest)])
    d = _diagnose(s, virt_type="qemu")
    (f,) = _by_id(d.findings, "storm.guests_cpu_bound")
    assert f.figures["phase"] == "ping" and f.figures["pinned_guests"] == 1 and "KVM" in f.fix
    assert not _by_id(d.findings, "storm.serialising_daemon")  # a guest's vCPU is not a daemon


def test_redline_pinned_is_the_driver_not_a_daemon():
    cpu = _quiet()
    cpu[:6] = [70.0, 40.0]
    driver = np.where(np.arange(ROWS) < 6, 99.0, 1.0)
    s = _series(cpu, [(_proc(42, "redline", "driver", threads=6), driver)])
    d = _diagnose(s)
    (f,) = _by_id(d.findings, "storm.driver_cpu_bound")
    assert f.figures["pid"] == 42 and f.figures["phase"] == "create"
    assert not _by_id(d.findings, "storm.serialising_daemon")


def test_no_monitor_is_said_not_silenced():
    d = diagnose_storm(None, MARKS_4, S, MARKS, PHASES)
    assert d.phase_cpu == () and [f.id for f in d.findings] == ["storm.unmonitored"]


# -- scale --


def _scale(points) -> ScaleResult:
    return ScaleResult(points=tuple(points), status="complete")


def test_fastest_growing_phase_names_ping_with_its_figures():
    ping = {1: 5.0, 2: 9.0, 4: 18.0, 8: 35.5}
    create = {1: 2.0, 2: 2.1, 4: 2.3, 8: 2.6}
    points = [
        ScalePoint(n, 0, 1.0 + create[n] + ping[n] + 2.0, f"storm-{n}",
                   {"create": create[n], "ping": ping[n], "ssh": 2.0, "delete": NAN if n == 2 else 1.0})
        for n in (1, 2, 4, 8)
    ]  # fmt: skip
    pc = PhaseCpu("ping", 3.0, 40.0, {"libvirtd": 0.02, "qemu": 1.75, "other": 0.2}, 0.03, "qemu", 2, 7.5)
    f = fastest_growing_phase(_scale(points), (pc,))
    assert f is not None and f.id == "scale.fastest_growing_phase"
    assert f.figures["phase"] == "ping" and f.severity is Severity.HIGH  # 7.1× of a serial 8×
    assert f.title == "ping grows fastest with the storm's size: 7.1× from 1 to 8"
    text = " ".join(e.text for e in f.evidence)
    assert "ping grew 7.1× from 1 to 8 instances" in text and "create 1.3×" in text
    assert "s per extra instance" in text and "in the storm of 8" in text and "qemu 1.75" in text
    assert "KVM" in f.fix
    rows = {r["phase"]: r for r in f.figures["phases"]}
    assert rows["ping"]["ratio"] == pytest.approx(7.1) and rows["ssh"]["ratio"] == 1.0
    assert rows["ping"]["slope_s"] > rows["create"]["slope_s"] > rows["ssh"]["slope_s"] - 1e-9
    # rounds: the median of each size's storms
    again = [*points, ScalePoint(8, 1, 50.0, "storm-8b", {"ping": 36.5, "create": 2.6})]
    g = fastest_growing_phase(_scale(again))
    assert g is not None and g.figures["phases"][0]["hi_s"] == pytest.approx(36.0)


def test_fastest_growing_phase_needs_two_sizes_with_phases():
    assert fastest_growing_phase(_scale([ScalePoint(1, 0, 3.0, "a", {"ping": 1.0})])) is None
    assert fastest_growing_phase(_scale([ScalePoint(1, 0, 3.0, "a"), ScalePoint(2, 0, 4.0, "b")])) is None
    flat = [ScalePoint(n, 0, 3.0, str(n), {"ping": 3.0}) for n in (1, 2, 4)]
    f = fastest_growing_phase(_scale(flat))
    assert f is not None and f.severity is Severity.INFO and f.title == "no phase grows with the number of instances"


# -- the store, the job and the report --


def _finding() -> Finding:
    return Finding(id="storm.latency_bound", title="t", severity=Severity.INFO, evidence=(Evidence.say("e"),),
                   why="w", fix="f", source="s", figures={"phase": "ping", "cores": {"qemu": 0.5}})  # fmt: skip


def test_phase_cpu_and_findings_round_trip_through_the_store(tmp_path):
    folder = RunFolder.create(tmp_path, "storm-fake-4")
    pc = PhaseCpu(
        "ping", 1.25, 9.5, {"libvirtd": 0.01, "qemu": 1.7, "driver": 0.05, "other": 0.2}, 0.04, "qemu", 2, 3.5
    )
    doc = StormRunResult(**RunFolder.header({}, {"count": 4}), phase_cpu=(pc,), findings=(_finding(),))
    folder.write(doc)
    back = RunFolder.open(folder.path).read()
    assert isinstance(back, StormRunResult)
    assert back.phase_cpu == (pc,) and back.findings == (_finding(),)
    assert list(back.phase_cpu[0].groups) == ["libvirtd", "qemu", "driver", "other"]
    # a run.json from before: both absent, both empty
    raw = json.loads((folder.path / "run.json").read_text())
    del raw["phase_cpu"], raw["findings"]
    (folder.path / "run.json").write_text(json.dumps(raw))
    old = RunFolder.open(folder.path).read()
    assert isinstance(old, StormRunResult) and old.phase_cpu == () and old.findings == ()
    # the scale result keeps its findings and each point's phase medians (NaN as null)
    sfolder = RunFolder.create(tmp_path, "scale")
    sdoc = ScaleResult(points=(ScalePoint(2, 0, 9.0, "s2", {"create": 1.5, "ping": NAN}),), findings=(_finding(),))
    sfolder.write(sdoc)
    sback = sfolder.read()
    assert isinstance(sback, ScaleResult) and sback.findings == (_finding(),)
    assert sback.points[0].phase_median_s["create"] == 1.5 and math.isnan(sback.points[0].phase_median_s["ping"])


def _storm_folder(tmp_path, name: str, marks: np.ndarray, series: MonitorSeries) -> RunFolder:
    folder = RunFolder.create(tmp_path, name)
    n = marks.shape[0]
    result = StormResult("abcd1234", "fake", StormPlan(n, n), tuple(f"redline-abcd1234-{i}" for i in range(n)),
                         marks, S, ("",) * n, end_s=float(np.nanmax(marks)))  # fmt: skip
    folder.write_storm_marks(result)
    folder.write_monitor(series)
    header = RunFolder.header({"virt_type": "qemu"}, {"count": n}) | {"status": "complete"}
    folder.write(StormRunResult(**header, summary=summarise(result)))
    return folder


def test_diagnose_storm_folder_derives_the_table_offline_and_the_report_shows_it(tmp_path):
    from redline.report.storm import write_storm_report

    cpu = _quiet()
    cpu[PING] = [98.0, 98.0]
    s = _series(cpu, [(_proc(300, "qemu-system-x86_64", "qemu"), np.where(PING_ROWS, 170.0, 1.0))])
    folder = _storm_folder(tmp_path, "storm-fake-4", MARKS_4, s)
    page = write_storm_report(folder.path).read_text()
    assert "Where the time goes" in page and "Not diagnosed" in page  # an old folder: no table yet
    doc = diagnose_storm_folder(folder)
    assert [pc.phase for pc in doc.phase_cpu] == ["create", "ping", "ssh", "delete"]
    assert any(f.id == "storm.host_cpu_saturated" and "KVM" in f.fix for f in doc.findings)
    assert RunFolder.open(folder.path).read().phase_cpu == ()  # nothing written: the caller writes
    folder.write(doc)
    page = write_storm_report(folder.path).read_text()
    assert "Not diagnosed" not in page and "storm.host_cpu_saturated" in page
    assert '<td class="busiest">1.70</td>' in page and "Why it matters" in page


def test_diagnose_scale_folder_fills_phase_medians_from_the_storms(tmp_path):
    from redline.report.scale import write_scale_report

    scale = RunFolder.create(tmp_path, "scale-1-2-4")
    points = []
    for n, ping in ((1, 3.0), (2, 5.0), (4, 11.0)):
        marks = np.tile([0.0, 1.0, 1.0 + ping, 2.0 + ping, 3.0 + ping, 4.0 + ping], (n, 1))
        storm = _storm_folder(scale.path, f"storm-fake-{n}", marks, _series(_quiet(20), []))
        points.append(ScalePoint(n, 0, 2.0 + ping, storm.path.name))  # as written before phase medians
    header = RunFolder.header({}, {"counts": [1, 2, 4]}) | {"status": "complete"}
    scale.write(ScaleResult(**header, points=tuple(points)))
    doc = diagnose_scale_folder(scale)
    assert doc.points[2].phase_median_s == {"create": 1.0, "ping": 11.0, "ssh": 1.0, "delete": 1.0}
    (f,) = doc.findings
    assert f.figures["phase"] == "ping" and "3.7× from 1 to 4" in f.title
    assert "in the storm of 4" in " ".join(e.text for e in f.evidence)
    scale.write(doc)
    page = write_scale_report(scale.path).read_text()
    assert page.index("scale.fastest_growing_phase") < page.index("<h2>Fits</h2>")


class _Cloud:
    """Instances run `boot_s` after launch and answer SSH `ssh_s` later; no ping socket."""

    name = "fake"

    def __init__(self, boot_s: float, ssh_s: float) -> None:
        self.boot_s, self.ssh_s = boot_s, ssh_s
        self.launched: dict[str, float] = {}
        self.deleted: set[str] = set()

    def prepare(self, specs):
        return []

    def launch(self, spec):
        self.launched[spec.name] = time.monotonic()

    def poll(self):
        now = time.monotonic()
        return {n: "running" if now - t >= self.boot_s else "building" for n, t in self.launched.items()
                if n not in self.deleted}  # fmt: skip

    def address(self, spec):
        return f"10.0.0.{spec.index}"

    def pinger(self):
        return None

    def ssh(self, spec):
        return SshOutcome(time.monotonic() - self.launched[spec.name] >= self.boot_s + self.ssh_s, "ok")

    def delete(self, spec):
        self.deleted.add(spec.name)

    def cleanup(self):
        return []


def test_a_storm_job_records_the_driver_group_phase_cpu_and_findings(tmp_path):
    specs = [InstanceSpec(i, f"redline-run1-{i}", "run1") for i in range(3)]
    plan = StormPlan(3, 3, poll_interval_s=0.05, ping=False)
    out = run_storm_job(_Cloud(boot_s=1.2, ssh_s=0.3), specs, plan, "run1", {}, tmp_path)
    doc = RunFolder.open(out.folder.path).read()
    assert isinstance(doc, StormRunResult) and doc.status == "complete"
    assert "driver" in (doc.monitor or {}).get("groups", {})
    assert doc.findings and all(f.id.startswith("storm.") for f in doc.findings)
    assert [pc.phase for pc in doc.phase_cpu][:2] == ["create", "ssh"]  # ping not observed: no window
    assert all("driver" in pc.groups and "other" in pc.groups for pc in doc.phase_cpu)
