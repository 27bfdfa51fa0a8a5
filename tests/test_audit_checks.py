"""Every check fails on the untuned fixture tree, passes on the tuned one, and is n/a on an empty one."""

from __future__ import annotations

from pathlib import Path

import pytest

from redline.audit import AuditParams, Status, audit
from redline.audit.registry import REGISTRY, run_checks
from redline.audit.snapshot import collect

FIXTURES = Path(__file__).parent / "fixtures" / "audit"

# Where each check's failing case lives when it is not the "untuned" tree.
FAILING_TREE = {"keystone.cache_enabled": "keystone-nocache"}


def _findings(tree: str) -> dict[str, object]:
    return {f.id: f for f in audit(FIXTURES / tree).findings}


@pytest.fixture(scope="module")
def trees() -> dict[str, dict[str, object]]:
    return {t: _findings(t) for t in ("tuned", "untuned", "keystone-nocache", "empty")}


def _ids() -> list[str]:
    run_checks(collect(FIXTURES / "empty"))  # fills the registry
    return [c.id for c in REGISTRY]


CHECK_IDS = _ids()


def test_enough_checks_are_registered() -> None:
    assert len(CHECK_IDS) >= 25
    areas = {i.split(".")[0] for i in CHECK_IDS}
    assert areas == {"libvirt", "host", "nova", "keystone", "neutron"}


@pytest.mark.parametrize("check_id", CHECK_IDS)
def test_check_passes_on_tuned_tree(trees, check_id: str) -> None:
    f = trees["tuned"][check_id]
    assert f.status is Status.PASS, (f.why, f.evidence)
    assert f.evidence, "a passing check still says what it read"


@pytest.mark.parametrize("check_id", CHECK_IDS)
def test_check_fails_on_untuned_tree(trees, check_id: str) -> None:
    f = trees[FAILING_TREE.get(check_id, "untuned")][check_id]
    assert f.status is Status.FAIL, (f.why, f.evidence)
    assert f.evidence and f.why and f.fix and f.source
    assert all(e.path.startswith("/") for e in f.evidence)


@pytest.mark.parametrize("check_id", CHECK_IDS)
def test_check_is_not_applicable_without_input(trees, check_id: str) -> None:
    f = trees["empty"][check_id]
    assert f.status is Status.SKIP
    assert f.why


def test_sources_cite_the_seeds(trees) -> None:
    sources = " ".join(f.source for f in trees["untuned"].values())
    assert "seed 000" in sources and "seed 002" in sources


def test_parallel_target_changes_libvirt_verdict() -> None:
    # tuned tree has max_workers = 40: enough for 40 parallel boots, not for 80
    low = {f.id: f for f in audit(FIXTURES / "tuned", AuditParams(parallel=80)).findings}
    assert low["libvirt.max_workers"].status is Status.FAIL
    assert low["libvirt.max_workers"].changes[0].value == "80"


def test_max_clients_default_is_modern(tmp_path: Path) -> None:
    # libvirt installed, no config file: today's default max_clients (5000) is fine, max_workers (20) is not
    (tmp_path / "usr/sbin").mkdir(parents=True)
    (tmp_path / "usr/sbin/libvirtd").write_text("")
    found = {f.id: f for f in audit(tmp_path).findings}
    assert found["libvirt.max_clients"].status is Status.PASS
    assert found["libvirt.max_workers"].status is Status.FAIL
    assert "default 20" in found["libvirt.max_workers"].evidence[0].value


def test_modular_daemon_config_is_checked_too(tmp_path: Path) -> None:
    etc = tmp_path / "etc/libvirt"
    etc.mkdir(parents=True)
    (etc / "libvirtd.conf").write_text("max_workers = 64\n")
    (tmp_path / "usr/sbin").mkdir(parents=True)
    (tmp_path / "usr/sbin/virtqemud").write_text("")
    f = {f.id: f for f in audit(tmp_path).findings}["libvirt.max_workers"]
    assert f.status is Status.FAIL
    assert [c.path for c in f.changes] == ["/etc/libvirt/virtqemud.conf"]


def test_numa_balancing_harmless_without_pinned_guests(tmp_path: Path) -> None:
    for rel, text in {
        "proc/sys/kernel/numa_balancing": "1\n",
        "sys/devices/system/node/online": "0-1\n",
    }.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    f = {f.id: f for f in audit(tmp_path).findings}["host.numa_balancing"]
    assert f.status is Status.PASS
