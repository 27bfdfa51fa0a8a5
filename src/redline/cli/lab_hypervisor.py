"""`redline lab hypervisor up|down|status`: a real libvirtd + QEMU lab with a guest image and network."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from redline.cli.app import lab_app
from redline.cli.console import err_console, out_console

hv_app = typer.Typer(
    help="A real libvirtd + QEMU (TCG) lab: daemons, micro-VM image, guest network namespace.", no_args_is_help=True
)
lab_app.add_typer(hv_app, name="hypervisor")

STATE_DIR = typer.Option(
    None,
    "--state-dir",
    help="Lab state (image, keys, pid files); default $REDLINE_LAB_DIR or /var/lib/redline/hypervisor.",
)


@hv_app.command("up")
def up_command(
    state_dir: Optional[Path] = STATE_DIR,
    rebuild: bool = typer.Option(False, "--rebuild", help="Rebuild the guest image even if a cached one exists."),
    virt: str = typer.Option("auto", "--virt", help="auto (probe KVM with a timeout, else TCG), kvm or qemu (TCG)."),
    max_workers: Optional[int] = typer.Option(
        None, "--max-workers", help="libvirtd.conf max_workers (libvirt's default: 20)."
    ),
    max_client_requests: Optional[int] = typer.Option(
        None,
        "--max-client-requests",
        help="libvirtd.conf max_client_requests: calls in flight per client (libvirt's default: 5).",
    ),
    cgroups: bool = typer.Option(
        True, "--cgroups/--no-cgroups", help="Place guests in cgroups (qemu.conf cgroup_controllers; off: [ ])."
    ),
    security_driver: str = typer.Option(
        "none", "--security-driver", help="qemu.conf security_driver: none, apparmor or selinux."
    ),
    memory: int = typer.Option(112, "--memory", help="Guest memory, MiB: the storms' default."),
    as_json: bool = typer.Option(False, "--json", help="Print the lab's status (as `status --json`) as JSON."),
) -> None:
    """Start virtlogd/libvirtd, build the guest image, probe KVM, create the lab network.

    Every run sets all the knobs: one left out returns to libvirt's default. A changed knob restarts the libvirtd the lab started (it reads its config only at start).
    """
    from redline.lab import hypervisor
    from redline.lab.knobs import LabKnobs
    from redline.libvirt_bindings import load_libvirt

    # Storms on this lab and its `down` talk to libvirtd through the bindings: say so before
    # minutes of image building, not at the first storm.
    load_libvirt("the hypervisor lab")
    knobs = LabKnobs(max_workers, max_client_requests, cgroups, security_driver, memory, virt)
    err_console.print("starting libvirtd, building or reusing the guest image, probing KVM…")
    st = hypervisor.up(state_dir, rebuild=rebuild, knobs=knobs)
    if as_json:
        print(json.dumps(hypervisor.status(state_dir), indent=2))
        return
    out_console.print(f"hypervisor lab up: {st.uri}, domain type {st.virt_type} ({st.kvm_note})")
    k = st.knobs
    out_console.print(
        f"libvirtd: max_workers {k.max_workers or 'default (20)'}, max_client_requests {k.max_client_requests or 'default (5)'}"
        f"{'' if st.libvirtd_owned else ' (not started by the lab: its own config)'}; "
        f"guests: cgroups {'on' if k.cgroups else 'off'}, security driver {k.security_driver}, memory {k.memory_mib} MiB"
    )
    out_console.print(
        f"guest image: kernel {st.image.kernel_version}, {st.image.initrd} ({st.image.initrd.stat().st_size / 1e6:.1f} MB)"
    )
    out_console.print(f"guest network: namespace {st.network} (bridge rlbr0, dnsmasq); ssh key {st.image.private_key}")


@hv_app.command("down")
def down_command(
    state_dir: Optional[Path] = STATE_DIR,
    as_json: bool = typer.Option(False, "--json", help="Print what was removed and stopped as JSON."),
) -> None:
    """Remove storm leftovers, the lab network, and stop the daemons the lab started."""
    from redline.lab import hypervisor

    done = hypervisor.down(state_dir)
    if as_json:
        print(json.dumps({"done": done}, indent=2))
        return
    for line in done:
        out_console.print(line)
    out_console.print("hypervisor lab down" if done else "nothing to stop")


@hv_app.command("status")
def status_command(
    state_dir: Optional[Path] = STATE_DIR,
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Say what is running: daemons, image, virtualisation type, namespaces, redline domains."""
    from redline.lab import hypervisor

    st = hypervisor.status(state_dir)
    if as_json:
        print(json.dumps(st, indent=2))
        return
    for k, v in st.items():
        if isinstance(v, dict):  # the knobs: one readable line, not a repr
            v = ", ".join(f"{kk}={vv}" for kk, vv in v.items())
        out_console.print(f"{k:20} {v}")
