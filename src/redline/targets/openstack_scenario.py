"""An openstack.* or scenario-file scenario against a given cloud: credentials resolved by
openstack.config, the endpoints read off its catalog, the lab service behind them recognised
(when redline started it), every distinct request preflighted."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from redline.lab.state import find_by_url
from redline.load.request import RequestTemplate
from redline.scenarios import credentials
from redline.scenarios.cloud import TlsSettings
from redline.scenarios.openstack import OpenStackScenario, Plan, request_plan
from redline.scenarios.scenario_file import load_scenario_file
from redline.targets.embedded import ScenarioChoice


def openstack_plan(
    name: str | None,
    scenario_file: Path | None,
    *,
    service: str | None = None,
    path: str | None = None,
    microversion: str | None = None,
    presets: str | None = None,
    request: RequestTemplate | None = None,
) -> Plan:
    """What --scenario openstack.* (with --service/--path/--microversion/--presets and the
    --method/--header/--body of `request`) or --scenario-file asks for; nothing is sent."""
    if scenario_file is not None:
        return load_scenario_file(scenario_file)
    assert name is not None
    r = request or RequestTemplate()
    return request_plan(
        name,
        service=service,
        path=path,
        method=r.method,
        microversion=microversion,
        headers=r.headers,
        body=r.body,
        presets=presets,
    )


def openstack_scenario(
    plan: Plan,
    given: Mapping[str, str | None],
    cloud: str | None = None,
    *,
    tls: TlsSettings | None = None,
    tokens: int = 10,
) -> ScenarioChoice:
    """The scenario of `plan` against the cloud the options, clouds.yaml and OS_* describe."""
    opened = credentials.resolve(given, cloud, tls=tls)
    scenario = OpenStackScenario(plan, opened, tokens=tokens)
    scenario.preflight()
    return ScenarioChoice(scenario, find_by_url(scenario.url))
