"""The OpenStack lab's configuration tree, written by the code `lab openstack up` uses, read by
the audit: seed 000's worker checks fire on the lab's defaults and pass with `--seed-000`.
(The same on a running lab: tests/test_lab_openstack.py, opt-in.)"""

from __future__ import annotations

from pathlib import Path

import pytest

from redline.audit import AuditParams, audit
from redline.lab import openstack as lab
from redline.lab.libvirtd import libvirtd_conf
from redline.lab.openstack_conf import Ports, Secrets
from redline.lab.openstack_knobs import SEED_000, OpenStackKnobs
from redline.model.finding import Status

WORKER_CHECKS = ("nova.api_workers", "nova.conductor_workers", "nova.scheduler_workers", "keystone.wsgi_processes",
                 "keystone.cache_enabled", "neutron.api_workers", "libvirt.max_workers", "libvirt.max_client_requests")  # fmt: skip


def _tree(tmp_path: Path, knobs: OpenStackKnobs) -> Path:
    venv = tmp_path / "venv"  # only its paste files are copied; their content is not audited
    for rel in ("glance/glance-api-paste.ini", "neutron/api-paste.ini", "nova/api-paste.ini"):
        (venv / "etc" / rel).parent.mkdir(parents=True, exist_ok=True)
        (venv / "etc" / rel).write_text("[pipeline:main]\n")
    root = tmp_path / "state"
    (root / "libvirt").mkdir(parents=True)
    (root / "libvirt" / "libvirtd.conf").write_text(libvirtd_conf(knobs.libvirt, root / "libvirtd.log"))
    secrets = Secrets("admin-pw", "service-pw", {n: f"mysql+pymysql://{n}:pw@localhost/{n}" for n in lab.DATABASES},
                      "rabbit://guest:guest@127.0.0.1:5672/")  # fmt: skip
    lab.write_config_tree(knobs, root, Ports(*range(5000, 5007)), secrets, venv, "qemu")
    return root


@pytest.mark.parametrize("knobs, expected", [(OpenStackKnobs(), Status.FAIL), (SEED_000, Status.PASS)])
def test_worker_checks_follow_the_knobs(tmp_path, knobs, expected):
    found = {f.id: f.status for f in audit(_tree(tmp_path, knobs), AuditParams()).findings}
    assert {i: found[i] for i in WORKER_CHECKS} == dict.fromkeys(WORKER_CHECKS, expected)


def test_tree_is_laid_out_like_a_controller(tmp_path):
    root = _tree(tmp_path, SEED_000)
    nova = (root / "etc/nova/nova.conf").read_text()
    assert "[conductor]\nworkers = 4" in nova and "virt_type = qemu" in nova and "127.0.0.1" in nova
    assert "workers = 4" in (root / "etc/nova/gunicorn-nova-api.conf.py").read_text()
    assert "backend = dogpile.cache.pymemcache" in (root / "etc/keystone/keystone.conf").read_text()
    assert (root / "etc/nova/nova.conf").stat().st_mode & 0o077 == 0  # it holds passwords
    # Every socket a service binds is on loopback.
    for conf in root.glob("etc/*/gunicorn-*.conf.py"):
        assert 'bind = "127.0.0.1:' in conf.read_text(), conf
