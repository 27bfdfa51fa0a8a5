"""The real OpenStack compute lab (Keystone, Placement, Glance, Neutron API, Nova on libvirt +
QEMU TCG, MariaDB, RabbitMQ, memcached from PyPI and Debian), brought up once for the module:
status lists every service, the audit reads its configuration tree, an 8-instance storm goes
through the real Compute API, a storm survives nova-conductor being killed, and `down` leaves
no process, domain or port behind.

Opt-in (they take ~10 minutes on two CPUs, a first run installs the lab's virtualenv too):
REDLINE_OPENSTACK=1 ./dev test tests/test_lab_openstack.py (or REDLINE_OPTIN=1 for every opt-in test).
"""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import psutil
import pytest

from conftest import assert_one_line_error, run_redline
from redline.audit import AuditParams, audit
from redline.lab import lab_venv
from redline.lab import openstack as lab
from redline.lab.openstack_conf import Ports, Secrets
from redline.lab.openstack_knobs import SEED_000, OpenStackKnobs
from redline.lab.openstack_state import load_state
from redline.model.finding import Status

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not (os.environ.get("REDLINE_OPENSTACK") or os.environ.get("REDLINE_OPTIN")),
        reason="opt-in: REDLINE_OPENSTACK=1 (the OpenStack lab takes ~10 min on 2 CPUs)",
    ),
    pytest.mark.skipif(os.geteuid() != 0, reason="the OpenStack lab needs root"),
]

# The audit checks seed 000's knobs move (LabKnobs/OpenStackKnobs → real config files).
WORKER_CHECKS = ("nova.api_workers", "nova.conductor_workers", "nova.scheduler_workers", "keystone.wsgi_processes",
                 "keystone.cache_enabled", "neutron.api_workers", "libvirt.max_workers", "libvirt.max_client_requests")  # fmt: skip


@pytest.fixture(scope="module")
def lab_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("oslab")
    old = os.environ.get("REDLINE_LAB_DIR")
    os.environ["REDLINE_LAB_DIR"] = str(root)
    yield root
    if old is None:
        del os.environ["REDLINE_LAB_DIR"]
    else:
        os.environ["REDLINE_LAB_DIR"] = old


@pytest.fixture(scope="module")
def openstack(lab_root):
    t0 = time.monotonic()
    up = run_redline("lab", "openstack", "up", "--json", timeout=900)
    assert up.returncode == 0, up.stderr[-2000:]
    print(f"lab openstack up: {time.monotonic() - t0:.0f} s")
    state = load_state()
    assert state is not None
    yield state
    pids = [s.pid for s in state.services]
    down = run_redline("lab", "openstack", "down", timeout=300)
    assert down.returncode == 0, down.stderr
    assert not [p for p in pids if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE]
    ports = {s.port for s in state.services if s.port}
    listening = {c.laddr.port for c in psutil.net_connections("tcp") if c.status == psutil.CONN_LISTEN}
    assert not ports & listening, ports & listening
    assert not _domains(state.libvirt_uri)


def _domains(uri: str) -> list[str]:
    import libvirt

    try:
        conn = libvirt.open(uri)
    except libvirt.libvirtError:
        return []  # no libvirtd left to hold any
    try:
        return [d.name() for d in conn.listAllDomains() if d.name().startswith("instance-")]
    finally:
        conn.close()


def test_status_json_lists_every_service(openstack):
    st = run_redline("lab", "openstack", "status", "--json")
    assert st.returncode == 0, st.stderr
    doc = json.loads(st.stdout)
    names = {s["name"] for s in doc["services"]}
    assert {"mariadb", "rabbitmq", "memcached", "keystone", "placement", "glance", "neutron", "nova-api",
            "nova-conductor", "nova-scheduler", "nova-compute", "libvirtd"} <= names  # fmt: skip
    for s in doc["services"]:
        assert s["alive"] and s["pid"] > 0, s
        if s["name"] in ("keystone", "placement", "glance", "neutron", "nova-api", "rabbitmq", "memcached"):
            assert s["port"], s
    assert doc["up"] and doc["cloud"] == "redline-lab"
    secret = json.loads((Path(openstack.state_dir) / "secrets.json").read_text())["admin_password"]
    assert secret not in st.stdout and secret not in (Path(openstack.state_dir) / "lab.json").read_text()


def test_up_twice_is_refused(openstack):
    again = run_redline("lab", "openstack", "up")
    assert "already up" in assert_one_line_error(again)


def test_audit_reads_the_lab_tree(openstack, tmp_path):
    """The worker checks fire on the lab's default configuration, and pass on the tree the same
    code writes for seed 000's knobs."""
    report = audit(openstack.config_root, AuditParams())
    by_id = {f.id: f for f in report.findings}
    failing = {f.id for f in report.by_status(Status.FAIL)}
    assert set(WORKER_CHECKS) <= failing, {i: by_id[i].status for i in WORKER_CHECKS}
    tuned = tmp_path / "seed000"
    (tuned / "libvirt").mkdir(parents=True)
    from redline.lab.libvirtd import libvirtd_conf

    (tuned / "libvirt" / "libvirtd.conf").write_text(libvirtd_conf(SEED_000.libvirt, tuned / "libvirtd.log"))
    secrets = Secrets("a", "b", {n: f"mysql+pymysql://{n}@localhost/{n}" for n in lab.DATABASES}, "rabbit://")
    lab.write_config_tree(SEED_000, tuned, Ports(*range(5000, 5007)), secrets, lab_venv.venv_dir("openstack"), "qemu")
    after = {f.id: f for f in audit(tuned, AuditParams()).findings}
    assert all(after[i].status is Status.PASS for i in WORKER_CHECKS), {i: after[i].status for i in WORKER_CHECKS}
    assert OpenStackKnobs().to_dict() == openstack.knobs
