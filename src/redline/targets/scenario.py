"""A Keystone scenario against a given cloud: credentials resolved by openstack.config (options,
clouds.yaml + secure.yaml, OS_*), the lab service behind the URL recognised, the scenario preflighted."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path

from redline.lab.state import ServiceState, find_by_url, lab_state_dir
from redline.scenarios import credentials
from redline.scenarios.cloud import TlsSettings
from redline.scenarios.keystone import KeystoneOptions, KeystoneScenario, expand_users, parse_mix, v3_url
from redline.targets.embedded import ScenarioChoice


def keystone_scenario(
    name: str,
    given: Mapping[str, str | None],
    cloud: str | None = None,
    *,
    tls: TlsSettings | None = None,
    users: str | None = None,
    users_project: str | None = None,
    token_pool: int = 100,
    mix: str = "1:4",
    hash_cost: int | None = None,
) -> ScenarioChoice:
    """`given`: the --os-* options under openstack.config's names (None: from clouds.yaml or
    OS_*); `tls`: --ca-file/--insecure over the cloud's own settings. A lab target's bcrypt
    cost is known to the lab, so it is recorded without being asked for."""
    opts = KeystoneOptions(
        scenario=name,
        users=expand_users(users) if users else (),
        users_project=users_project,
        token_pool=token_pool,
        mix=parse_mix(mix),
        password_hash_rounds=hash_cost,
    )
    opened = credentials.resolve(given, cloud, tls=tls)
    lab = find_by_url(v3_url(opened.auth_url))
    if hash_cost is None and lab is not None:
        opts = replace(opts, password_hash_rounds=lab.password_hash_rounds)
    scenario = KeystoneScenario(opts, opened)
    scenario.preflight()
    return ScenarioChoice(scenario, lab)


def lab_audit_root(lab: ServiceState | None) -> Path | None:
    """A root the audit reads a lab Keystone's configuration from: its keystone.conf (and
    gunicorn settings) linked where a packaged Keystone keeps them, beside the host's CPUs."""
    if lab is None or lab.kind != "keystone":
        return None
    state_dir = lab_state_dir(lab)
    if state_dir is None or not (state_dir / "keystone.conf").exists():
        return None
    root = state_dir / "audit-root"
    links = {
        "etc/keystone/keystone.conf": state_dir / "keystone.conf",
        "etc/keystone/gunicorn.conf.py": state_dir / "gunicorn.conf.py",
        "sys/devices/system/cpu/online": Path("/sys/devices/system/cpu/online"),
    }
    for rel, src in links.items():
        dst = root / rel
        if not src.exists():
            continue
        dst.parent.mkdir(parents=True, exist_ok=True)
        if dst.is_symlink() or dst.exists():
            dst.unlink()
        dst.symlink_to(src)
    return root
