"""OpenStack credentials the way keystoneauth1 and openstacksdk take them.

Precedence, highest first: command-line options, then the cloud named by `--os-cloud`
(or OS_CLOUD) in clouds.yaml (merged with secure.yaml), then OS_* environment
variables. clouds.yaml is looked for where openstacksdk looks: OS_CLIENT_CONFIG_FILE,
./clouds.yaml, ~/.config/openstack/clouds.yaml, /etc/openstack/clouds.yaml.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from redline.errors import UserError

FIELDS = ("auth_url", "username", "password", "project_name", "user_domain_name", "project_domain_name")
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


def _clouds_files(name: str) -> list[Path]:
    explicit = os.environ.get("OS_CLIENT_CONFIG_FILE")
    dirs = [Path.cwd(), Path.home() / ".config" / "openstack", Path("/etc/openstack")]
    files = [Path(explicit)] if explicit else []
    return files + [d / name for d in dirs]


def _load_yaml(path: Path) -> dict[str, Any]:
    try:
        doc = yaml.safe_load(path.read_text()) or {}
    except OSError as exc:
        raise UserError(f"cannot read {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise UserError(f"{path} is not valid YAML: {str(exc).splitlines()[0]}") from None
    if not isinstance(doc, dict):
        raise UserError(f"{path} does not hold a mapping")
    return doc


def cloud_auth(cloud: str) -> tuple[dict[str, str], str]:
    """The `auth` section of `cloud` from clouds.yaml merged with secure.yaml, and the file."""
    found = next((p for p in _clouds_files("clouds.yaml") if p.is_file()), None)
    if found is None:
        raise UserError(
            f"--os-cloud {cloud}: no clouds.yaml found (looked in ./, ~/.config/openstack/, /etc/openstack/)"
        )
    clouds = _load_yaml(found).get("clouds") or {}
    if cloud not in clouds:
        raise UserError(f"--os-cloud {cloud}: no such cloud in {found} (it has: {', '.join(clouds) or 'none'})")
    auth = dict((clouds[cloud] or {}).get("auth") or {})
    secure = next((p for p in _clouds_files("secure.yaml") if p.is_file()), None)
    if secure is not None:
        auth.update(((_load_yaml(secure).get("clouds") or {}).get(cloud) or {}).get("auth") or {})
    return {k: str(v) for k, v in auth.items() if v is not None}, str(found)


def resolve(
    options: Mapping[str, str | None], cloud: str | None, environ: Mapping[str, str] | None = None
) -> Credentials:
    """Credentials from options, a clouds.yaml cloud and OS_* variables (in that order)."""
    env = os.environ if environ is None else environ
    values: dict[str, str] = {}
    sources: list[str] = []
    from_env = {f: env[f"OS_{f.upper()}"] for f in FIELDS if env.get(f"OS_{f.upper()}")}
    if from_env:
        values.update(from_env)
        sources.append("OS_* environment")
    cloud = cloud or env.get("OS_CLOUD")
    if cloud:
        auth, path = cloud_auth(cloud)
        values.update({f: auth[f] for f in FIELDS if f in auth})
        if "project_name" not in auth and "tenant_name" in auth:
            values["project_name"] = auth["tenant_name"]
        sources.append(f"cloud {cloud!r} in {path}")
    given = {f: v for f, v in options.items() if v}
    if given:
        values.update(given)
        sources.append("options")
    missing = [f for f in ("auth_url", "username", "password", "project_name") if not values.get(f)]
    if missing:
        names = ", ".join(f"--os-{m.replace('_', '-')}" for m in missing)
        raise UserError(f"missing credentials: {names} (or OS_* variables, or --os-cloud)")
    return Credentials(
        auth_url=values["auth_url"],
        username=values["username"],
        password=values["password"],
        project_name=values["project_name"],
        user_domain_name=values.get("user_domain_name") or _DEFAULT_DOMAIN,
        project_domain_name=values.get("project_domain_name") or _DEFAULT_DOMAIN,
        source=" + ".join(sources),
    )
