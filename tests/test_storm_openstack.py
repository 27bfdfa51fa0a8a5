"""Storm driver `openstack` against recorded Compute API (2.79) bodies: one list call per poll."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from redline.storm.model import InstanceSpec, StormPlan
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


class RecordedCompute:
    """Replays the recorded bodies: each GET /servers/detail returns the next one (the last repeats)."""

    def __init__(self):
        self.lists = _load("servers_detail_sequence.json")
        self.creates = _load("servers_create.json")
        self.calls: list[tuple[str, str, dict]] = []

    def get(self, url, params=None, microversion=None):
        self.calls.append(("GET", url, {"params": params, "microversion": microversion}))
        n = sum(1 for c in self.calls if c[0] == "GET")
        return Resp(self.lists[min(n, len(self.lists)) - 1])

    def post(self, url, json=None, microversion=None):
        self.calls.append(("POST", url, {"json": json, "microversion": microversion}))
        return Resp(self.creates[sum(1 for c in self.calls if c[0] == "POST") - 1], 202)

    def delete(self, url, microversion=None):
        self.calls.append(("DELETE", url, {"microversion": microversion}))
        return Resp({}, 204)


class Conn:
    def __init__(self):
        self.compute = RecordedCompute()


def test_states_from_recorded_bodies():
    seq = _load("servers_detail_sequence.json")
    assert states_from_list(seq[0], RUN) == {"redline-3fa2c1d0-0": "building", "redline-3fa2c1d0-1": "building"}
    assert states_from_list(seq[2], RUN) == {"redline-3fa2c1d0-0": "running", "redline-3fa2c1d0-1": "building"}
    # ACTIVE with a task state (deleting) is no longer "running"
    assert states_from_list(seq[3], RUN)["redline-3fa2c1d0-0"] == "building"
    assert states_from_list(seq[5], RUN) == {}
    assert states_from_list(seq[2], "ffffffff") == {}
    assert server_state({"status": "ERROR", "OS-EXT-STS:task_state": None}) == "error"


def test_storm_through_recorded_api_one_list_per_poll():
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
