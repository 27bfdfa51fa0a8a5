"""Options shared by `run` and `capacity` for scenarios (keystone.*) and OpenStack credentials."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Optional

import typer

from redline.cli.options import GeneratorOptions, RequestOptions
from redline.errors import UserError
from redline.jobs.diagnosis import unit_of_scenario
from redline.scenarios.cloud import TlsSettings
from redline.scenarios.keystone import SCENARIOS
from redline.targets.embedded import ScenarioChoice
from redline.targets.openstack_scenario import openstack_plan, openstack_scenario
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
    os_auth_type: Annotated[
        Optional[str],
        typer.Option(
            "--os-auth-type",
            help="keystoneauth1 plugin: password, v3applicationcredential, token, … (also OS_AUTH_TYPE).",
            rich_help_panel=_P,
        ),
    ] = None
    os_application_credential_id: Annotated[
        Optional[str], typer.Option("--os-application-credential-id", rich_help_panel=_P)
    ] = None
    os_application_credential_name: Annotated[
        Optional[str], typer.Option("--os-application-credential-name", rich_help_panel=_P)
    ] = None
    # Not in the repr, like the password.
    os_application_credential_secret: Annotated[
        Optional[str],
        typer.Option(
            "--os-application-credential-secret",
            help="Better: OS_APPLICATION_CREDENTIAL_SECRET or clouds.yaml/secure.yaml.",
            rich_help_panel=_P,
        ),
    ] = field(default=None, repr=False)
    os_token: Annotated[
        Optional[str],
        typer.Option("--os-token", help="auth_type token: an existing token (better: OS_TOKEN).", rich_help_panel=_P),
    ] = field(default=None, repr=False)
    os_region_name: Annotated[Optional[str], typer.Option("--os-region-name", rich_help_panel=_P)] = None
    os_interface: Annotated[
        Optional[str],
        typer.Option("--os-interface", help="Catalog interface: public, internal or admin.", rich_help_panel=_P),
    ] = None
    os_cacert: Annotated[
        Optional[str],
        typer.Option("--os-cacert", help="CA bundle for the cloud's TLS (like --ca-file).", rich_help_panel=_P),
    ] = None
    os_cert: Annotated[
        Optional[str], typer.Option("--os-cert", help="Client certificate (mutual TLS), PEM.", rich_help_panel=_P)
    ] = None
    os_key: Annotated[Optional[str], typer.Option("--os-key", help="Its key, PEM.", rich_help_panel=_P)] = None
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
    # openstack.* and scenario files (redline.scenarios.openstack, redline.scenarios.scenario_file)
    service: Annotated[
        Optional[str],
        typer.Option(
            "--service",
            help="openstack.request: catalog service type (compute, image, network, placement, identity, …).",
            rich_help_panel=_P,
        ),
    ] = None
    path: Annotated[
        Optional[str],
        typer.Option(
            "--path",
            help="openstack.request: path under the catalog endpoint, e.g. /servers/detail.",
            rich_help_panel=_P,
        ),
    ] = None
    microversion: Annotated[
        Optional[str],
        typer.Option(
            "--microversion",
            help="openstack.*: API microversion, e.g. 2.79 (OpenStack-API-Version header).",
            rich_help_panel=_P,
        ),
    ] = None
    presets: Annotated[
        Optional[str],
        typer.Option(
            "--presets",
            help="openstack.mix: presets and weights, e.g. servers-detail=4,images=1 (default: the read mix).",
            rich_help_panel=_P,
        ),
    ] = None
    scenario_file: Annotated[
        Optional[Path],
        typer.Option(
            "--scenario-file",
            help="A YAML request mix or multi-step iteration (docs/scenarios.md); instead of --scenario.",
            rich_help_panel=_P,
        ),
    ] = None
    tokens: Annotated[
        int,
        typer.Option(
            "--tokens", help="openstack.* and scenario files: distinct tokens sent in turn.", rich_help_panel=_P
        ),
    ] = 10

    def auth_options(self) -> dict[str, str | None]:
        """The --os-* options under openstack.config's names (None: not given)."""
        return {
            "auth_url": self.os_auth_url,
            "auth_type": self.os_auth_type,
            "username": self.os_username,
            "password": self.os_password,
            "project_name": self.os_project_name,
            "user_domain_name": self.os_user_domain_name,
            "project_domain_name": self.os_project_domain_name,
            "application_credential_id": self.os_application_credential_id,
            "application_credential_name": self.os_application_credential_name,
            "application_credential_secret": self.os_application_credential_secret,
            "token": self.os_token,
            "region_name": self.os_region_name,
            "interface": self.os_interface,
            "cacert": self.os_cacert,
            "cert": self.os_cert,
            "key": self.os_key,
        }


def choose_scenario(
    options: ScenarioOptions, url: Optional[str], generator: GeneratorOptions, request: RequestOptions
) -> ScenarioChoice | None:
    """The scenario the options ask for (checked, preflighted), or None for plain --url runs.
    `generator`'s --ca-file/--insecure reach both the keystoneauth1 session and the load Target."""
    if options.scenario_file is not None or (options.scenario or "").startswith("openstack."):
        return _openstack_choice(options, url, generator, request)
    if options.scenario is None:
        return None
    if url is not None:
        raise UserError("--scenario takes its target from --os-auth-url (or OS_AUTH_URL, --os-cloud), not --url")
    return keystone_scenario(
        options.scenario,
        options.auth_options(),
        options.os_cloud,
        tls=TlsSettings(verify=not generator.insecure, ca_file=generator.ca_file),
        users=options.users,
        users_project=options.users_project,
        token_pool=options.token_pool,
        mix=options.mix,
        hash_cost=options.password_hash_cost,
    )


def _openstack_choice(
    options: ScenarioOptions, url: Optional[str], generator: GeneratorOptions, request: RequestOptions
) -> ScenarioChoice:
    if options.scenario_file is not None and options.scenario is not None:
        raise UserError("give --scenario or --scenario-file, not both")
    if url is not None:
        raise UserError(
            "openstack scenarios take their endpoints from the catalog of --os-auth-url (or --os-cloud), not --url"
        )
    plan = openstack_plan(
        options.scenario,
        options.scenario_file,
        service=options.service,
        path=options.path,
        microversion=options.microversion,
        presets=options.presets,
        request=request.template(),
    )
    return openstack_scenario(
        plan,
        options.auth_options(),
        options.os_cloud,
        tls=TlsSettings(verify=not generator.insecure, ca_file=generator.ca_file),
        tokens=options.tokens,
    )


def unit_of(chosen: ScenarioChoice | None) -> str:
    """What one request of the scenario is, for sentences such as "0.96 ms of CPU per token issue"."""
    return "request" if chosen is None else unit_of_scenario(chosen.scenario.name)
