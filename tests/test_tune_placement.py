"""Placement follows seed 002: one core, else one socket, else one node; never CPU0 / IRQ CPUs."""

from __future__ import annotations

from pathlib import Path

import pytest

from redline.errors import UserError
from redline.tune.placement import Request, ThreadPolicy, place
from redline.tune.topology import Topology, load, synthetic

TOPO = Path(__file__).parent / "fixtures" / "topology"
GIB = 1 << 20


@pytest.fixture
def small() -> Topology:
    return load(str(TOPO / "1s-2c-nosmt.json"))


@pytest.fixture
def big() -> Topology:
    return load(str(TOPO / "2s-8c-2t-2nodes-nic-irq-0-1.json"))


def units(topo: Topology, pins: tuple[int, ...]) -> tuple[set, set, set]:
    cpus = [topo.cpu(p) for p in pins]
    return {c.core_key for c in cpus}, {c.socket for c in cpus}, {c.node for c in cpus}


def test_fixture_topologies_are_what_they_claim(small: Topology, big: Topology) -> None:
    assert (len(small.online), small.threads_per_core, len(small.nodes)) == (2, 1, 1)
    assert (len(big.online), big.threads_per_core, len(big.nodes)) == (32, 2, 2)
    assert big.irq_cpus == {0, 1}
    assert {c.socket for c in big.cpus if c.node == 1} == {1}
    assert big.cores()[(0, 0)] == (0, 16)  # Linux numbering: n and n+16 are siblings


def test_small_host_keeps_cpu0_free(small: Topology) -> None:
    p = place(small, Request(1, GIB))
    assert p.pins == (1,) and p.level == "core"
    with pytest.raises(UserError, match="does not fit on one NUMA node"):
        place(small, Request(2, GIB))
    both = place(small, Request(2, GIB), reserved=frozenset())  # --reserve "" gives CPU0 back
    assert sorted(both.pins) == [0, 1] and both.level == "socket" and both.threads == 1


@pytest.mark.parametrize("policy", list(ThreadPolicy))
@pytest.mark.parametrize("vcpus", [1, 2, 4, 6, 8, 12, 14])
def test_big_host_pins_stay_in_one_core_socket_node(big: Topology, policy: ThreadPolicy, vcpus: int) -> None:
    if policy is ThreadPolicy.REQUIRE and vcpus % 2:
        pytest.skip("require places whole cores")
    if policy is ThreadPolicy.ISOLATE and vcpus > 7:
        pytest.skip("isolate uses one thread per core: at most 7 clean cores per socket")
    p = place(big, Request(vcpus, GIB, policy=policy))
    cores, sockets, nodes = units(big, p.pins)
    assert len(set(p.pins)) == vcpus
    assert not set(p.pins) & {0, 1}, "CPU0 and the NIC IRQ CPUs stay free"
    assert len(nodes) == 1 and len(sockets) == 1
    if vcpus <= 2 and policy is not ThreadPolicy.ISOLATE:
        assert len(cores) == 1 and p.level == "core", "2 vCPUs share one core's siblings"
    if policy is ThreadPolicy.PREFER:
        assert len(cores) == -(-vcpus // 2), "prefer packs sibling threads"
    if policy is ThreadPolicy.ISOLATE:
        assert len(cores) == vcpus
        held_cores = {big.cpu(c).core_key for c in p.held}
        assert held_cores == cores and len(p.held) == 2 * vcpus


def test_sibling_of_irq_cpu_is_used_last(big: Topology) -> None:
    p = place(big, Request(1, GIB))
    assert p.pins[0] not in {16, 17}


def test_guests_are_placed_without_overlap(big: Topology) -> None:
    used: set[int] = set()
    placements = []
    while True:
        try:
            p = place(big, Request(4, GIB), used=frozenset(used))
        except UserError:
            break
        assert not set(p.pins) & used
        used |= p.held
        placements.append(p)
    # node 0 has 14 usable CPUs (CPU0, CPU1 kept free): 3 guests; node 1 has 16: 4 guests
    assert len(placements) == 7
    for p in placements:
        assert len(units(big, p.pins)[2]) == 1


def test_too_big_for_one_node_is_a_clear_error(big: Topology) -> None:
    with pytest.raises(UserError, match="largest free set on a node has 16 CPUs"):
        place(big, Request(17, GIB))


def test_require_needs_smt_and_whole_cores(small: Topology, big: Topology) -> None:
    with pytest.raises(UserError, match="needs SMT"):
        place(small, Request(1, GIB, policy=ThreadPolicy.REQUIRE))
    with pytest.raises(UserError, match="multiple of 2"):
        place(big, Request(3, GIB, policy=ThreadPolicy.REQUIRE))


def test_hugepages_must_be_free_on_the_node() -> None:
    topo = synthetic(2, 4, 1, hugepages_2m_per_node=512, irq_cpus=frozenset())
    p = place(topo, Request(2, GIB, 2048))  # 512 pages of 2 MiB = 1 GiB: fits
    assert p.node == 0
    with pytest.raises(UserError, match="huge pages"):
        place(topo, Request(2, 2 * GIB, 2048))
    # node 0's pages are taken by another guest: the next one goes to node 1
    q = place(topo, Request(2, GIB, 2048), used=frozenset(p.held), pages_used={0: 512})
    assert q.node == 1


def test_capabilities_xml_of_this_host() -> None:
    topo = load(str(TOPO / "capabilities-2cpu.xml"))
    assert topo.online == {0, 1} and len(topo.nodes) == 1
    assert topo.node(0).free_pages(2048) == 0


def test_bad_topology_files(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="cannot read"):
        load(str(tmp_path / "missing.json"))
    (tmp_path / "t.json").write_text("{not json")
    with pytest.raises(UserError, match="neither"):
        load(str(tmp_path / "t.json"))
    (tmp_path / "c.xml").write_text("<capabilities><host/></capabilities>")
    with pytest.raises(UserError, match="no host/topology"):
        load(str(tmp_path / "c.xml"))
