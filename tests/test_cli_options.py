"""Option groups shared by `run` and `capacity`, `--version`, and the exit of a bare group."""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Annotated

import pytest
import typer

from conftest import run_redline
from redline import __version__
from redline.cli.app import app
from redline.cli.options import GeneratorOptions, OutputOptions, RequestOptions, option_groups, parse_cpus
from redline.cli.scenario_options import ScenarioOptions
from redline.errors import UserError

SCENARIO = [
    "--scenario", "--os-cloud", "--os-auth-url", "--os-username", "--os-password", "--os-project-name",
    "--os-user-domain-name", "--os-project-domain-name",
    # every keystoneauth1 auth type, region, interface and TLS (openstack.config)
    "--os-auth-type", "--os-application-credential-id", "--os-application-credential-name",
    "--os-application-credential-secret", "--os-token", "--os-region-name", "--os-interface", "--os-cacert",
    "--os-cert", "--os-key",
    "--users", "--users-project", "--token-pool", "--mix", "--password-hash-cost",
    # openstack.* scenarios and scenario files
    "--service", "--path", "--microversion", "--presets", "--scenario-file", "--tokens",
]  # fmt: skip
GATING = ["--threshold", "--junit"]  # CI gates, last
REQUEST = ["--method", "--header", "--body", "--body-file"]
GENERATOR = [
    "--workers",
    "--cpus",
    "--connections",
    "--timeout",
    "--connect-timeout",
    "--slack",
    "--insecure",
    "--ca-file",
]
OUTPUT = ["--results", "--name", "--json"]
# capacity has always had --target-pid/--target-process here; run gained them with the diagnosis
DIAGNOSIS = ["--target-pid", "--target-process", "--profile", "--audit-root"]


def _options(command: str) -> list[str]:
    click_command = typer.main.get_command(app).commands[command]  # type: ignore[attr-defined]
    return [p.opts[0] for p in click_command.params]


def test_run_and_capacity_list_their_options_in_the_order_they_always_had() -> None:
    run_own = ["--url", "--rate", "--duration", "--warmup", "--end-rate", "--arrival"]
    assert _options("run") == run_own + REQUEST + GENERATOR + ["--seed"] + DIAGNOSIS + OUTPUT + SCENARIO + GATING
    capacity_own = [
        "--url",
        "--embedded",
        "--protocol",
        "--criterion",
        "--min",
        "--max",
        "--start",
        "--resolution",
        "--slo-p99",
    ]
    assert (
        _options("capacity")
        == capacity_own + REQUEST + ["--arrival"] + GENERATOR + DIAGNOSIS + OUTPUT + SCENARIO + GATING
    )


@dataclass(frozen=True)
class _Pair:
    a: Annotated[int, typer.Option("--a")] = 1
    b: Annotated[str, typer.Option("--b")] = "x"


def test_option_groups_expand_in_place_and_hand_the_body_built_groups() -> None:
    seen: dict = {}

    @option_groups
    def body(first: int = 0, pair: _Pair = _Pair(), last: bool = False) -> None:
        seen.update(first=first, pair=pair, last=last)

    assert list(inspect.signature(body).parameters) == ["first", "a", "b", "last"]
    body(first=3, a=5, b="y", last=True)
    assert seen == {"first": 3, "pair": _Pair(5, "y"), "last": True}


def test_option_groups_refuse_a_field_that_shadows_a_parameter() -> None:
    def body(a: int = 0, pair: _Pair = _Pair()) -> None: ...

    with pytest.raises(TypeError, match="shadows"):
        option_groups(body)


def test_groups_build_what_the_commands_need() -> None:
    template = RequestOptions(method="post", header=["X-A: 1"], body="hi").template()
    assert (template.method, template.path, template.headers, template.body) == ("POST", "/", (("X-A", "1"),), b"hi")
    settings = GeneratorOptions(workers=2, connections=10, timeout=3.0, connect_timeout=1.0).settings((0,))
    assert settings == {
        "workers": 2,
        "cpus": (0,),
        "connection_cap": 10,
        "connect_timeout_s": 1.0,
        "read_timeout_s": 3.0,
        "slack_us": 100,
    }
    with pytest.raises(UserError, match="--workers must be at least 1"):
        GeneratorOptions(workers=0).generator_cpus()
    assert OutputOptions().results.name == "results"


def test_scenario_options_keep_the_password_out_of_their_repr() -> None:
    assert "s3cret" not in repr(ScenarioOptions(os_password="s3cret"))


def test_cpu_option_messages() -> None:
    assert parse_cpus(None) is None
    with pytest.raises(UserError, match=r"bad CPU list '0 1': expected e.g. 0,2-3"):
        parse_cpus("0 1")
    with pytest.raises(UserError, match="is not within the CPUs available here"):
        parse_cpus("100000")
    with pytest.raises(UserError, match="is not within the CPUs available here"):
        parse_cpus("3-1")


def test_version() -> None:
    proc = run_redline("--version")
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, f"redline {__version__}\n", "")
    assert __version__ == "0.1.0"


def test_a_group_without_a_command_shows_its_help_without_a_traceback() -> None:
    proc = run_redline("lab")
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and "identity" in proc.stdout + proc.stderr
