"""The embedded target as a library caller starts it: no CLI involved."""

from __future__ import annotations

import os
import urllib.request

import psutil
import pytest

from redline.load.request import RequestTemplate
from redline.targets.embedded import CALIBRATED, embedded_target, split_cpus_for_embedded, with_url_path

CPUS = tuple(sorted(os.sched_getaffinity(0)))


def test_split_gives_the_target_the_last_cpu() -> None:
    gen, target = split_cpus_for_embedded(None)
    if len(CPUS) < 2:
        assert (gen, target) == (None, None)
    else:
        assert (gen, target) == (CPUS[:-1], CPUS[-1:])
        assert split_cpus_for_embedded((CPUS[0],)) == ((CPUS[0],), CPUS[-1:])


def test_with_url_path_takes_path_and_query() -> None:
    template = RequestTemplate(method="GET", path="/", headers=(), body=b"")
    assert with_url_path(template, "http://h:1/a/b?x=1").path == "/a/b?x=1"
    assert with_url_path(template, "http://h:1").path == "/"


def test_calibrated_target_serves_and_is_stopped_even_when_the_caller_fails() -> None:
    with pytest.raises(RuntimeError, match="caller failed"), embedded_target("calibrated") as t:
        pid = t.processes.root
        with urllib.request.urlopen(t.url, timeout=5) as response:
            assert response.status == 200
        assert t.description == {
            "url": t.url,
            "embedded": True,
            "cpus": list(t.target_cpus or ()),
            **CALIBRATED.describe(),
        }
        assert t.kind == "calibrated" and t.choice is None
        raise RuntimeError("caller failed")
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE


def test_bad_requests_fail_before_anything_starts() -> None:
    with pytest.raises(ValueError, match="kind"), embedded_target("keystone"):  # type: ignore[arg-type]
        pass
    with pytest.raises(ValueError, match="needs a Keystone"), embedded_target("calibrated", scenario="keystone.issue"):
        pass
