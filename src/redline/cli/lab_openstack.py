"""`redline lab openstack up|down|status`: a real compute control plane on 127.0.0.1."""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Any, Optional

import typer
from rich.table import Table

from redline.cli.app import lab_app
from redline.cli.console import err_console, out_console
from redline.errors import UserError

openstack_app = typer.Typer(
    help="Real OpenStack (PyPI): Keystone, Placement, Glance, Neutron API, Nova on libvirt/QEMU.",
    no_args_is_help=True,
)
lab_app.add_typer(openstack_app, name="openstack")

_STATE_HELP = "State directory (configuration tree, logs, database, lab.json)."


def _state_dir(value: Optional[Path]) -> Path:
    from redline.lab.openstack_state import default_state_dir

    return value if value is not None else default_state_dir()


def _workers(name: str, what: str) -> Optional[int]:
    opt: Optional[int] = typer.Option(None, f"--{name}", help=f"{what} (default 1).")
    return opt


@openstack_app.command("up")
def openstack_up(
    nova_api_workers: Optional[int] = _workers("nova-api-workers", "Processes serving the Compute API"),
    conductor_workers: Optional[int] = _workers("conductor-workers", "nova-conductor workers ([conductor] workers)"),
    scheduler_workers: Optional[int] = _workers("scheduler-workers", "nova-scheduler workers ([scheduler] workers)"),
    keystone_processes: Optional[int] = _workers("keystone-processes", "Processes serving Keystone"),
    keystone_cache: Optional[str] = typer.Option(
        None, "--keystone-cache", help="Keystone's [cache]: none (default) or memcached."
    ),
    neutron_api_workers: Optional[int] = _workers("neutron-api-workers", "Processes serving the Networking API"),
    max_workers: Optional[int] = typer.Option(None, "--max-workers", help="libvirtd max_workers (libvirt: 20)."),
    max_client_requests: Optional[int] = typer.Option(
        None, "--max-client-requests", help="libvirtd max_client_requests (libvirt: 5)."
    ),
    cgroups: Optional[bool] = typer.Option(
        None, "--cgroups/--no-cgroups", help="Guests in cgroups (qemu.conf; default: yes)."
    ),
    security_driver: Optional[str] = typer.Option(
        None, "--security-driver", help="qemu.conf security_driver (default none)."
    ),
    seed_000: bool = typer.Option(
        False,
        "--seed-000",
        help="Seed 000's reconfiguration: 4 API / 4 conductor / 2 scheduler / 4 Keystone "
        "processes, Keystone on memcached, 2 Neutron workers, libvirtd limits 40 (options given override).",
    ),
    state_dir: Optional[Path] = typer.Option(None, "--state-dir", help=_STATE_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print the lab's state as JSON."),
) -> None:
    """Install (once, cached), configure and start every service; upload the guest image and a flavor;
    write a clouds.yaml entry (`redline-lab`). Takes minutes: each step is shown."""
    from redline.lab import openstack as lab
    from redline.lab.knobs import LabKnobs
    from redline.lab.openstack_knobs import SEED_000, OpenStackKnobs

    given: dict[str, Any] = dict(nova_api_workers=nova_api_workers, conductor_workers=conductor_workers,
                 scheduler_workers=scheduler_workers, keystone_processes=keystone_processes,
                 keystone_cache=keystone_cache, neutron_api_workers=neutron_api_workers)  # fmt: skip
    libvirt = dict(max_workers=max_workers, max_client_requests=max_client_requests, cgroups=cgroups,
                   security_driver=security_driver)  # fmt: skip
    base = SEED_000 if seed_000 else OpenStackKnobs()
    lib = base.libvirt.to_dict() | {k: v for k, v in libvirt.items() if v is not None}
    knobs = dataclasses.replace(base, **{k: v for k, v in given.items() if v is not None},
                                libvirt=LabKnobs.from_dict(lib))  # fmt: skip
    t0 = time.monotonic()
    with err_console.status("starting the OpenStack lab") as status:

        def step(s: str) -> None:
            status.update(f"[dim]{time.monotonic() - t0:5.0f} s  {s}[/dim]")
            err_console.print(f"[dim]{time.monotonic() - t0:5.0f} s  {s}[/dim]", highlight=False)

        state = lab.up(knobs, _state_dir(state_dir), on_step=step)
    if as_json:
        print(json.dumps(lab.status(state.state_dir), indent=2))
        return
    out_console.print(
        f"OpenStack lab up in {time.monotonic() - t0:.0f} s: cloud {state.cloud} in {state.clouds_yaml} "
        f"(Keystone {state.auth_url}); image {state.image_id}, flavor {state.flavor_id}; virt {state.virt_type}"
    )
    out_console.print(
        f"storm it: redline storm --driver openstack --count 8 · audit it: redline audit --root {state.config_root}"
    )


@openstack_app.command("down")
def openstack_down(
    state_dir: Optional[Path] = typer.Option(None, "--state-dir", help=_STATE_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print what was stopped and removed as JSON."),
) -> None:
    """Stop every service the lab started, remove its guests; nothing is left listening."""
    from redline.lab import openstack as lab

    with err_console.status("stopping the OpenStack lab") as status:
        done = lab.down(_state_dir(state_dir), on_step=lambda s: status.update(f"[dim]{s}[/dim]"))
    if as_json:
        print(json.dumps({"done": done}, indent=2))
        return
    if not done:
        out_console.print("the OpenStack lab is not up: nothing to stop")
        return
    for line in done:
        out_console.print(line)


@openstack_app.command("status")
def openstack_status(
    state_dir: Optional[Path] = typer.Option(None, "--state-dir", help=_STATE_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print every service with PID and port as JSON."),
) -> None:
    """Say whether the lab is up: every service with PID, port and whether it runs (exit 3 when not up)."""
    from redline.lab import openstack as lab

    st = lab.status(_state_dir(state_dir))
    if as_json:
        print(json.dumps(st, indent=2))
    elif not st["services"]:
        out_console.print("the OpenStack lab is not up")
    else:
        t = Table(title=f"OpenStack lab ({st['state_dir']})")
        for col in ("service", "pid", "port", "running", "log"):
            t.add_column(col)
        for s in st["services"]:
            t.add_row(
                s["name"], str(s["pid"]), str(s["port"] or "—"), "yes" if s["alive"] else "[red]no[/red]", s["log"]
            )
        out_console.print(t)
        if st.get("cloud"):
            out_console.print(f"cloud {st['cloud']} ({st['clouds_yaml']}), knobs {json.dumps(st['knobs'])}")
    if not st["up"]:
        dead = [s["name"] for s in st["services"] if not s["alive"]]
        if dead:
            raise UserError(f"the OpenStack lab is not whole: {', '.join(dead)} not running", exit_code=3)
        raise typer.Exit(3)
