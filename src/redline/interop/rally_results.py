"""A redline run as Rally task results: the JSON `rally task import --file` accepts (the format
of Rally's JSON exporter, `rally task report --json`, revision 1.2), one iteration per request.

What each Rally field holds here, since Rally's runner and redline's generator do not measure
the same thing (docs/rally.md):
- `timestamp` is the request's *intended* send time (the open-loop schedule), `duration` is
  done − intended: the latency a user behind the schedule saw, generator lag included. Rally's
  own runner starts the clock when it gets round to sending, so it never reports that lag.
- the one atomic action spans the actual send to the end (service time), so `rally task
  report` shows both figures side by side.
- requests the generator never sent (the run ended with them queued, or was interrupted)
  are failed iterations: dropping them would hide a backlog as a lower failure rate.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import numpy as np

from redline.model.samples import UNSENT_REASONS, RequestOutcome, Samples

FORMAT_VERSION = "1.2"  # rally/plugins/task/exporters/json_exporter.py REVISION

# Back to the names Rally users know (docs/rally.md); other runs keep a redline.* name.
_SCENARIO_NAMES = {
    "keystone.issue": "Authenticate.keystone",
    "keystone.validate": "redline.keystone_validate",
    "keystone.mix": "redline.keystone_mix",
}
_ATOMIC_NAMES = {
    "keystone.issue": "keystone_v3.fetch_token",
    "keystone.validate": "keystone_v3.validate_token",
}
_ERRORS = {
    RequestOutcome.HTTP: "HTTPError",
    RequestOutcome.CONNECT: "ConnectionError",
    RequestOutcome.TIMEOUT: "Timeout",
    RequestOutcome.RESET: "ConnectionReset",
    RequestOutcome.PROTOCOL: "ProtocolError",
    RequestOutcome.UNSENT_BACKLOG: "NotSent",
    RequestOutcome.UNSENT_INTERRUPTED: "NotSent",
    RequestOutcome.UNSENT_ABORTED: "NotSent",
}
_MESSAGES = {
    RequestOutcome.CONNECT: "could not connect",
    RequestOutcome.TIMEOUT: "no complete response within the read timeout",
    RequestOutcome.RESET: "the connection broke while the request was in flight",
    RequestOutcome.PROTOCOL: "the response was not valid HTTP/1.1",
} | {k: f"redline did not send it: {v}" for k, v in UNSENT_REASONS.items()}

_TIME = "%Y-%m-%dT%H:%M:%S"


def scenario_name(target: dict[str, Any]) -> str:
    scenario = target.get("scenario")
    name = scenario.get("name") if isinstance(scenario, dict) else None
    return _SCENARIO_NAMES.get(str(name), f"redline.{name}") if name else "redline.http"


def _iterations(samples: Samples, atomic: str) -> list[dict[str, Any]]:
    to_s = 1e-9
    intended = (samples.wall_ns(samples.intended_ns) * to_s).tolist()
    sent = (samples.wall_ns(samples.sent_ns) * to_s).tolist()
    done = (samples.wall_ns(samples.done_ns) * to_s).tolist()
    outcomes = samples.outcome.tolist()
    statuses = samples.status.tolist()
    rows: list[dict[str, Any]] = []
    for i, outcome in enumerate(outcomes):
        code = RequestOutcome(outcome)
        finished = code is RequestOutcome.OK or (not code.is_unsent and samples.done_ns[i] >= 0)
        error: list[str] = []
        if code is not RequestOutcome.OK:
            message = f"HTTP {statuses[i]}" if code is RequestOutcome.HTTP else _MESSAGES[code]
            error = [_ERRORS[code], message, ""]
        actions = []
        if finished and samples.sent_ns[i] >= 0:
            actions = [{"name": atomic, "started_at": sent[i], "finished_at": done[i], "children": []}]
            if code is not RequestOutcome.OK:
                actions[0]["failed"] = True
        rows.append(
            {
                "timestamp": intended[i],
                "duration": max(0.0, done[i] - intended[i]) if finished else 0.0,
                "idle_duration": 0.0,
                "error": error,
                "output": {"additive": [], "complete": []},
                "atomic_actions": actions,
            }
        )
    return rows


def _durations(data: list[dict[str, Any]]) -> dict[str, Any]:
    ok = np.array([d["duration"] for d in data if not d["error"]], dtype=float)
    if ok.size == 0:
        return {}
    return {
        "total": {
            "name": "total",
            "count_per_iteration": 1,
            "data": {
                "iteration_count": len(data),
                "min": round(float(ok.min()), 6),
                "median": round(float(np.median(ok)), 6),
                "90%ile": round(float(np.percentile(ok, 90)), 6),
                "95%ile": round(float(np.percentile(ok, 95)), 6),
                "max": round(float(ok.max()), 6),
                "avg": round(float(ok.mean()), 6),
                "success": f"{100.0 * ok.size / len(data):.1f}%",
            },
        }
    }


def rally_results(doc: dict[str, Any], samples: Samples, title: str) -> dict[str, Any]:
    """Rally task results for a `redline run` (run.json as JSON, its samples)."""
    measured = samples.measured()
    target = doc.get("target") or {}
    plan = doc.get("plan") or {}
    raw = target.get("scenario")
    scenario: dict[str, Any] = raw if isinstance(raw, dict) else {}
    atomic = _ATOMIC_NAMES.get(str(scenario.get("name")), "redline.request")
    data = _iterations(measured, atomic)
    durations = [d["duration"] for d in data if not d["error"]]
    failed = sum(1 for d in data if d["error"])
    started = float(measured.wall_ns(np.array([measured.measure_from_ns]))[0]) * 1e-9
    window = float(plan.get("duration_s") or 0.0)
    last_done = max((d["timestamp"] + d["duration"] for d in data), default=started)
    load_duration = max(window, last_done - started)
    created = datetime.fromtimestamp(started, UTC)
    updated = datetime.fromtimestamp(started + load_duration, UTC)
    runner: dict[str, Any] = {"times": len(data), "rps": float(plan.get("rate") or 0.0)}
    if plan.get("end_rate") is not None:
        runner["rps"] = {"start": float(plan["rate"]), "end": float(plan["end_rate"]), "step": 1, "duration": 1}
    if plan.get("connection_cap"):
        runner["max_concurrency"] = int(plan["connection_cap"])
    if plan.get("read_timeout_s"):
        runner["timeout"] = float(plan["read_timeout_s"])
    workload: dict[str, Any] = {
        "uuid": str(uuid.uuid4()),
        "description": f"redline run, {title}: duration = done − intended send time (open loop);"
        f" the atomic action = actual send → done (service time)",
        "runner": {"rps": runner},
        "hooks": [],
        "scenario": {scenario_name(target): {}},
        "min_duration": min(durations) if durations else None,
        "max_duration": max(durations) if durations else None,
        "start_time": started,
        "load_duration": load_duration,
        "full_duration": load_duration,
        "statistics": {"durations": _durations(data)},
        "data": data,
        "failed_iteration_count": failed,
        "total_iteration_count": len(data),
        "created_at": created.strftime(_TIME),
        "updated_at": updated.strftime(_TIME),
        "contexts": {},
        "contexts_results": [],
        "position": 0,
        "pass_sla": True,
        # redline's run had no Rally SLA: no criterion, rather than a pass/fail it never judged.
        "sla_results": {"sla": []},
        "sla": {},
    }
    when = (created.strftime(_TIME), updated.strftime(_TIME))
    task = {
        "uuid": str(uuid.uuid4()),
        "title": title,
        "description": f"Exported by redline from {title} ({doc.get('command_line', '')})",
        "status": "finished",
        "tags": ["redline"],
        "env_uuid": "n/a",
        "env_name": "n/a",
        "created_at": when[0],
        "updated_at": when[1],
        "pass_sla": True,
        "subtasks": [
            {
                "uuid": str(uuid.uuid4()),
                "title": title,
                "description": "",
                "status": "finished",
                "created_at": when[0],
                "updated_at": when[1],
                "sla": {},
                "workloads": [workload],
            }
        ],
    }
    tool = doc.get("tool") or {}
    return {
        "info": {
            "generated_at": datetime.now(UTC).strftime(_TIME),
            "format_version": FORMAT_VERSION,
            "generated_by": f"redline {tool.get('version', '')}".strip(),
        },
        "tasks": [task],
    }
