"""Every check fails on the untuned fixture tree, passes on the tuned one, and is n/a on an empty one.

The check ids are pinned here as a literal (the list docs/audit.md documents), not read from
the code's registry: a check deleted from the registry fails `test_registry_is_the_documented_list`
and every parametrised case of it, instead of silently dropping out of them.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from redline.audit import AuditParams, Status, audit
from redline.audit.registry import REGISTRY, run_checks
from redline.audit.snapshot import collect

FIXTURES = Path(__file__).parent / "fixtures" / "audit"
AUDIT_DOC = Path(__file__).parent.parent / "docs" / "audit.md"

# Where each check's failing case lives when it is not the "untuned" tree.
FAILING_TREE = {"keystone.cache_enabled": "keystone-nocache"}

# The 39 checks of docs/audit.md ("## Checks (39)"), area by area, in the doc's order.
CHECK_IDS = [
    "libvirt.max_workers", "libvirt.max_client_requests", "libvirt.max_clients", "libvirt.max_requests",
    "libvirt.security_driver", "libvirt.cgroups", "libvirt.version",
    "host.ksm", "host.thp", "host.thp_defrag", "host.hugepages", "host.numa_balancing", "host.cpufreq_governor",
    "host.vhost_net_device", "host.vhost_net_module", "host.kvm", "host.io_scheduler", "host.irq_on_guest_cpus",
    "host.guest_cpu0", "host.swappiness", "host.dirty_ratios", "host.tuned_profile",
    "nova.conductor_workers", "nova.scheduler_workers", "nova.api_workers", "nova.cpu_sets",
    "nova.reserved_host_memory", "nova.disk_cachemodes", "nova.firewall_driver", "nova.rootwrap", "nova.cpu_mode",
    "keystone.cache_enabled", "keystone.cache_backend", "keystone.token_provider", "keystone.password_hash_rounds",
    "keystone.wsgi_processes",
    "neutron.rpc_workers", "neutron.api_workers", "neutron.root_helper_daemon",
]  # fmt: skip


def _findings(tree: str) -> dict[str, object]:
    return {f.id: f for f in audit(FIXTURES / tree).findings}


@pytest.fixture(scope="module")
def trees() -> dict[str, dict[str, object]]:
    return {t: _findings(t) for t in ("tuned", "untuned", "keystone-nocache", "empty")}


def _registered() -> list[str]:
    run_checks(collect(FIXTURES / "empty"))  # fills the registry
    return [c.id for c in REGISTRY]


def _documented() -> tuple[int, list[str]]:
    """(the count in the "## Checks (N)" heading, the ids of its table: `<area>.<name>`)."""
    text = AUDIT_DOC.read_text()
    heading = re.search(r"^## Checks \((\d+)\)$", text, re.M)
    assert heading, "docs/audit.md has no '## Checks (N)' section"
    section = text[heading.end() :].split("\n## ")[0]
    ids = []
    for row in section.splitlines():
        cells = [c.strip() for c in row.strip().strip("|").split("|")]
        if len(cells) != 2 or cells[0] in ("area", "---"):
            continue
        body = cells[1]
        while (shorter := re.sub(r"\([^()]*\)", "", body)) != body:  # asides name values, not checks
            body = shorter
        ids += [f"{cells[0]}.{name}" for name in re.findall(r"`([a-z0-9_]+)`", body)]
    return int(heading.group(1)), ids


def test_registry_is_the_documented_list() -> None:
    registered = _registered()
    assert len(registered) == len(set(registered)), "duplicate check ids"
    missing, extra = set(CHECK_IDS) - set(registered), set(registered) - set(CHECK_IDS)
    assert not missing and not extra, f"missing from the registry: {sorted(missing)}; undocumented: {sorted(extra)}"
    assert sorted(registered) == sorted(CHECK_IDS)


def test_docs_list_exactly_the_pinned_checks() -> None:
    count, ids = _documented()
    assert ids == CHECK_IDS
    assert count == len(CHECK_IDS) == 39
    areas = {i.split(".")[0] for i in CHECK_IDS}
    assert areas == {"libvirt", "host", "nova", "keystone", "neutron"}


@pytest.mark.parametrize("tree", ["tuned", "untuned", "keystone-nocache", "empty"])
def test_every_documented_check_reports_on_every_tree(trees, tree: str) -> None:
    # One finding per check, none left out and none invented, whatever the tree holds.
    assert sorted(trees[tree]) == sorted(CHECK_IDS)


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
