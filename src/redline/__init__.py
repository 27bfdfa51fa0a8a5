"""redline: find the highest load a target sustains without degrading, and say why.

The library surface is what `__all__` lists (pinned by tests/test_library_api.py): the use
cases the commands call, what they take and the typed results they return. Names load on
first use, so `import redline` stays cheap for the CLI (NumPy, SciPy and libvirt are only
imported by what needs them). docs/library.md has an example.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# name -> module that defines it
_EXPORTS = {
    # use cases
    "run_fixed_rate": "redline.jobs.run",
    "run_capacity": "redline.jobs.capacity",
    "run_storm_job": "redline.jobs.storm",
    "run_scale_job": "redline.jobs.scale",
    "audit": "redline.audit.runner",
    "place": "redline.tune.placement",
    "build_domain": "redline.tune.domain_xml",
    "load_topology": "redline.tune.topology",
    # what they take
    "CapacityRequest": "redline.jobs.capacity",
    "CapacityHooks": "redline.jobs.capacity",
    "LoadPlan": "redline.load.engine",
    "Schedule": "redline.load.schedule",
    "Target": "redline.load.request",
    "RequestTemplate": "redline.load.request",
    "PROTOCOLS": "redline.analysis.protocols",
    "SearchProtocol": "redline.analysis.protocols",
    "StormPlan": "redline.storm.model",
    "AuditParams": "redline.audit.registry",
    # targets redline starts itself
    "embedded_target": "redline.targets.embedded",
    "start_calibrated": "redline.lab.process",
    # results and where they are kept
    "RunFolder": "redline.store",
    "RunResult": "redline.model",
    "CapacityResult": "redline.model",
    "ProbeResult": "redline.model",
    "SearchOutcome": "redline.model",
    "Verdict": "redline.model",
    "RunSummary": "redline.model",
    "GeneratorHealth": "redline.model",
    "Finding": "redline.model",
    "Severity": "redline.model",
    "StormRunResult": "redline.model",
    "ScaleResult": "redline.model",
    "AuditReport": "redline.model",
    "Samples": "redline.model",
    "MonitorSeries": "redline.model",
    "UserError": "redline.errors",
}
_RENAMED = {"build_domain": "build", "load_topology": "load"}

__all__ = ["__version__", *sorted(_EXPORTS)]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'redline' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), _RENAMED.get(name, name))
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
