"""The target redline starts itself when it is given no URL, on its own CPU.

A library caller gets the same target the commands use, stopped when the block ends:

    with embedded_target("identity") as t:
        scenario = t.choice.scenario  # keystone.issue against the fresh service
        req = CapacityRequest(Target.from_url(t.url), scenario.request(60.0), PROTOCOLS["quick"],
                              cpus=t.generator_cpus, target_processes=t.processes,
                              request_for=scenario.request)
        run_capacity(req, t.description, Path("results"), "capacity-embedded")
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any, Literal
from urllib.parse import urlsplit

from redline.lab.calibrated import CalibratedConfig
from redline.lab.embedded import DEFAULT_SCENARIO, EmbeddedIdentity, start_identity
from redline.lab.process import start_calibrated
from redline.lab.state import ServiceState
from redline.load.request import RequestTemplate
from redline.monitor import PidTree
from redline.scenarios.base import Scenario
from redline.scenarios.keystone import KeystoneOptions, KeystoneScenario, parse_mix

EmbeddedKind = Literal["identity", "calibrated"]
EMBEDDED_KINDS: tuple[EmbeddedKind, ...] = ("identity", "calibrated")
CALIBRATED = CalibratedConfig(servers=4, service_ms=10.0)  # capacity 400/s

CPUs = tuple[int, ...] | None  # None: whichever CPUs this process may use


@dataclass(frozen=True)
class ScenarioChoice:
    scenario: Scenario
    lab: ServiceState | None  # the redline lab service behind the URL, if any

    def target_description(self) -> dict[str, Any]:
        d: dict[str, Any] = {"url": self.scenario.url, "embedded": False, "scenario": self.scenario.describe()}
        if self.lab is not None:
            d["lab"] = self.lab.describe()
        return d

    @property
    def processes(self) -> PidTree | None:
        """The lab service's processes (helpers included), to monitor as the target."""
        return None if self.lab is None else PidTree(self.lab.pid, self.lab.extra_pids)


@dataclass(frozen=True)
class EmbeddedTarget:
    """A started embedded target: where it listens, what to record and monitor, which CPUs."""

    kind: EmbeddedKind
    url: str
    description: dict[str, Any]  # the run's target description
    processes: PidTree
    generator_cpus: CPUs
    target_cpus: CPUs
    banner: str  # one line saying what was started where
    choice: ScenarioChoice | None = None  # identity: the keystone scenario against it


def split_cpus_for_embedded(generator_cpus: CPUs) -> tuple[CPUs, CPUs]:
    """Give the embedded target the last CPU and the generator the rest (when there are two or more)."""
    available = tuple(sorted(os.sched_getaffinity(0)))
    if len(available) < 2:
        return generator_cpus, None
    target_cpus = (available[-1],)
    return generator_cpus or available[:-1], target_cpus


def with_url_path(template: RequestTemplate, url: str) -> RequestTemplate:
    """The template with the URL's path and query as its request target."""
    parts = urlsplit(url)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return replace(template, path=path)


@contextmanager
def embedded_target(
    kind: EmbeddedKind,
    generator_cpus: CPUs = None,
    *,
    scenario: str | None = None,
    token_pool: int = 100,
    mix: str = "1:4",
) -> Iterator[EmbeddedTarget]:
    """Start the embedded target apart from the generator's CPUs; stop it on exit, whatever happens.

    identity: the reference identity service with `scenario` (default keystone.issue)
    against it, preflighted; calibrated: a queue of known capacity (no scenario).
    """
    if kind not in EMBEDDED_KINDS:
        raise ValueError(f"embedded target kind must be one of {', '.join(EMBEDDED_KINDS)}, not {kind!r}")
    if kind == "calibrated" and scenario is not None:
        raise ValueError("a scenario needs a Keystone: the calibrated target is plain HTTP")
    gen_cpus, target_cpus = split_cpus_for_embedded(generator_cpus)
    if kind == "identity":
        identity = start_identity(target_cpus)
        try:
            yield _on_identity(
                identity,
                gen_cpus,
                target_cpus,
                _identity_choice(scenario or DEFAULT_SCENARIO, identity, token_pool, mix),
            )
        finally:
            identity.stop()
        return
    lab = start_calibrated(CALIBRATED.servers, CALIBRATED.service_ms, cpus=target_cpus)
    try:
        url = lab.url + "/"
        description = {"url": url, "embedded": True, "cpus": list(target_cpus or ()), **CALIBRATED.describe()}
        yield EmbeddedTarget("calibrated", url, description, PidTree(lab.pid), gen_cpus, target_cpus, lab.banner)
    finally:
        lab.stop()


def _on_identity(
    identity: EmbeddedIdentity, gen_cpus: CPUs, target_cpus: CPUs, choice: ScenarioChoice
) -> EmbeddedTarget:
    description = choice.target_description() | {
        "embedded": True,
        "cpus": list(target_cpus or ()),
        "pid": identity.state.pid,
    }
    banner = (
        f"embedded target: the reference identity service on {identity.state.url}, CPU {_cpu_list(target_cpus)};"
        f" generator on CPU {_cpu_list(gen_cpus)}"
    )
    processes = PidTree(identity.state.pid, identity.state.extra_pids)
    return EmbeddedTarget(
        "identity", choice.scenario.url, description, processes, gen_cpus, target_cpus, banner, choice
    )


def _identity_choice(name: str, emb: EmbeddedIdentity, token_pool: int, mix: str) -> ScenarioChoice:
    """A scenario against the embedded service, with its own users and password."""
    opts = KeystoneOptions(
        scenario=name,
        credentials=emb.credentials,
        users=emb.state.bench_users,
        users_project=emb.state.bench_project,
        token_pool=token_pool,
        mix=parse_mix(mix),
        password_hash_rounds=emb.state.password_hash_rounds,
    )
    scenario = KeystoneScenario(opts)
    scenario.preflight()
    return ScenarioChoice(scenario, emb.state)


def _cpu_list(cpus: CPUs) -> str:
    return ",".join(map(str, cpus)) if cpus else "any"
