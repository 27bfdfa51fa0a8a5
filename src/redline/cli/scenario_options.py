"""Options shared by `run` and `capacity` for scenarios (keystone.*) and OpenStack credentials."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import typer

from redline.errors import UserError
from redline.lab.embedded import EmbeddedIdentity
from redline.lab.state import ServiceState, find_by_url
from redline.scenarios import credentials
from redline.scenarios.keystone import SCENARIOS, KeystoneOptions, KeystoneScenario, expand_users, parse_mix, v3_url

_P = "scenario"  # rich help panel

SCENARIO = typer.Option(None, "--scenario", help=f"What a request is: {', '.join(SCENARIOS)} (default: --url with --method/--header/--body).", rich_help_panel=_P)
OS_CLOUD = typer.Option(None, "--os-cloud", help="Cloud in clouds.yaml (also OS_CLOUD).", rich_help_panel=_P)
OS_AUTH_URL = typer.Option(None, "--os-auth-url", help="Keystone URL (also OS_AUTH_URL).", rich_help_panel=_P)
OS_USERNAME = typer.Option(None, "--os-username", rich_help_panel=_P)
OS_PASSWORD = typer.Option(None, "--os-password", help="Better: OS_PASSWORD or clouds.yaml (a command line is visible to every user).", rich_help_panel=_P)
OS_PROJECT_NAME = typer.Option(None, "--os-project-name", rich_help_panel=_P)
OS_USER_DOMAIN_NAME = typer.Option(None, "--os-user-domain-name", rich_help_panel=_P)
OS_PROJECT_DOMAIN_NAME = typer.Option(None, "--os-project-domain-name", rich_help_panel=_P)
USERS = typer.Option(None, "--users", help="keystone.issue: users to cycle through, e.g. bench-{0..9} (same password as --os-username).", rich_help_panel=_P)
USERS_PROJECT = typer.Option(None, "--users-project", help="Project of the --users (default: --os-project-name).", rich_help_panel=_P)
TOKEN_POOL = typer.Option(100, "--token-pool", help="keystone.validate: distinct tokens validated in turn.", rich_help_panel=_P)
MIX = typer.Option("1:4", "--mix", help="keystone.mix: issues to validations, e.g. 1:4.", rich_help_panel=_P)
HASH_COST = typer.Option(None, "--password-hash-cost", help="The users' bcrypt cost, to record (known already for lab targets).", rich_help_panel=_P)


@dataclass(frozen=True)
class ScenarioChoice:
    scenario: KeystoneScenario
    lab: ServiceState | None  # the redline lab service behind the URL, if any

    def target_description(self) -> dict:
        d: dict = {"url": self.scenario.url, "embedded": False, "scenario": self.scenario.describe()}
        if self.lab is not None:
            d["lab"] = self.lab.describe()
        return d


def choose_scenario(
    name: Optional[str],
    url: Optional[str],
    os_cloud: Optional[str],
    os_auth_url: Optional[str],
    os_username: Optional[str],
    os_password: Optional[str],
    os_project_name: Optional[str],
    os_user_domain_name: Optional[str],
    os_project_domain_name: Optional[str],
    users: Optional[str],
    users_project: Optional[str],
    token_pool: int,
    mix: str,
    hash_cost: Optional[int],
) -> ScenarioChoice | None:
    """The scenario the options ask for (checked, preflighted), or None for plain --url runs."""
    if name is None:
        return None
    if url is not None:
        raise UserError("--scenario takes its target from --os-auth-url (or OS_AUTH_URL, --os-cloud), not --url")
    creds = credentials.resolve(
        {
            "auth_url": os_auth_url,
            "username": os_username,
            "password": os_password,
            "project_name": os_project_name,
            "user_domain_name": os_user_domain_name,
            "project_domain_name": os_project_domain_name,
        },
        os_cloud,
    )
    lab = find_by_url(v3_url(creds.auth_url))
    if hash_cost is None and lab is not None:
        hash_cost = lab.password_hash_rounds
    opts = KeystoneOptions(
        scenario=name,
        credentials=creds,
        users=expand_users(users) if users else (),
        users_project=users_project,
        token_pool=token_pool,
        mix=parse_mix(mix),
        password_hash_rounds=hash_cost,
    )
    scenario = KeystoneScenario(opts)
    scenario.preflight()
    return ScenarioChoice(scenario, lab)


def embedded_choice(name: str, emb: EmbeddedIdentity, token_pool: int, mix: str) -> ScenarioChoice:
    """A scenario against the embedded reference identity service (its own users and password)."""
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
