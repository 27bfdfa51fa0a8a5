"""The library surface: `import redline` exposes exactly what docs/library.md promises, and
the example there runs as written."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import redline

DOC = Path(__file__).resolve().parent.parent / "docs" / "library.md"

# Changing this list changes the library's promise: do it with the docs, on purpose.
SURFACE = {
    "__version__", "AuditParams", "AuditReport", "CapacityHooks", "CapacityRequest", "CapacityResult", "Finding",
    "GeneratorHealth", "LoadPlan", "MonitorSeries", "PROTOCOLS", "ProbeResult", "RequestTemplate", "RunFolder",
    "RunResult", "RunSummary", "Samples", "ScaleResult", "Schedule", "SearchOutcome", "SearchProtocol", "Severity",
    "StormPlan", "StormRunResult", "Target", "UserError", "Verdict", "audit", "build_domain", "embedded_target",
    "load_topology", "place", "run_capacity", "run_fixed_rate", "run_scale_job", "run_storm_job", "start_calibrated",
}  # fmt: skip


def test_the_exported_surface_is_pinned():
    assert set(redline.__all__) == SURFACE
    for name in redline.__all__:
        assert getattr(redline, name) is not None, name
    with pytest.raises(AttributeError):
        redline.not_exported  # noqa: B018


def test_the_library_example_runs(tmp_path, monkeypatch):
    code = re.search(r"```python\n(.*?)```", DOC.read_text(), re.S)
    assert code is not None, "docs/library.md lost its example"
    monkeypatch.chdir(tmp_path)
    scope: dict[str, object] = {}
    exec(compile(code.group(1), str(DOC), "exec"), scope)  # the documented example, as written
    result = scope["result"]
    assert isinstance(result, redline.CapacityResult)
    # the calibrated target serves 400/s: the documented N must be what it can sustain
    assert result.outcome.state == "found" and 360 <= result.outcome.n <= 400
    assert (tmp_path / "results").is_dir()


def test_run_capacity_honours_stop(tmp_path):
    """A caller's stop event ends the search as an interrupted one, folder intact."""
    import threading

    stop = threading.Event()
    stop.set()
    request = redline.CapacityRequest(
        target=redline.Target.from_url("http://127.0.0.1:9/"),  # never contacted: stopped before the first probe
        request=redline.RequestTemplate(method="GET", path="/"),
        protocol=redline.PROTOCOLS["quick"],
    )
    out = redline.run_capacity(request, {"url": "http://127.0.0.1:9/"}, tmp_path, "stopped", stop=stop)
    assert out.status == "interrupted" and out.result.probes == ()
    again = redline.RunFolder.open(out.folder.path).read()
    assert again.status == "interrupted" and again.outcome is not None and again.outcome.state == "interrupted"
