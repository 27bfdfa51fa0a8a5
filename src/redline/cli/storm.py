"""`redline storm`: N instances at once, every phase timed; `redline storm cleanup [RUN_ID]`."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Optional

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from redline.cli.app import app
from redline.cli.console import err_console, out_console
from redline.errors import UserError

if TYPE_CHECKING:
    from redline.jobs.storm import StormOutcome
    from redline.model.finding import Finding
    from redline.storm.runner import StormProgress

storm_app = typer.Typer(
    help="Boot storm: launch N instances at once and time every phase of each.", invoke_without_command=True
)
app.add_typer(storm_app, name="storm")

# The marks with a progress bar; their labels are the driver's (storm.model.mark_label).
BARS = ("requested", "running", "ping", "ssh", "gone")


@storm_app.callback()
def storm_command(
    ctx: typer.Context,
    driver: str = typer.Option("libvirt", "--driver", help="libvirt (the hypervisor lab) or openstack."),
    count: int = typer.Option(8, "--count", "-n", help="Instances to launch."),
    concurrency: Optional[int] = typer.Option(
        None, "--concurrency", "-c", help="Launch requests in flight at once (default: all)."
    ),
    memory: Optional[int] = typer.Option(
        None, "--memory", help="Guest memory, MiB (libvirt; default: the lab's --memory)."
    ),
    poll_interval: float = typer.Option(0.5, "--poll-interval", help="Seconds between the shared status polls."),
    instance_timeout: float = typer.Option(
        300.0, "--instance-timeout", help="Seconds an instance may take from request to SSH."
    ),
    timeout: float = typer.Option(900.0, "--timeout", help="Seconds the whole storm may take."),
    results: Path = typer.Option(Path("results"), "--results", help="Where run folders are created."),
    state_dir: Optional[Path] = typer.Option(
        None,
        "--state-dir",
        help="The driver's lab state: the hypervisor lab's (libvirt) or the OpenStack lab's (openstack).",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
    cloud: Optional[str] = typer.Option(
        None, "--cloud", help="openstack: cloud name in clouds.yaml (default $OS_CLOUD; none: the OpenStack lab)."
    ),
    image: Optional[str] = typer.Option(None, "--image", help="openstack: image id (default $REDLINE_IMAGE)."),
    flavor: Optional[str] = typer.Option(None, "--flavor", help="openstack: flavor id (default $REDLINE_FLAVOR)."),
    network: Optional[str] = typer.Option(
        None, "--network", help="openstack: network id, or none / auto (default: auto-allocated)."
    ),
) -> None:
    """Launch COUNT instances, time requested → running → ping → ssh → deleted for each, clean up."""
    if ctx.invoked_subcommand is not None:
        return
    from redline.jobs.storm import new_run_id, run_storm_job
    from redline.storm.driver import driver_labels
    from redline.storm.model import StormPlan, mark_label
    from redline.targets.storm_drivers import lab_memory, make_storm_driver, storm_monitor_groups

    if count < 1 or count > 500:
        raise UserError(f"--count must be 1..500 (got {count})")
    if memory is not None and not 64 <= memory <= 4096:
        raise UserError(f"--memory must be 64..4096 MiB (got {memory})")
    if memory is None:
        memory = lab_memory(driver, state_dir)
    try:
        plan = StormPlan(count, concurrency or count, poll_interval, instance_timeout, timeout, memory)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    run_id = new_run_id()
    os_args = (cloud, image, flavor, network)
    groups = storm_monitor_groups(driver, state_dir, os_args)
    drv, specs, target = make_storm_driver(driver, run_id, plan, state_dir, os_args)
    err_console.print(f"storm {run_id}: {count} instances, launch concurrency {plan.concurrency}, driver {driver}")
    bars = Progress(TextColumn("{task.description:>14}"), BarColumn(bar_width=30), TextColumn("{task.completed:>4.0f}/{task.total:.0f}"),
                    TimeElapsedColumn(), console=err_console, transient=False)  # fmt: skip
    labels = driver_labels(drv)
    tasks = {m: bars.add_task(mark_label(labels, m), total=count) for m in BARS}

    def progress(p: StormProgress) -> None:
        for m in BARS:
            bars.update(tasks[m], completed=p.reached[m])

    with bars:
        outcome = run_storm_job(drv, specs, plan, run_id, target, results, on_progress=progress, monitor_groups=groups)
    _report(outcome)
    report = write_report_storm(outcome.folder.path)
    if as_json:
        doc = outcome.document.to_json()
        where = {k: doc[k] for k in ("phase_cpu", "findings", "labels", "polls", "api_calls", "cleanup")}
        print(json.dumps({"run_dir": str(outcome.folder.path), "run_id": run_id, **outcome.summary.to_json(), **where},
                         indent=2))  # fmt: skip
    else:
        _print_summary(outcome)
        out_console.print(f"run folder: {outcome.folder.path}")
        if report:
            out_console.print(f"report: {report}")
    if outcome.result.interrupted:
        raise KeyboardInterrupt
    if outcome.document.status == "incomplete":
        # One line: how far the storm got and where the rest stuck (run.json keeps it as `error`).
        raise UserError(outcome.document.error or "the storm was incomplete", exit_code=1)


def _report(outcome: StormOutcome) -> None:
    for note in outcome.result.notes:
        err_console.print(f"note: {note}", markup=False, highlight=False)
    for line in outcome.result.cleanup:
        err_console.print(f"cleanup: {line}", markup=False, highlight=False)


def write_report_storm(run_dir: Path) -> Path | None:
    from redline.report.storm import write_storm_report

    try:
        return write_storm_report(run_dir)
    except Exception as exc:  # noqa: BLE001 — the measurements are already on disk
        err_console.print(f"[yellow]warning: could not write the report: {exc}[/yellow]")
        return None


def _fmt(v: float | None) -> str:
    return "—" if v is None else f"{v:.2f}"


def _print_summary(outcome: StormOutcome) -> None:
    s = outcome.summary
    r = outcome.result
    t = Table(title=f"storm {r.run_id}: {s.count} instances, phase times in seconds")
    for col in ("phase", "n", "min", "median", "p90", "max"):
        t.add_column(col, justify="left" if col == "phase" else "right")
    for p in s.phases:
        # A task state's n says how many it was seen for: a short state can fall between polls.
        n = str(p.count) if p.seen is None else f"{p.count} (seen {p.seen})"
        t.add_row(p.title, n, _fmt(p.min_s), _fmt(p.median_s), _fmt(p.p90_s), _fmt(p.max_s))
    out_console.print(t)
    for note in s.notes:
        out_console.print(f"note: {note}", markup=False, highlight=False)
    goal = r.labels.get(r.goal, r.goal)  # "ssh" unless the driver reaches its guests another way
    out_console.print(
        f"first running {_fmt(s.first_active_s)} s, last running {_fmt(s.last_active_s)} s, "
        f"last {goal} {_fmt(s.last_ssh_s if r.goal == 'ssh' else s.last_active_s)} s, total {_fmt(s.total_s)} s; "
        f"reached {goal} {s.reached[r.goal]}/{s.count}, failed {s.failed}",
        markup=False,
        highlight=False,
    )
    if r.api_calls:
        calls = ", ".join(f"{k} {v}" for k, v in sorted(r.api_calls.items()))
        out_console.print(f"API calls: {calls}; status polls {r.polls}", markup=False, highlight=False)
    for name, err in zip(r.names, r.errors):
        if err:
            out_console.print(f"  {name}: {err}", markup=False, highlight=False)
    print_findings(outcome.document.findings)


def print_findings(findings: Sequence[Finding]) -> None:
    """One line per finding: what was found, and what to change (the report has the evidence)."""
    for f in findings:
        out_console.print(f"[{f.severity}] {f.title} — {f.fix}", markup=False, highlight=False)


@storm_app.command("cleanup")
def cleanup_command(
    run_id: Optional[str] = typer.Argument(
        None, help="The run id (8 hex digits); without it, every storm's leftovers."
    ),
    state_dir: Optional[Path] = typer.Option(None, "--state-dir", help="Hypervisor lab state."),
    as_json: bool = typer.Option(False, "--json", help="Print what was removed as JSON."),
) -> None:
    """Remove leftovers of a storm: its domains, tap devices, network namespace and dnsmasq."""
    import re

    from redline.targets.storm_drivers import cleanup_storms

    if run_id is not None and not re.fullmatch(r"[0-9a-f]{8}", run_id):
        raise UserError(f"a run id is 8 hex digits, not {run_id!r}")
    done = cleanup_storms(run_id, state_dir)
    if as_json:
        print(json.dumps({"run_id": run_id, "done": done}, indent=2))
        return
    for line in done:
        out_console.print(line)
    if not done:
        out_console.print("nothing to clean up")
