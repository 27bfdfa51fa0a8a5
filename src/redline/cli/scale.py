"""`redline scale`: storms at several sizes, Universal Scalability Law and Amdahl fits."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Optional

import typer
from rich.table import Table

from redline.cli.app import app
from redline.cli.console import err_console, out_console
from redline.cli.storm import print_findings
from redline.errors import UserError
from redline.model.storm import ScalePoint, ScaleResult

if TYPE_CHECKING:
    from redline.jobs.storm import StormOutcome

MAX_SIZE = 100


def parse_counts(text: str) -> list[int]:
    try:
        counts = sorted({int(p) for p in text.split(",") if p.strip()})
    except ValueError:
        raise UserError(f"bad --counts {text!r}: expected e.g. 1,2,4,8") from None
    if len(counts) < 3 or counts[0] < 1 or counts[-1] > MAX_SIZE:
        raise UserError(f"--counts needs at least three distinct sizes in 1..{MAX_SIZE} (got {text!r})")
    return counts


@app.command("scale")
def scale_command(
    driver: str = typer.Option(
        "libvirt",
        "--driver",
        help="Storm driver: libvirt (the hypervisor lab) or openstack (the OpenStack lab, or --cloud).",
    ),
    counts: str = typer.Option("1,2,4,8", "--counts", help="Storm sizes, comma-separated (at least three)."),
    repeat: int = typer.Option(
        1, "--repeat", help="Storms per size (rounds of all sizes); more narrows the intervals."
    ),
    concurrency: Optional[int] = typer.Option(
        None, "--concurrency", "-c", help="Launch concurrency of each storm (default: its size)."
    ),
    memory: Optional[int] = typer.Option(
        None, "--memory", help="Guest memory, MiB (libvirt; default: the lab's --memory)."
    ),
    instance_timeout: float = typer.Option(
        300.0, "--instance-timeout", help="Seconds an instance may take from request to SSH."
    ),
    results: Path = typer.Option(Path("results"), "--results", help="Where the run folder is created."),
    state_dir: Optional[Path] = typer.Option(
        None, "--state-dir", help="The driver's lab state: the hypervisor lab's or the OpenStack lab's."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the points and fits as JSON."),
    cloud: Optional[str] = typer.Option(
        None, "--cloud", help="openstack: cloud name in clouds.yaml (default $OS_CLOUD; none: the OpenStack lab)."
    ),
    image: Optional[str] = typer.Option(None, "--image", help="openstack: image id (default $REDLINE_IMAGE)."),
    flavor: Optional[str] = typer.Option(None, "--flavor", help="openstack: flavor id (default $REDLINE_FLAVOR)."),
    network: Optional[str] = typer.Option(
        None, "--network", help="openstack: network id, or none / auto (default: auto-allocated)."
    ),
) -> None:
    """Run a storm at each size, time each to its last SSH login, fit USL (σ, κ) and Amdahl with bootstrap intervals."""
    from redline.jobs.scale import run_scale_job
    from redline.report.scale import write_scale_report
    from redline.report.storm import write_storm_report
    from redline.storm.model import StormPlan
    from redline.targets.storm_drivers import DRIVERS, driver_factory, lab_memory, storm_monitor_groups, storm_target

    sizes = parse_counts(counts)
    if not 1 <= repeat <= 10:
        raise UserError(f"--repeat must be 1..10 (got {repeat})")
    if concurrency is not None and concurrency < 1:
        raise UserError(f"--concurrency must be at least 1 (got {concurrency})")
    if memory is not None and not 64 <= memory <= 4096:
        raise UserError(f"--memory must be 64..4096 MiB (got {memory})")
    if instance_timeout <= 0:
        raise UserError("--instance-timeout must be positive")
    if driver not in DRIVERS:
        raise UserError(f"--driver must be {' or '.join(DRIVERS)}, not {driver!r}")
    os_args = (cloud, image, flavor, network)
    target = storm_target(driver, state_dir, os_args)  # the same lab defaults as `redline storm`
    groups = storm_monitor_groups(driver, state_dir, os_args)
    mem = memory or lab_memory(driver, state_dir)

    def plan_for(n: int) -> StormPlan:
        return StormPlan(n, min(concurrency or n, n), instance_timeout_s=instance_timeout,
                         total_timeout_s=instance_timeout + 120 + 2 * n, memory_mib=mem)  # fmt: skip

    def started(n: int, rnd: int, run_id: str) -> None:
        err_console.print(f"storm of {n}{f' (round {rnd + 1}/{repeat})' if repeat > 1 else ''}, run {run_id}…")

    def done(storm: StormOutcome, point: ScalePoint | None) -> None:
        try:
            write_storm_report(storm.folder.path)
        except Exception as exc:  # noqa: BLE001 — the measurements are on disk; the report can be redone
            err_console.print(f"[yellow]warning: no report for {storm.folder.path}: {exc}[/yellow]")
        for line in storm.result.cleanup:
            err_console.print(f"  cleanup: {line}", markup=False, highlight=False)
        if point is not None:
            goal = storm.result.mark_label(storm.result.goal)
            err_console.print(
                f"  {point.n} instance{'s' if point.n > 1 else ''}: first request → last {goal} {point.t_s:.2f} s",
                markup=False,
                highlight=False,
            )

    out = run_scale_job(
        driver_factory(driver, state_dir, os_args),
        sizes,
        plan_for,
        target,
        results,
        repeat,
        on_storm_start=started,
        on_storm_done=done,
        monitor_groups=groups,
    )
    report = write_scale_report(out.folder.path)
    doc = out.document
    if as_json:
        fields = {k: v for k, v in doc.to_json().items() if k in ("points", "usl", "amdahl", "sentences", "findings")}
        print(json.dumps({"run_dir": str(out.folder.path), "report": str(report), **fields}, indent=2))
        return
    print_scale(doc)
    out_console.print(f"run folder: {out.folder.path}")
    out_console.print(f"report: {report}")


def print_scale(doc: ScaleResult) -> None:
    points = doc.points
    base = min(points, key=lambda p: p.n)
    t = Table(title=f"storms: first request → last {doc.goal_label}")
    for c in ("instances", "round", "time, s", "instances/s", "relative capacity"):
        t.add_column(c, justify="right")
    for p in points:
        rel = p.throughput / base.throughput * base.n
        t.add_row(str(p.n), str(p.round + 1), f"{p.t_s:.2f}", f"{p.throughput:.3f}", f"{rel:.2f}")
    out_console.print(t)
    u, a = doc.usl, doc.amdahl
    if u is None or a is None:
        return
    peak = (
        f"; peak at N ≈ {u.peak_n:.1f} ({u.peak_x:.3f} instances/s)" if u.peak_n else "; no peak within the fit (κ = 0)"
    )
    out_console.print(f"USL: σ (contention) = {u.sigma.text()}, κ (coherency) = {u.kappa.text(5) if u.kappa else '—'}, "
                      f"95% bootstrap, {u.dof} dof{peak}")  # fmt: skip
    out_console.print(
        f"Amdahl: serial fraction σ = {a.sigma.text()}" + (f", ceiling {a.peak_x:.3f} instances/s" if a.peak_x else "")
    )
    if u.boot_method == "none":
        out_console.print("note: as many USL parameters as points: no interval; add sizes or --repeat")
    elif u.dof <= 2:
        out_console.print(
            f"note: {u.dof} degree(s) of freedom for the USL: wide intervals; more sizes or --repeat narrow them"
        )
    for line in doc.sentences:
        out_console.print(line)
    print_findings(doc.findings)
