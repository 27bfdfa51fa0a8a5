"""Rally task files (format v1 and v2) → the equivalent redline commands, and what cannot map.

Rally counts *iterations* (one scenario call, possibly several HTTP requests); redline counts
requests offered open-loop at a rate. Every approximation is said in a note, every part of the
task with no redline equivalent in `unmapped`: a translation never silently drops a setting.
"""

from __future__ import annotations

import json
import math
import shlex
from dataclasses import dataclass
from typing import Any

import yaml

from redline.errors import UserError

# Rally's names → (redline scenario, HTTP requests per Rally iteration, extra options, note).
_SCENARIOS: dict[str, tuple[str, int, tuple[str, ...], str]] = {
    "Authenticate.keystone": ("keystone.issue", 1, (), ""),
    "KeystoneBasic.authenticate_user_and_validate_token": (
        "keystone.mix",
        2,
        ("--mix", "1:1"),
        "one Rally iteration is a token issue then its validation; redline offers the two as separate"
        " requests 1:1 (the validations go to pooled tokens, not the token just issued), at twice the"
        " iteration rate",
    ),
}

# Authenticate.validate_<service>: each iteration makes `repetitions` list calls to that
# service with the user's token (rally_openstack/task/scenarios/authenticate) → the same call
# as an openstack.* scenario (options after --scenario).
_VALIDATE: dict[str, tuple[tuple[str, ...], str]] = {
    "nova": (("openstack.flavors",), "novaclient flavors.list(): GET /flavors/detail"),
    "glance": (("openstack.images",), "glanceclient images.list(name=…): GET /v2/images (Rally adds a name filter)"),
    "neutron": (("openstack.networks",), "neutronclient list_networks(): GET /v2.0/networks"),
    "cinder": (
        ("openstack.request", "--service", "volumev3", "--path", "/types"),
        "cinderclient volume_types.list(): GET /types",
    ),
    "heat": (
        ("openstack.request", "--service", "orchestration", "--path", "/stacks?limit=0"),
        "heatclient stacks.list(limit=0): GET /stacks?limit=0",
    ),
}

_RALLY_RPS_TIMEOUT_S = 600.0  # rally's rps/constant runner default iteration timeout


@dataclass(frozen=True)
class Translation:
    """One Rally workload and what it becomes."""

    subtask: int  # 1-based, in file order
    workload: int  # 1-based within its subtask
    scenario: str  # Rally's scenario name
    argv: tuple[str, ...] | None  # the redline command, or None when the workload cannot map
    notes: tuple[str, ...]  # how it was mapped where it is not one-to-one
    unmapped: tuple[str, ...]  # what of the workload has no redline equivalent

    @property
    def command(self) -> str | None:
        return None if self.argv is None else shlex.join(self.argv)

    def to_json(self) -> dict[str, Any]:
        return {
            "subtask": self.subtask,
            "workload": self.workload,
            "scenario": self.scenario,
            "argv": None if self.argv is None else list(self.argv),
            "command": self.command,
            "notes": list(self.notes),
            "unmapped": list(self.unmapped),
        }


@dataclass(frozen=True)
class _Workload:
    subtask: int
    workload: int
    name: str
    args: dict[str, Any]
    runner_type: str
    runner: dict[str, Any]
    contexts: dict[str, Any]
    sla: dict[str, Any]
    hooks: list[Any]


def parse_task(text: str, where: str) -> Any:
    """A task file's content as data (YAML is a superset of JSON, so one parser reads both)."""
    if "{{" in text or "{%" in text:
        raise UserError(
            f"{where} is a Jinja2 task template: render it first (rally task start --task-args … renders it)"
        )
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise UserError(f"{where} is not a Rally task (neither JSON nor YAML): {str(exc).splitlines()[0]}") from None


def _obj(value: Any, what: str, where: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise UserError(f"{where}: {what} must be a mapping, not {type(value).__name__}")
    return value


def _workloads(task: Any, where: str) -> list[_Workload]:
    if not isinstance(task, dict) or not task:
        raise UserError(f"{where} is not a Rally task (expected a mapping of scenarios, or version: 2 with subtasks)")
    out: list[_Workload] = []
    if task.get("version") == 2:
        subtasks = task.get("subtasks")
        if not isinstance(subtasks, list) or not subtasks:
            raise UserError(f"{where}: a version 2 task needs a non-empty list of subtasks")
        for si, sub in enumerate(subtasks, 1):
            sub = _obj(sub, f"subtask {si}", where)
            items = sub.get("workloads", [sub])
            if not isinstance(items, list):
                raise UserError(f"{where}: subtask {si}: workloads must be a list")
            for wi, item in enumerate(items, 1):
                item = _obj(item, f"subtask {si} workload {wi}", where)
                scenario = _obj(item.get("scenario"), "scenario", where)
                runner = _obj(item.get("runner", {"serial": {}}), "runner", where)
                if len(scenario) != 1 or len(runner) != 1:
                    raise UserError(f"{where}: subtask {si}: scenario and runner each need exactly one entry")
                (name, args), (rtype, rargs) = next(iter(scenario.items())), next(iter(runner.items()))
                out.append(
                    _Workload(
                        si,
                        wi,
                        str(name),
                        _obj(args, "scenario args", where),
                        str(rtype),
                        _obj(rargs, "runner", where),
                        _obj(item.get("contexts"), "contexts", where),
                        _obj(item.get("sla"), "sla", where),
                        list(item.get("hooks") or []),
                    )
                )
        return out
    if "version" in task and task["version"] != 1:
        raise UserError(f"{where}: Rally task format version {task['version']!r} is not 1 or 2")
    for si, (name, items) in enumerate(((k, v) for k, v in task.items() if k != "version"), 1):
        if not isinstance(items, list):
            raise UserError(f"{where}: {name} must map to a list of workloads")
        for wi, item in enumerate(items, 1):
            item = _obj(item, f"{name} workload {wi}", where)
            runner = dict(_obj(item.get("runner", {"type": "serial"}), "runner", where))
            rtype = str(runner.pop("type", "serial"))
            out.append(
                _Workload(
                    si,
                    wi,
                    str(name),
                    _obj(item.get("args"), "args", where),
                    rtype,
                    runner,
                    _obj(item.get("context"), "context", where),
                    _obj(item.get("sla"), "sla", where),
                    list(item.get("hooks") or []),
                )
            )
    return out


def _num(value: Any, what: str, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0 or not math.isfinite(value):
        raise UserError(f"{where}: {what} must be a non-negative number, not {value!r}")
    return float(value)


def _g(x: float) -> str:
    return f"{x:g}"


def _rps_schedule(rps: dict[str, Any], times: float, where: str) -> tuple[float, float, float]:
    """(start, end, seconds) of Rally's stepped rps ramp (start, +step every `duration` s, up to end),
    then held at end until `times` iterations have started."""
    start = _num(rps.get("start", 1), "rps.start", where)
    end = _num(rps.get("end", start), "rps.end", where)
    step = _num(rps.get("step", 1), "rps.step", where)
    per = _num(rps.get("duration", 1), "rps.duration", where)
    if start <= 0 or end < start or step <= 0 or per <= 0:
        raise UserError(f"{where}: rps needs 0 < start <= end, step > 0, duration > 0")
    left, seconds, rate = times, 0.0, start
    while rate < end and left > rate * per:
        left -= rate * per
        seconds += per
        rate = min(end, rate + step)
    return start, end, seconds + left / rate


_VALIDATE_NAMES = frozenset(f"Authenticate.validate_{k}" for k in _VALIDATE)


def _validate_scenario(w: _Workload, where: str, notes: list[str]) -> tuple[str, int, tuple[str, ...], str] | None:
    """Authenticate.validate_<service> as (scenario, requests per iteration, options, note)."""
    if w.name not in _VALIDATE_NAMES:
        return None
    service = w.name.removeprefix("Authenticate.validate_")
    (scenario, *extra), call = _VALIDATE[service]
    repetitions = int(_num(w.args.get("repetitions", 1), "args.repetitions", where))
    if repetitions < 1:
        raise UserError(f"{where}: args.repetitions must be at least 1")
    if "repetitions" not in w.args:
        notes.append("args.repetitions is required by Rally; taken as 1")
    note = (
        f"one Rally iteration is {repetitions} × {call} with the user's token, which {service} validates with"
        f" Keystone; redline sends the same call at {repetitions}× the iteration rate with pooled tokens (--tokens):"
        " Rally's per-iteration client authenticates too — for that path as well use a two-step scenario file"
        " (examples/scenarios/token-then-catalog.yaml)"
    )
    return scenario, repetitions, tuple(extra), note


def _translate(w: _Workload, where: str) -> Translation:
    notes: list[str] = []
    unmapped: list[str] = []
    extra: tuple[str, ...]
    known = _SCENARIOS.get(w.name) or _validate_scenario(w, where, notes)
    if known is None:
        if w.name.startswith("Authenticate.validate_"):
            service = w.name.removeprefix("Authenticate.validate_")
            unmapped.append(
                f"scenario {w.name}: redline has no preset for {service} (it maps validate_"
                f"{', validate_'.join(sorted(_VALIDATE))}); write its list call as a scenario file (docs/scenarios.md)"
            )
        else:
            unmapped.append(
                f"scenario {w.name}: redline has no equivalent (it maps Authenticate.keystone,"
                " KeystoneBasic.authenticate_user_and_validate_token and Authenticate.validate_*)"
            )
        scenario, per_iteration, extra = None, 1, ()
    else:
        scenario, per_iteration, extra, note = known
        if note:
            notes.append(note)
        args = {k: v for k, v in w.args.items() if not (w.name in _VALIDATE_NAMES and k == "repetitions")}
        if args:
            unmapped.append(f"scenario args {json.dumps(args, sort_keys=True)} (the scenario takes none in redline)")

    argv: list[str] | None = None
    r = w.runner
    if w.runner_type == "rps":
        times = _num(r.get("times", 1), "runner.times", where)
        rps = r.get("rps", 1)
        if isinstance(rps, dict):
            start, end, seconds = _rps_schedule(rps, times, where)
            rate_args = ["--rate", _g(start * per_iteration), "--end-rate", _g(end * per_iteration)]
            notes.append(
                f"Rally steps the rate by {_g(rps.get('step', 1))}/s every {_g(rps.get('duration', 1))} s;"
                " redline ramps it linearly over the run"
            )
        else:
            rate = _num(rps, "runner.rps", where)
            if rate <= 0:
                raise UserError(f"{where}: runner.rps must be above 0")
            seconds = times / rate
            rate_args = ["--rate", _g(rate * per_iteration)]
        argv = ["redline", "run", *rate_args, "--duration", _g(round(seconds, 3))]
        if "max_concurrency" in r:
            argv += ["--connections", str(int(_num(r["max_concurrency"], "runner.max_concurrency", where)))]
            notes.append(
                "max_concurrency: Rally stops starting iterations while that many are in flight (they start late);"
                " redline's --connections cap queues them inside the generator and counts the wait in latency"
            )
    elif w.runner_type == "constant":
        concurrency = int(_num(r.get("concurrency", 1), "runner.concurrency", where))
        argv = ["redline", "capacity", "--connections", str(concurrency * per_iteration)]
        notes.append(
            f"the constant runner is closed-loop ({concurrency} iterations in flight, the rate is whatever the target"
            " answers at); redline's equivalent question is the highest open-loop rate the target sustains with the"
            " same number of connections: `redline capacity`"
        )
        if "times" in r:
            unmapped.append(
                f"runner.times {r['times']} (capacity chooses its probes' lengths: --protocol quick, thorough or paper)"
            )
    else:
        unmapped.append(f"runner {w.runner_type} (redline maps the rps and constant runners)")

    if argv is not None and w.runner_type in ("rps", "constant"):
        timeout = r.get("timeout", _RALLY_RPS_TIMEOUT_S)
        argv += ["--timeout", _g(_num(timeout, "runner.timeout", where))]
        if "max_cpu_count" in r:
            unmapped.append("runner.max_cpu_count (redline: --workers / --cpus)")

    for name in w.contexts:
        if name in ("users", "existing_users"):
            unmapped.append(
                f"context {name}: redline uses existing users — give --os-cloud (or OS_* variables) and, for several"
                " users, --users bench-{0..N}"
            )
        else:
            unmapped.append(f"context {name}")

    thresholds: list[str] = []
    for name, value in w.sla.items():
        spec = value if isinstance(value, dict) else {}
        if name == "failure_rate" and set(spec) <= {"max", "min"} and "max" in spec:
            thresholds.append(f"errors<={_g(_num(spec['max'], 'sla.failure_rate.max', where))}%")
            if "min" in spec:
                unmapped.append("sla failure_rate.min")
        elif name == "max_avg_duration":
            thresholds.append(f"avg<={_g(_num(value, 'sla.max_avg_duration', where))}s")
        elif name == "max_seconds_per_iteration":
            thresholds.append(f"max<={_g(_num(value, 'sla.max_seconds_per_iteration', where))}s")
        else:
            unmapped.append(f"sla {name}")
    if thresholds and per_iteration > 1:
        notes.append(
            f"the thresholds judge each request, where Rally's SLA judges each iteration ({per_iteration} requests)"
        )

    for hook in w.hooks:
        label = hook.get("name") or next(iter(hook.get("action", {}) or {}), "?") if isinstance(hook, dict) else "?"
        unmapped.append(f"hook {label}")

    if argv is None or scenario is None:
        return Translation(w.subtask, w.workload, w.name, None, tuple(notes), tuple(unmapped))
    argv[2:2] = ["--scenario", scenario, *extra]
    for t in thresholds:
        argv += ["--threshold", t]
    return Translation(w.subtask, w.workload, w.name, tuple(argv), tuple(notes), tuple(unmapped))


def translate_task(text: str, where: str) -> tuple[Translation, ...]:
    """Every workload of the task file's `text`, translated (UserError on a malformed task)."""
    return tuple(_translate(w, where) for w in _workloads(parse_task(text, where), where))
