"""Storm driver `openstack` against fakes of the Compute API (2.79) serving handwritten bodies
(tests/fixtures/openstack: written in nova's 2.79 shape by hand, not recorded from a cloud):
one list call per poll, task states as sub-marks, guest up by console marker, stuck instances,
cleanup, a dead API, and the defaults taken from the OpenStack lab's state. No cloud and no
libvirtd needed; what a real nova does is tested by tests/test_lab_openstack.py (opt-in)."""

from __future__ import annotations

import copy
import json
import re
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from redline.errors import UserError
from redline.store.npz import read_storm_marks, write_storm_marks
from redline.storm.analysis import partial_line, summarise
from redline.storm.driver import driver_labels
from redline.storm.model import InstanceSpec, StormPlan, mark_label
from redline.storm.openstack_driver import MICROVERSION, OpenStackDriver, server_state, states_from_list
from redline.storm.runner import run_storm

FIX = Path(__file__).parent / "fixtures" / "openstack"
RUN = "3fa2c1d0"


def _load(name):
    return json.loads((FIX / name).read_text())["responses"]


class Resp:
    def __init__(self, body, status=200):
        self.body, self.status_code, self.text = body, status, json.dumps(body)

    def json(self):
        return self.body


class FakeComputeForMapping:
    """A fake Compute API for pure-mapping tests (body -> driver state), serving the handwritten
    bodies: each GET /servers/detail answers the next one (the last repeats).

    It honours what the driver sends as a real nova would: the `name` query parameter is a
    regular expression on server names (nova filters with it, re.search-like), and a request
    without microversion 2.79 is refused (406), since the bodies' field set is 2.79's.
    error_on_lists: the numbers (1-based) of the list calls answered HTTP 500 instead.
    """

    def __init__(self, error_on_lists: frozenset[int] = frozenset()):
        self.lists = _load("servers_detail_handwritten.json")
        self.creates = _load("servers_create.json")
        self.error_on_lists = error_on_lists
        self.calls: list[tuple[str, str, dict]] = []

    def get(self, url, params=None, microversion=None):
        self.calls.append(("GET", url, {"params": params, "microversion": microversion}))
        if microversion != "2.79":
            return Resp({"computeFault": {"code": 406, "message": f"Version {microversion} is not supported"}}, 406)
        n = sum(1 for c in self.calls if c[0] == "GET")
        if n in self.error_on_lists:
            return Resp({"computeFault": {"code": 500, "message": "Unexpected API Error."}}, 500)
        body = copy.deepcopy(self.lists[min(n, len(self.lists)) - 1])
        pattern = re.compile((params or {}).get("name", ""))
        body["servers"] = [s for s in body["servers"] if pattern.search(s["name"])]
        return Resp(body)

    def post(self, url, json=None, microversion=None):
        self.calls.append(("POST", url, {"json": json, "microversion": microversion}))
        return Resp(self.creates[sum(1 for c in self.calls if c[0] == "POST") - 1], 202)

    def delete(self, url, microversion=None):
        self.calls.append(("DELETE", url, {"microversion": microversion}))
        return Resp({}, 204)


class Conn:
    def __init__(self, **kw):
        self.compute = FakeComputeForMapping(**kw)


def test_states_from_handwritten_bodies():
    seq = _load("servers_detail_handwritten.json")
    assert states_from_list(seq[0], RUN) == {"redline-3fa2c1d0-0": "building", "redline-3fa2c1d0-1": "building"}
    assert states_from_list(seq[2], RUN) == {"redline-3fa2c1d0-0": "running", "redline-3fa2c1d0-1": "building"}
    # ACTIVE with a task state (deleting) is no longer "running"
    assert states_from_list(seq[3], RUN)["redline-3fa2c1d0-0"] == "building"
    assert states_from_list(seq[5], RUN) == {}
    assert states_from_list(seq[2], "ffffffff") == {}
    assert server_state({"status": "ERROR", "OS-EXT-STS:task_state": None}) == "error"


def test_storm_through_the_mapping_fake_one_list_per_poll():
    conn = Conn()
    drv = OpenStackDriver(conn, RUN, image="7e1b5d3a-9c2f-4e8b-a6d0-3f1c2b4a5e6d", flavor="1")
    specs = [InstanceSpec(i, f"redline-{RUN}-{i}", RUN) for i in range(2)]
    r = run_storm(drv, specs, StormPlan(2, 2, poll_interval_s=0.02, total_timeout_s=10), RUN)
    calls = conn.compute.calls
    posts = [c for c in calls if c[0] == "POST"]
    assert len(posts) == 2
    assert all(c[2]["json"]["server"]["metadata"]["redline_run"] == RUN for c in posts)
    assert all(c[2]["microversion"] == MICROVERSION for c in calls)
    gets = [c for c in calls if c[0] == "GET"]
    assert all(c[1] == "/servers/detail" and c[2]["params"] == {"name": f"^redline-{RUN}-"} for c in gets)
    # ping and ssh are skipped with a note; create and delete are timed for both
    assert any("ping and ssh skipped" in n for n in r.notes)
    assert np.isfinite(r.mark("running")).all() and np.isfinite(r.mark("gone")).all()
    assert r.mark("running")[0] < r.mark("running")[1]
    deletes = {c[1] for c in calls if c[0] == "DELETE"}
    assert deletes >= {"/servers/5a3c1f8e-2b7d-4c41-9e0a-7d2f4b6c8a10", "/servers/b91e7c42-6f0d-4a8e-8c35-1e9d2a7f4b53"}
    assert r.errors == ("", "")


def test_an_error_answer_to_one_list_is_a_blip_noted_and_the_storm_goes_on():
    conn = Conn(error_on_lists=frozenset({2}))
    drv = OpenStackDriver(conn, RUN, image="7e1b5d3a-9c2f-4e8b-a6d0-3f1c2b4a5e6d", flavor="1")
    specs = [InstanceSpec(i, f"redline-{RUN}-{i}", RUN) for i in range(2)]
    r = run_storm(drv, specs, StormPlan(2, 2, poll_interval_s=0.02, total_timeout_s=10), RUN)
    failed = [n for n in r.notes if n.startswith("status poll failed at ")]
    assert len(failed) == 1 and "HTTP 500: " in failed[0] and "Unexpected API Error." in failed[0], r.notes
    assert any(n.startswith("status poll answered again after ") for n in r.notes), r.notes
    assert r.errors == ("", "") and r.stopped == ""
    assert np.isfinite(r.mark("running")).all() and np.isfinite(r.mark("gone")).all()


def test_the_mapping_fake_honours_the_name_filter_and_the_microversion():
    fake = FakeComputeForMapping()
    mine = fake.get("/servers/detail", params={"name": f"^redline-{RUN}-"}, microversion="2.79").json()
    other = fake.get("/servers/detail", params={"name": "^redline-ffffffff-"}, microversion="2.79").json()
    assert [s["name"] for s in mine["servers"]] == [f"redline-{RUN}-0", f"redline-{RUN}-1"] and other["servers"] == []
    assert fake.get("/servers/detail", params={}, microversion=None).status_code == 406
    # the driver's own list call: one regular expression for the run, at 2.79
    drv = OpenStackDriver(Conn(), RUN, image="x", flavor="1")
    assert set(drv.poll()) == {f"redline-{RUN}-0", f"redline-{RUN}-1"}
    assert drv.conn.compute.calls[0][2] == {"params": {"name": f"^redline-{RUN}-"}, "microversion": MICROVERSION}


# -- a fake Compute API that follows each server through handwritten stages --

STAGES = json.loads((FIX / "server_stages.json").read_text())["stages"]
CONSOLE = json.loads((FIX / "console_output.json").read_text())["responses"]
LAB_RUN = "5c0ffee1"
BUILDING = ("scheduling", "block_device_mapping", "networking", "spawning")


class ConnectFailure(Exception):
    """What keystoneauth raises when nothing listens on the Compute API's port (its text, abridged)."""

    def __init__(self, url):
        super().__init__(
            f"Unable to establish connection to {url}: HTTPConnectionPool(host='127.0.0.1', port=8774): Max retries "
            "exceeded with url: /v2.1/servers (Caused by NewConnectionError('<urllib3.connection.HTTPConnection "
            "object at 0x7f>: Failed to establish a new connection: [Errno 111] Connection refused'))"
        )


class StagedCompute:
    """nova-api as a storm sees it: each GET /servers/detail shows every server at its stage, then
    moves it one step along its script of handwritten stages (server_stages.json; the last one repeats); a DELETE
    starts its delete script.

    scripts[i]: instance i's stages after its POST; delete_script: the stages after a DELETE
    ("gone" = no longer listed); a server still BUILD/scheduling is deleted at once (nova-api's
    local delete of an instance no compute host has). console_after: console calls before the
    marker shows. refuse_after: list calls answered before the API dies (connection refused).
    """

    def __init__(self, scripts, delete_script=("deleting", "gone"), console_after=2, refuse_after=None):
        self.scripts = scripts
        self.delete_script = delete_script
        self.console_after = console_after
        self.refuse_after = refuse_after
        self.servers: dict[str, dict] = {}  # id -> name, index, script, step, console calls
        self.calls: list[tuple[str, str, dict]] = []
        self.lists = 0
        self.violations: list[str] = []  # console calls a storm must not make
        self.in_flight: dict[str, int] = {}
        self.max_in_flight = 0
        self.lock = threading.Lock()

    def _dead(self, url):
        if self.refuse_after is not None and self.lists > self.refuse_after:
            raise ConnectFailure(f"http://127.0.0.1:8774/v2.1{url}")

    def _stage(self, s):
        return s["script"][min(s["step"], len(s["script"]) - 1)]

    def _body(self, sid, s):
        body = copy.deepcopy(STAGES[self._stage(s)])
        name = s["name"]
        body.update(id=sid, name=name, **{"OS-EXT-SRV-ATTR:hostname": name,
                    "OS-EXT-SRV-ATTR:instance_name": f"instance-{0x7A + s['index']:08x}",
                    "metadata": {"redline_index": str(s["index"]), "redline_run": LAB_RUN}})  # fmt: skip
        return body

    def get(self, url, params=None, microversion=None):
        self.calls.append(("GET", url, {"params": params, "microversion": microversion}))
        self._dead(url)
        assert url == "/servers/detail"
        self.lists += 1
        with self.lock:
            shown = [self._body(sid, s) for sid, s in self.servers.items() if self._stage(s) != "gone"]
            for s in self.servers.values():  # what the next list call will show
                s["step"] += 1
        return Resp({"servers": shown})

    def post(self, url, json=None, microversion=None):
        self.calls.append(("POST", url, {"json": json, "microversion": microversion}))
        self._dead(url)
        if url == "/servers":
            name = json["server"]["name"]
            index = int(name.rsplit("-", 1)[1])
            sid = f"0d6b2f4e-8a1c-4e3b-9f57-{index:012x}"
            with self.lock:
                self.servers[sid] = {
                    "name": name,
                    "index": index,
                    "script": self.scripts[index],
                    "step": 0,
                    "console": 0,
                }
            return Resp(
                {"server": {"id": sid, "links": [], "OS-DCF:diskConfig": "MANUAL", "adminPass": "REDACTED"}}, 202
            )
        sid = url.split("/")[2]
        assert url.endswith("/action") and "os-getConsoleOutput" in json
        s = self.servers[sid]
        with self.lock:
            # Only ACTIVE ones; a call already on its way when the delete was requested may land
            # just after it (ACTIVE/deleting), never one for a server still building.
            if self._stage(s) not in ("active", "deleting"):
                self.violations.append(f"console of {s['name']} while {self._stage(s)}")
            self.in_flight[sid] = self.in_flight.get(sid, 0) + 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight[sid])
        time.sleep(0.01)  # long enough for a second call to overlap, were one started
        with self.lock:
            self.in_flight[sid] -= 1
            s["console"] += 1
            up = s["console"] > self.console_after
        return Resp(CONSOLE["up" if up else "early"])

    def delete(self, url, microversion=None):
        self.calls.append(("DELETE", url, {"microversion": microversion}))
        self._dead(url)
        sid = url.split("/")[2]
        with self.lock:
            s = self.servers.get(sid)
            if s is None or self._stage(s) == "gone":
                return Resp({}, 404)
            if self._stage(s) != "deleting":
                local = self._stage(s) == "scheduling"
                s["script"], s["step"] = (["gone"] if local else list(self.delete_script)), 0
        return Resp({}, 204)


class StagedConn:
    def __init__(self, compute):
        self.compute = compute


def _lab_driver(compute, **kw):
    kw.setdefault("guest_marker", "GUEST-UP")
    kw.setdefault("network", "none")
    return OpenStackDriver(
        StagedConn(compute), LAB_RUN, image="3b9d7c61-0f2e-4a85-b1d4-6e2c9a7f5038", flavor="42", **kw
    )


def _lab_specs(n):
    return [InstanceSpec(i, f"redline-{LAB_RUN}-{i}", LAB_RUN) for i in range(n)]


ACTIVE = (*BUILDING, "active")


def test_task_states_are_sub_marks_of_the_one_list_call(tmp_path):
    scripts = [
        list(ACTIVE),
        ["scheduling", "networking", "spawning", "spawning", "active"],  # block_device_mapping fell between polls
        ["scheduling", "scheduling", "block_device_mapping", "networking", "spawning", "active"],
    ]
    compute = StagedCompute(scripts)
    drv = _lab_driver(compute, guest_marker=None)
    r = run_storm(drv, _lab_specs(3), StormPlan(3, 3, poll_interval_s=0.02, total_timeout_s=20), LAB_RUN)
    assert r.errors == ("",) * 3
    assert r.task_marks == (*BUILDING, "deleting") and r.task_phases == ("create",) * 4 + ("delete",)
    assert r.task_marks_s.shape == (3, 5)
    assert (
        np.isnan(r.task_mark("block_device_mapping")[1])
        and np.isfinite(r.task_mark("block_device_mapping")[[0, 2]]).all()
    )
    for i in range(3):
        seen = [r.task_mark(t)[i] for t in ("scheduling", "networking", "spawning")]
        assert seen == sorted(seen) and seen[-1] < r.mark("running")[i]  # in nova's order, all before ACTIVE
        assert r.mark("delete_requested")[i] < r.task_mark("deleting")[i] < r.mark("gone")[i]
    rows = {p.phase: p for p in summarise(r).phases}
    keys = list(rows)
    assert keys[: keys.index("ssh") if "ssh" in keys else 6][:5] == [
        "create", "create: scheduling", "create: block_device_mapping", "create: networking", "create: spawning",
    ]  # fmt: skip
    assert keys[-2:] == ["delete", "delete: deleting"] and "ping" not in keys and "ssh" not in keys
    bdm = rows["create: block_device_mapping"]
    assert (bdm.seen, bdm.count) == (2, 2) and rows["create: scheduling"].seen == 3
    # scheduling lasts until the next state seen: networking for instance 1 (bdm unseen)
    sched = r.task_mark("scheduling")
    expect = [r.task_mark("block_device_mapping")[0] - sched[0], r.task_mark("networking")[1] - sched[1],
              r.task_mark("block_device_mapping")[2] - sched[2]]  # fmt: skip
    assert rows["create: scheduling"].max_s == pytest.approx(max(expect))
    assert rows["create: spawning"].count == 3 and rows["delete: deleting"].count == 3
    (note,) = summarise(r).notes
    assert "block_device_mapping 2/3" in note and "fall between two polls" in note
    # kept in phases.npz, and a phases.npz from before task states still loads
    write_storm_marks(tmp_path / "p.npz", r)
    back = read_storm_marks(tmp_path / "p.npz")
    assert back.task_marks == r.task_marks and np.array_equal(back.task_marks_s, r.task_marks_s, equal_nan=True)
    assert back.api_calls == r.api_calls and back.polls == r.polls and back.labels == r.labels
    with np.load(tmp_path / "p.npz") as d:
        meta = json.loads(str(d["meta"]))
        marks = d["marks_s"]
    for k in ("task_marks", "task_phases", "last_seen", "labels", "polls", "api_calls", "cleanup", "stopped"):
        del meta[k]
    np.savez(tmp_path / "old.npz", meta=np.array(json.dumps(meta)), marks_s=marks)
    old = read_storm_marks(tmp_path / "old.npz")
    assert old.task_marks == () and old.task_marks_s.shape == (3, 0) and summarise(old).notes == ()


def test_libvirt_like_drivers_have_no_task_marks():
    from tests.test_storm_unit import FakeDriver, _specs

    r = run_storm(FakeDriver(), _specs(2), StormPlan(2, 2, poll_interval_s=0.05, ping=False), "run1")
    assert r.task_marks == () and r.task_marks_s.shape == (2, 0) and r.last_seen == () and r.api_calls == {}
    assert r.errors == ("", "") and summarise(r).notes == ()


def test_guest_up_is_the_console_marker_and_says_so(tmp_path, monkeypatch):
    from rich.console import Console

    import redline.cli.app  # noqa: F401 — the commands register in this order
    from redline.cli import storm as cli_storm
    from redline.jobs.storm import run_storm_job
    from redline.report.storm import write_storm_report
    from redline.store import RunFolder

    compute = StagedCompute([list(ACTIVE), ["scheduling", "spawning", "spawning", "spawning", "active"]])
    drv = _lab_driver(compute)
    plan = StormPlan(2, 2, poll_interval_s=0.02, total_timeout_s=20)
    out = run_storm_job(drv, _lab_specs(2), plan, LAB_RUN, {"kind": "openstack-lab"}, tmp_path, monitor_groups={})
    r = out.result
    assert r.errors == ("", "") and out.document.status == "complete"
    posts = [c for c in compute.calls if c[1] == "/servers"]
    assert all(c[2]["json"]["server"]["networks"] == "none" for c in posts)
    # ping is skipped; the "ssh" slot is reached by the marker, through the API only
    assert r.skipped == ("ping",) and np.isfinite(r.mark("ssh")).all() and np.isnan(r.mark("ping")).all()
    assert (r.mark("ssh") > r.mark("running")).all()
    assert all(o.startswith("GUEST-UP") for o in r.ssh_output)
    assert compute.violations == [] and compute.max_in_flight == 1  # only ACTIVE ones, one call at a time
    consoles = [c for c in compute.calls if c[1].endswith("/action")]
    assert all(c[2]["json"] == {"os-getConsoleOutput": {"length": 50}} for c in consoles)
    assert r.api_calls["console"] == len(consoles) >= 2 * (compute.console_after + 1)
    # the label comes from the driver, into every place a human reads
    label = "guest up (console marker GUEST-UP)"
    assert r.labels["ssh"] == label and mark_label(driver_labels(drv), "ssh") == label  # the progress bar's
    assert "ping and ssh replaced by the guest's console marker: lab servers boot with networks none " \
           "(no data plane without Neutron agents)" in r.notes  # fmt: skip
    rows = {p.phase: p for p in out.summary.phases}
    assert rows["ssh"].title == label and rows["requested→ssh"].title == f"requested→{label}"
    assert rows["ssh"].count == 2 and rows["ssh"].min_s > 0  # running → marker, not NaN for lack of ping
    doc = RunFolder.open(out.folder.path).read()
    assert doc.labels["ssh"] == label and any("console marker" in n for n in doc.notes)
    assert all(pc.title == label for pc in doc.phase_cpu if pc.phase == "ssh")
    page = write_storm_report(out.folder.path).read_text()
    assert label in page and "ssh login" not in page.lower() and "create: spawning" in page
    rec = Console(record=True, width=200)
    monkeypatch.setattr(cli_storm, "out_console", rec)
    cli_storm._print_summary(out)
    text = rec.export_text()
    assert label in text and "reached guest up (console marker GUEST-UP) 2/2" in text and "ssh login" not in text


def test_exactly_one_list_call_per_poll_interval(tmp_path):
    from redline.jobs.storm import run_storm_job
    from redline.store import RunFolder

    compute = StagedCompute([list(ACTIVE)] * 4)
    plan = StormPlan(4, 4, poll_interval_s=0.02, total_timeout_s=20)
    out = run_storm_job(_lab_driver(compute), _lab_specs(4), plan, LAB_RUN, {}, tmp_path, monitor_groups={})
    r = out.result
    assert r.errors == ("",) * 4 and r.polls > 5
    # the storm loop made exactly one list call per poll for all four; cleanup's are counted apart
    assert r.api_calls["list"] == r.polls
    assert compute.lists == r.api_calls["list"] + r.api_calls.get("cleanup_list", 0)
    assert r.api_calls["create"] == 4 and r.api_calls["delete"] == 4
    assert all(c[2]["params"] == {"name": f"^redline-{LAB_RUN}-"} for c in compute.calls if c[0] == "GET")
    doc = RunFolder.open(out.folder.path).read()
    assert doc.polls == r.polls and doc.api_calls["list"] == doc.polls and doc.api_calls["console"] >= 4
    assert [i.task_states["scheduling"] is not None for i in doc.instances] == [True] * 4
    assert set(doc.instances[0].task_states) == {*BUILDING, "deleting"}


def test_a_stuck_instance_is_recorded_with_its_last_state_and_the_storm_is_partial(tmp_path):
    from redline.jobs.storm import run_storm_job

    # nova-conductor is dead for instance 1: it never leaves BUILD/scheduling; instance 2 is refused
    compute = StagedCompute([list(ACTIVE), ["scheduling"], ["scheduling", "error"]])
    plan = StormPlan(3, 3, poll_interval_s=0.02, instance_timeout_s=0.5, total_timeout_s=20)
    t0 = time.monotonic()
    out = run_storm_job(_lab_driver(compute), _lab_specs(3), plan, LAB_RUN, {}, tmp_path, monitor_groups={})
    assert time.monotonic() - t0 < 8
    r = out.result
    assert r.errors[0] == ""
    assert r.errors[1] == "timed out after 0.5 s waiting for running (ACTIVE); last seen BUILD/scheduling"
    assert r.errors[2] == (
        "instance went to an error state; last seen ERROR (No valid host was found. There are not enough hosts available.)"
    )
    assert np.isfinite(r.mark("gone")).all()  # the stuck one was deleted (nova-api's local delete) and is gone
    line = partial_line(r)
    assert line == (
        "partial storm: 1 of 3 reached running (ACTIVE), 1 of 3 guest up (console marker GUEST-UP); 2 failed, last "
        "seen 1 × BUILD/scheduling, 1 × ERROR (No valid host was found. There are not enough hosts available.)"
    )
    doc = out.document
    assert doc.status == "incomplete" and doc.error == line
    assert doc.instances[1].last_seen == "BUILD/scheduling" and doc.instances[1].running is None
    assert doc.instances[1].task_states["scheduling"] is not None and doc.instances[1].task_states["spawning"] is None


def test_cleanup_deletes_every_server_waits_bounded_and_removes_leftover_domains():
    # RabbitMQ is dead: deletes are accepted, but the servers stay ACTIVE/deleting
    compute = StagedCompute([list(ACTIVE)] * 2, delete_script=("deleting",), console_after=0)
    reaped = []

    def reaper(servers):
        reaped.extend(servers)
        return [f"removed domain {s.instance_name} (server {s.name}), left behind by nova-compute" for s in servers]

    drv = _lab_driver(compute, domains=reaper, cleanup_wait_s=0.3, cleanup_poll_s=0.05)
    plan = StormPlan(2, 2, poll_interval_s=0.02, instance_timeout_s=0.4, total_timeout_s=20)
    t0 = time.monotonic()
    r = run_storm(drv, _lab_specs(2), plan, LAB_RUN)
    assert time.monotonic() - t0 < 8
    assert all(e == "not gone 0.4 s after its delete; last seen ACTIVE/deleting" for e in r.errors)
    cleanup_deletes = [c for c in compute.calls[-8:] if c[0] == "DELETE"]
    assert len(cleanup_deletes) == 2 and r.api_calls["cleanup_delete"] == 2  # asked again, through the API
    stuck = [line for line in r.cleanup if "still listed" in line]
    assert len(stuck) == 2 and all("(ACTIVE/deleting): left to Nova (id 0d6b2f4e-" in line for line in stuck)
    assert [(s.name, s.instance_name) for s in reaped] == [
        (f"redline-{LAB_RUN}-0", "instance-0000007a"), (f"redline-{LAB_RUN}-1", "instance-0000007b"),
    ]  # fmt: skip
    assert reaped[0].server_id == "0d6b2f4e-8a1c-4e3b-9f57-000000000000"
    assert "removed domain instance-0000007b (server redline-5c0ffee1-1), left behind by nova-compute" in r.cleanup
    assert "cleanup removed 2 leftover domain(s)" in r.notes


def test_cleanup_after_a_storm_timeout_deletes_what_is_left_and_says_what():
    compute = StagedCompute([["scheduling", "spawning"]] * 2)  # nova-compute never finishes spawning
    drv = _lab_driver(compute, domains=lambda servers: [], cleanup_poll_s=0.02)
    r = run_storm(drv, _lab_specs(2), StormPlan(2, 2, poll_interval_s=0.02, total_timeout_s=0.3), LAB_RUN)
    assert all(e == "storm timed out; last seen BUILD/spawning" for e in r.errors)
    assert sorted(r.cleanup) == [f"deleted server redline-{LAB_RUN}-{i} (was BUILD/spawning)" for i in range(2)]
    assert "storm stopped after 0.3 s (--timeout)" in r.notes


def test_a_compute_api_that_dies_ends_the_storm_in_one_line_keeping_the_marks(tmp_path, monkeypatch):
    import redline.storm.runner as runner
    from redline.jobs.storm import run_storm_job
    from redline.store import RunFolder

    compute = StagedCompute([list(ACTIVE), ["scheduling"]], refuse_after=7)
    plan = StormPlan(2, 2, poll_interval_s=0.02, total_timeout_s=20)
    t0 = time.monotonic()
    r = run_storm(_lab_driver(compute), _lab_specs(2), plan, LAB_RUN, poll_give_up_s=0.2)
    assert time.monotonic() - t0 < 5
    refused = "connection refused (http://127.0.0.1:8774/v2.1/servers/detail)"
    assert r.stopped.startswith("the status poll failed for ") and refused in r.stopped
    assert np.isfinite(r.mark("running")[0])  # what was measured before is kept
    assert r.errors[1] == "storm stopped: the status poll failed; last seen BUILD/scheduling"
    assert r.cleanup[0] == f"could not list the run's servers for cleanup: {refused}"
    assert (
        r.cleanup[1].startswith(f"could not delete server redline-{LAB_RUN}-") and "connection refused" in r.cleanup[1]
    )
    assert len(r.cleanup) == 2  # the API is down: one refused delete is enough to know
    line = partial_line(r)
    assert line.startswith("storm stopped: the status poll failed for ") and "partial storm: 1 of 2" in line
    assert "\n" not in line and "Traceback" not in line
    monkeypatch.setattr(runner, "POLL_GIVE_UP_S", 0.2)  # the job uses the runner's default
    out = run_storm_job(_lab_driver(StagedCompute([list(ACTIVE)], refuse_after=3)), _lab_specs(1), plan, LAB_RUN,
                        {}, tmp_path, monitor_groups={})  # fmt: skip
    assert out.document.status == "incomplete" and "status poll failed" in (out.document.error or "")
    assert RunFolder.open(out.folder.path).read_storm_marks().stopped  # phases.npz written


def test_a_dead_compute_api_is_one_line_from_the_command(tmp_path, monkeypatch, capsys):
    import redline.storm.runner as runner
    import redline.targets.storm_drivers as sd
    from redline.cli.app import main

    compute = StagedCompute([list(ACTIVE), ["scheduling"]], refuse_after=6)
    monkeypatch.setattr(runner, "POLL_GIVE_UP_S", 0.2)
    monkeypatch.setattr(sd, "storm_monitor_groups", lambda *a: {})
    monkeypatch.setattr(sd, "make_storm_driver", lambda name, run_id, plan, *a: (
        _lab_driver(compute), _lab_specs(plan.count), {"kind": "openstack-lab"}))  # fmt: skip
    monkeypatch.setattr("sys.argv", ["redline", "storm", "--driver", "openstack", "--count", "2",
                                     "--poll-interval", "0.02", "--results", str(tmp_path)])  # fmt: skip
    with pytest.raises(SystemExit) as exc:
        main()
    assert exc.value.code == 1
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("redline: error:")]
    assert len(errors) == 1 and "Traceback" not in err
    assert errors[0].startswith("redline: error: storm stopped: the status poll failed for ")
    assert "partial storm: 1 of 2 reached running (ACTIVE)" in errors[0]
    assert any(p.name.startswith(tuple("0123456789")) for p in tmp_path.iterdir())  # the run folder is kept


def test_leftover_domains_are_removed_only_when_their_uuid_is_a_server_of_the_run():
    import libvirt

    from redline.storm.nova_domains import NovaServer, remove_nova_domains

    class Dom:
        def __init__(self, name, uuid, active=True):
            self._name, self.uuid, self.active, self.defined, self.destroyed = name, uuid, active, True, False

        def name(self):
            return self._name

        def UUIDString(self):
            return self.uuid

        def isActive(self):
            return self.active

        def isPersistent(self):
            return True

        def destroy(self):
            self.active, self.destroyed = False, True

        def undefineFlags(self, flags):
            self.defined = False

    class Conn:
        def __init__(self, doms):
            self.doms = doms
            self.closed = False

        def lookupByName(self, name):
            d = next((d for d in self.doms if d.name() == name), None)
            if d is None:
                raise libvirt.libvirtError("Domain not found")
            return d

        def lookupByUUIDString(self, uuid):
            d = next((d for d in self.doms if d.uuid == uuid), None)
            if d is None:
                raise libvirt.libvirtError("Domain not found")
            return d

        def close(self):
            self.closed = True

    mine = Dom("instance-0000007a", "0d6b2f4e-8a1c-4e3b-9f57-000000000000")
    by_uuid = Dom("instance-0000007b", "0d6b2f4e-8a1c-4e3b-9f57-000000000001", active=False)
    other = Dom("instance-0000007c", "ffffffff-0000-0000-0000-000000000000")  # another server's: never touched
    conn = Conn([mine, by_uuid, other])
    servers = [
        NovaServer("redline-5c0ffee1-0", mine.uuid, "instance-0000007a"),
        NovaServer("redline-5c0ffee1-1", by_uuid.uuid, None),  # not admin: no instance name in the list
        NovaServer("redline-5c0ffee1-2", "0d6b2f4e-8a1c-4e3b-9f57-000000000002", "instance-0000007c"),
        NovaServer("redline-5c0ffee1-3", "0d6b2f4e-8a1c-4e3b-9f57-000000000003", None),  # deleted cleanly
    ]
    lines = remove_nova_domains("qemu:///system", servers, connect=lambda uri: conn)
    assert lines == [
        "removed domain instance-0000007a (server redline-5c0ffee1-0), left behind by nova-compute",
        "removed domain instance-0000007b (server redline-5c0ffee1-1), left behind by nova-compute",
    ]
    assert mine.destroyed and not mine.defined and not by_uuid.destroyed and not by_uuid.defined
    assert other.defined and other.active and conn.closed

    def unreachable(uri):
        raise UserError(f"cannot connect to {uri}: Failed to connect socket")

    assert remove_nova_domains("qemu:///system", servers, connect=unreachable)[0].startswith(
        "note: leftover domains not checked: cannot connect to qemu:///system"
    )
    assert remove_nova_domains("qemu:///system", [], connect=unreachable) == []


# -- defaults from the OpenStack lab --


def _lab_state(tmp_path):
    from redline.lab.openstack_state import OpenStackLabState, OpenStackService

    clouds = tmp_path / "clouds.yaml"
    clouds.write_text("clouds: {}\n")
    services = (
        OpenStackService("keystone", 101, 5000, "keystone.log", "keystone"),
        OpenStackService("nova-api", 201, 8774, "nova-api.log", "nova-api"),
        OpenStackService("nova-api-metadata", 202, None, "nova-api-meta.log", "nova-api"),
        OpenStackService("nova-conductor", 301, None, "nova-conductor.log", "nova-conductor"),
        OpenStackService("mariadb", 401, 3306, "mariadb.log", "mariadb"),
    )
    state = OpenStackLabState(tmp_path, "redline-lab", clouds, "http://127.0.0.1:5000/v3", "img-1", "flavor-1",
                              "GUEST-UP", "qemu", "qemu:///system", services, knobs={"conductor_workers": 1})  # fmt: skip
    state.save()
    return state


def test_the_lab_is_the_default_cloud_unless_one_is_named(tmp_path, monkeypatch):
    from redline.monitor import NamePattern, PidTree
    from redline.targets.storm_drivers import openstack_lab_monitor_groups, openstack_source, storm_target

    monkeypatch.delenv("OS_CLOUD", raising=False)
    empty = tmp_path / "none"
    empty.mkdir()
    with pytest.raises(UserError, match=r"needs the OpenStack lab \(`redline lab openstack up`\) or a cloud"):
        openstack_source(empty, (None, None, None, None))
    state = _lab_state(tmp_path)
    config, target, lab = openstack_source(tmp_path, (None, None, None, None))
    assert lab == state and target == state.describe() == storm_target("openstack", tmp_path)
    assert (config.cloud, config.clouds_yaml, config.image, config.flavor) == (
        "redline-lab",
        state.clouds_yaml,
        "img-1",
        "flavor-1",
    )
    assert (config.network, config.guest_marker, config.libvirt_uri) == ("none", "GUEST-UP", "qemu:///system")
    # an explicit option (or $OS_CLOUD) means any cloud, as before: all three are needed
    with pytest.raises(UserError, match="--image"):
        openstack_source(tmp_path, ("mycloud", None, None, None))
    config, target, lab = openstack_source(tmp_path, ("mycloud", "img-9", "m1.tiny", None))
    assert lab is None and config.clouds_yaml is None and config.guest_marker is None and target["kind"] == "openstack"
    monkeypatch.setenv("OS_CLOUD", "envcloud")
    with pytest.raises(UserError, match="--image"):
        openstack_source(tmp_path, (None, None, None, None))
    # one monitor group per lab service group; services sharing one are one PidTree of several roots
    groups = openstack_lab_monitor_groups(state)
    assert list(groups) == ["keystone", "nova-api", "nova-conductor", "mariadb", "libvirtd", "qemu"]
    assert groups["nova-api"] == PidTree(201, (202,)) and groups["mariadb"] == PidTree(401)
    assert isinstance(groups["qemu"], NamePattern) and "dnsmasq" not in groups


@pytest.mark.filterwarnings("ignore::PendingDeprecationWarning")  # openstacksdk's own (InfluxDB), hidden by default
def test_connect_reads_the_lab_clouds_yaml_only(tmp_path, monkeypatch, capsys):
    import socket

    from redline.storm.openstack_driver import OpenStackStormConfig, connect

    with socket.socket() as s:  # a port nothing listens on (and not the lab's Keystone)
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    clouds = tmp_path / "clouds.yaml"
    clouds.write_text(
        "clouds:\n  redline-lab:\n    auth:\n"
        f"      auth_url: http://127.0.0.1:{port}/v3\n"
        "      username: admin\n      password: secret\n      project_name: admin\n"
        "      user_domain_name: Default\n      project_domain_name: Default\n"
        "    region_name: RegionOne\n    identity_api_version: 3\n"
    )
    monkeypatch.setenv("OS_CLOUD", "elsewhere")
    monkeypatch.setenv("OS_CLIENT_CONFIG_FILE", str(tmp_path / "missing.yaml"))
    with pytest.raises(UserError) as exc:
        connect(OpenStackStormConfig("redline-lab", "img", "flv", clouds_yaml=clouds, api_timeout_s=5))
    assert str(exc.value) == (
        f"cannot reach the Compute API of cloud 'redline-lab': connection refused (http://127.0.0.1:{port}/v3/auth/tokens)"
    )
    assert capsys.readouterr().err == ""  # keystoneauth's warnings do not reach the terminal


def test_scale_runs_openstack_storms_to_the_console_marker(tmp_path):
    from redline.jobs.scale import run_scale_job
    from redline.storm.openstack_driver import storm_specs

    def make(run_id, plan):
        drv = OpenStackDriver(StagedConn(StagedCompute([list(ACTIVE)] * plan.count, console_after=0)), run_id,
                              "img", "42", network="none", guest_marker="GUEST-UP")  # fmt: skip
        return drv, storm_specs(run_id, plan.count), {"kind": "openstack-lab"}

    def plan_for(n):
        return StormPlan(n, n, poll_interval_s=0.02, total_timeout_s=20)

    out = run_scale_job(make, [1, 2, 3], plan_for, {"kind": "openstack-lab"}, tmp_path, boot=20, monitor_groups={})
    doc = out.document
    assert doc.status == "complete" and [p.n for p in doc.points] == [1, 2, 3]
    assert doc.goal_label == "guest up (console marker GUEST-UP)" and doc.labels["ssh"] == doc.goal_label
    assert all(p.t_s > 0 and "ssh" in p.phase_median_s and "ping" not in p.phase_median_s for p in doc.points)


def test_an_active_guest_that_never_prints_the_marker_times_out_naming_it():
    compute = StagedCompute([list(ACTIVE)], console_after=10**6)
    plan = StormPlan(1, 1, poll_interval_s=0.02, instance_timeout_s=0.4, total_timeout_s=20)
    r = run_storm(_lab_driver(compute), _lab_specs(1), plan, LAB_RUN)
    assert r.errors == ("timed out after 0.4 s waiting for guest up (console marker GUEST-UP); last seen ACTIVE",)
    assert r.ssh_output == ("",) and compute.violations == [] and r.api_calls["console"] >= 2
