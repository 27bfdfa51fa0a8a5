"""Where a scenario's credentials come from.

Clouds are read by openstacksdk's config loader (`redline.scenarios.cloud.open_cloud`):
clouds.yaml (OS_CLIENT_CONFIG_FILE, ./, ~/.config/openstack/, /etc/openstack/) merged
with secure.yaml, the OS_* variables, and the --os-* options over both; every
keystoneauth1 auth type (password, v3applicationcredential, token, …), region,
interface, cacert, client cert/key, insecure. The resulting Cloud says in `source` which
of these it came from ("cloud 'lab' in ./clouds.yaml + options").

`Credentials` are the password credentials redline holds itself, for the services it
starts (the embedded identity service): no file or variable is consulted for them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from redline.scenarios.cloud import Cloud, TlsSettings, open_cloud

_DEFAULT_DOMAIN = "Default"


@dataclass(frozen=True)
class Credentials:
    auth_url: str
    username: str
    password: str = field(repr=False)
    project_name: str
    user_domain_name: str = _DEFAULT_DOMAIN
    project_domain_name: str = _DEFAULT_DOMAIN
    source: str = "options"  # where they came from (for the run's description)

    def describe(self) -> dict[str, str]:
        """Everything but the password."""
        return {
            "auth_url": self.auth_url,
            "username": self.username,
            "project_name": self.project_name,
            "user_domain_name": self.user_domain_name,
            "project_domain_name": self.project_domain_name,
            "source": self.source,
        }

    def open(self, tls: TlsSettings | None = None) -> Cloud:
        """A Cloud from these values alone (neither clouds.yaml nor OS_* can change them)."""
        cloud = open_cloud(
            {
                "auth_type": "password",
                "auth_url": self.auth_url,
                "username": self.username,
                "password": self.password,
                "project_name": self.project_name,
                "user_domain_name": self.user_domain_name,
                "project_domain_name": self.project_domain_name,
            },
            None,
            tls,
            environ={},
            files=False,
        )
        cloud.source = self.source
        return cloud


def resolve(
    options: Mapping[str, str | None],
    cloud: str | None,
    environ: Mapping[str, str] | None = None,
    tls: TlsSettings | None = None,
) -> Cloud:
    """The cloud the options, clouds.yaml (+ secure.yaml) and OS_* describe (options win)."""
    return open_cloud(options, cloud, tls, environ)
