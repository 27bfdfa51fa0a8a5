"""The one CPU list parser (tune/), and the audit's re-export of it."""

from __future__ import annotations

import pytest

from redline.audit import parse as audit_parse
from redline.tune.cpulist import format_cpuset, parse_cpuset


@pytest.mark.parametrize(
    ("text", "cpus"),
    [
        ("", set()),
        ("3", {3}),
        ("0-3,8,^2", {0, 1, 3, 8}),
        ("0-2, 5", {0, 1, 2, 5}),  # nova.conf style
        (" 0 - 1 ,\n", {0, 1}),
        ("0-3,^0-1", {2, 3}),
        ("3-1", set()),
    ],
)
def test_parse(text: str, cpus: set[int]) -> None:
    assert parse_cpuset(text) == cpus


@pytest.mark.parametrize("text", ["x", "1-", "-1", "0 1", "1-2-3"])
def test_malformed_lists_raise_value_error(text: str) -> None:
    with pytest.raises(ValueError):
        parse_cpuset(text)


def test_format_is_the_shortest_list_read_back_the_same() -> None:
    for cpus in ({0, 1, 2, 5, 7, 8}, set(), {4}, set(range(64))):
        assert parse_cpuset(format_cpuset(cpus)) == cpus
    assert format_cpuset([5, 0, 1, 2, 2]) == "0-2,5"


def test_the_audit_reads_cpu_lists_with_the_same_parser() -> None:
    assert audit_parse.parse_cpuset is parse_cpuset
    assert audit_parse.format_cpuset is format_cpuset
