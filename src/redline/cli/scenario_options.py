"""Options shared by `run` and `capacity` for scenarios (keystone.*) and OpenStack credentials."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Optional

import typer

from redline.errors import UserError
from redline.jobs.diagnosis import unit_of_scenario
from redline.scenarios.keystone import SCENARIOS
from redline.targets.embedded import ScenarioChoice
from redline.targets.scenario import keystone_scenario

_P = "scenario"  # rich help panel


@dataclass(frozen=True)
class ScenarioOptions:
    """The scenario options as given; `choose_scenario` checks them against the target."""

    scenario: Annotated[
        Optional[str],
        typer.Option(
            "--scenario",
            help=f"What a request is: {', '.join(SCENARIOS)} (default: --url with --method/--header/--body).",
            rich_help_panel=_P,
        ),
    ] = None
    os_cloud: Annotated[
        Optional[str], typer.Option("--os-cloud", help="Cloud in clouds.yaml (also OS_CLOUD).", rich_help_panel=_P)
    ] = None
    os_auth_url: Annotated[
        Optional[str], typer.Option("--os-auth-url", help="Keystone URL (also OS_AUTH_URL).", rich_help_panel=_P)
    ] = None
    os_username: Annotated[Optional[str], typer.Option("--os-username", rich_help_panel=_P)] = None
    # Not in the repr: a traceback or a debug print must not show the password.
    os_password: Annotated[
        Optional[str],
        typer.Option(
            "--os-password",
            help="Better: OS_PASSWORD or clouds.yaml (a command line is visible to every user).",
            rich_help_panel=_P,
        ),
    ] = field(default=None, repr=False)
    os_project_name: Annotated[Optional[str], typer.Option("--os-project-name", rich_help_panel=_P)] = None
    os_user_domain_name: Annotated[Optional[str], typer.Option("--os-user-domain-name", rich_help_panel=_P)] = None
    os_project_domain_name: Annotated[Optional[str], typer.Option("--os-project-domain-name", rich_help_panel=_P)] = (
        None
    )
    users: Annotated[
        Optional[str],
        typer.Option(
            "--users",
            help="keystone.issue: users to cycle through, e.g. bench-{0..9} (same password as --os-username).",
            rich_help_panel=_P,
        ),
    ] = None
    users_project: Annotated[
        Optional[str],
        typer.Option(
            "--users-project", help="Project of the --users (default: --os-project-name).", rich_help_panel=_P
        ),
    ] = None
    token_pool: Annotated[
        int,
        typer.Option("--token-pool", help="keystone.validate: distinct tokens validated in turn.", rich_help_panel=_P),
    ] = 100
    mix: Annotated[
        str, typer.Option("--mix", help="keystone.mix: issues to validations, e.g. 1:4.", rich_help_panel=_P)
    ] = "1:4"
    password_hash_cost: Annotated[
        Optional[int],
        typer.Option(
            "--password-hash-cost",
            help="The users' bcrypt cost, to record (known already for lab targets).",
            rich_help_panel=_P,
        ),
    ] = None


def choose_scenario(options: ScenarioOptions, url: Optional[str]) -> ScenarioChoice | None:
    """The scenario the options ask for (checked, preflighted), or None for plain --url runs."""
    if options.scenario is None:
        return None
    if url is not None:
        raise UserError("--scenario takes its target from --os-auth-url (or OS_AUTH_URL, --os-cloud), not --url")
    given = {
        "auth_url": options.os_auth_url,
        "username": options.os_username,
        "password": options.os_password,
        "project_name": options.os_project_name,
        "user_domain_name": options.os_user_domain_name,
        "project_domain_name": options.os_project_domain_name,
    }
    return keystone_scenario(
        options.scenario,
        given,
        options.os_cloud,
        users=options.users,
        users_project=options.users_project,
        token_pool=options.token_pool,
        mix=options.mix,
        hash_cost=options.password_hash_cost,
    )


def unit_of(chosen: ScenarioChoice | None) -> str:
    """What one request of the scenario is, for sentences such as "0.96 ms of CPU per token issue"."""
    return "request" if chosen is None else unit_of_scenario(chosen.scenario.opts.scenario)
