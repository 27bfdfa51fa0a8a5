"""`redline run`: offer one fixed (or ramped) rate to a target and record every request."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from redline.cli.app import app
from redline.cli.options import (
    build_template,
    err_console,
    out_console,
    parse_cpus,
    positive,
    publish,
    read_body,
)
from redline.cli.progress import RunProgress
from redline.cli import scenario_options as so
from redline.errors import UserError
from redline.jobs.run import run_fixed_rate
from redline.lab.calibrated import CalibratedConfig
from redline.lab.process import start_calibrated
from redline.load.engine import LoadPlan
from redline.load.request import Target
from redline.load.schedule import Schedule

EMBEDDED = CalibratedConfig(servers=4, service_ms=10.0)  # the default target: capacity 400/s


def split_cpus_for_embedded(cpus: tuple[int, ...] | None) -> tuple[tuple[int, ...] | None, tuple[int, ...] | None]:
    """Give the embedded target the last CPU and the generator the rest (when there are two or more)."""
    available = tuple(sorted(os.sched_getaffinity(0)))
    if len(available) < 2:
        return cpus, None
    target_cpus = (available[-1],)
    gen = cpus or available[:-1]
    return gen, target_cpus


@app.command("run")
def run_command(
    url: Optional[str] = typer.Option(None, "--url", help="Target URL. Without it, redline starts its embedded calibrated target (4 servers × 10 ms)."),
    rate: Optional[float] = typer.Option(None, "--rate", "-r", help="Requests per second to offer (default with the embedded target: 200)."),
    duration: float = typer.Option(10.0, "--duration", "-d", help="Measurement window, seconds."),
    warmup: float = typer.Option(0.0, "--warmup", help="Warm-up before the window, seconds (recorded, not summarised)."),
    end_rate: Optional[float] = typer.Option(None, "--end-rate", help="Ramp linearly from --rate to this rate over warm-up + window."),
    arrival: str = typer.Option("constant", "--arrival", help="constant or poisson."),
    method: str = typer.Option("GET", "--method", "-X"),
    header: Optional[list[str]] = typer.Option(None, "--header", "-H", help="'Name: value'; repeatable."),
    body: Optional[str] = typer.Option(None, "--body"),
    body_file: Optional[Path] = typer.Option(None, "--body-file"),
    workers: Optional[int] = typer.Option(None, "--workers", "-w", help="Generator processes (default: one per generator CPU)."),
    cpus: Optional[str] = typer.Option(None, "--cpus", help="CPUs for the generator, e.g. 0 or 0,2-3."),
    connections: int = typer.Option(1000, "--connections", help="Connection cap over all workers."),
    timeout: float = typer.Option(10.0, "--timeout", help="Read timeout per request, seconds."),
    connect_timeout: float = typer.Option(5.0, "--connect-timeout"),
    insecure: bool = typer.Option(False, "--insecure", help="Do not verify TLS certificates."),
    ca_file: Optional[str] = typer.Option(None, "--ca-file"),
    seed: int = typer.Option(0, "--seed", help="Seed of the Poisson arrivals."),
    results: Path = typer.Option(Path("results"), "--results", help="Where run folders go."),
    name: Optional[str] = typer.Option(None, "--name", help="Run folder name (after the UTC time)."),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON on stdout."),
    scenario: Optional[str] = so.SCENARIO,
    os_cloud: Optional[str] = so.OS_CLOUD,
    os_auth_url: Optional[str] = so.OS_AUTH_URL,
    os_username: Optional[str] = so.OS_USERNAME,
    os_password: Optional[str] = so.OS_PASSWORD,
    os_project_name: Optional[str] = so.OS_PROJECT_NAME,
    os_user_domain_name: Optional[str] = so.OS_USER_DOMAIN_NAME,
    os_project_domain_name: Optional[str] = so.OS_PROJECT_DOMAIN_NAME,
    users: Optional[str] = so.USERS,
    users_project: Optional[str] = so.USERS_PROJECT,
    token_pool: int = so.TOKEN_POOL,
    mix: str = so.MIX,
    password_hash_cost: Optional[int] = so.HASH_COST,
) -> None:
    """Offer load at a fixed rate (open loop) and record every request in a run folder."""
    if arrival not in ("constant", "poisson"):
        raise UserError(f"--arrival must be constant or poisson, not {arrival!r}")
    positive(duration, "--duration")
    if workers is not None and workers < 1:
        raise UserError("--workers must be at least 1")
    gen_cpus = parse_cpus(cpus)
    template = build_template(method, "/", header, read_body(body, body_file))

    chosen = so.choose_scenario(
        scenario, url, os_cloud, os_auth_url, os_username, os_password, os_project_name, os_user_domain_name,
        os_project_domain_name, users, users_project, token_pool, mix, password_hash_cost,
    )  # fmt: skip
    lab = None
    if chosen is not None:
        url = chosen.scenario.url
        target_desc = chosen.target_description()
        template = chosen.scenario.request(warmup + duration)
    elif url is None:
        gen_cpus, target_cpus = split_cpus_for_embedded(gen_cpus)
        lab = start_calibrated(EMBEDDED.servers, EMBEDDED.service_ms, cpus=target_cpus)
        url = lab.url + "/"
        rate = 200.0 if rate is None else rate
        target_desc = {"url": url, "embedded": True, "cpus": list(target_cpus or ()), **EMBEDDED.describe()}
        err_console.print(f"[dim]{lab.banner}[/dim]")
    else:
        target_desc = {"url": url, "embedded": False}
    try:
        if rate is None:
            raise UserError("--rate is required with --url")
        positive(rate, "--rate")
        target = Target.from_url(url, tls_verify=not insecure, ca_file=ca_file)
        if chosen is None:
            template = with_url_path(template, url)
        plan = LoadPlan(
            target=target,
            request=template,
            schedule=Schedule(rate=rate, duration_s=warmup + duration, arrival=arrival, end_rate=end_rate, seed=seed),  # type: ignore[arg-type]
            warmup_s=warmup,
            workers=workers,
            cpus=gen_cpus,
            connection_cap=connections,
            connect_timeout_s=connect_timeout,
            read_timeout_s=timeout,
        )
        label = f"{rate:g}/s" if end_rate is None else f"{rate:g}→{end_rate:g}/s"
        with RunProgress(label, rate) as progress:
            outcome = run_fixed_rate(
                plan, target_desc, results, name or _default_name(target), on_progress=progress.update
            )
    finally:
        if lab is not None:
            lab.stop()

    doc = outcome.document
    keys = ("status", "summary", "health", "target", "plan")
    publish(doc, outcome.folder.path, as_json, {k: doc.get(k) for k in keys}, _print_summary)


def with_url_path(template, url: str):
    """The template with the URL's path and query as its request target."""
    from dataclasses import replace
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return replace(template, path=path)


def _default_name(target: Target) -> str:
    return f"run-{target.host}-{target.port}"


def _print_summary(doc: dict, path: Path) -> None:
    s, h = doc["summary"], doc["health"]
    lat, svc = s["latency_ms"], s["service_ms"]
    table = Table(title=f"redline run — {doc['status']}", show_header=True, header_style="bold")
    table.add_column("figure")
    table.add_column("value", justify="right")
    table.add_row("offered", f"{s['offered_rps']:,.1f}/s ({s['scheduled']:,} requests in {s['window_s']:g} s)")
    table.add_row("achieved (2xx/3xx)", f"{s['achieved_rps']:,.1f}/s")
    table.add_row("errors", f"{s['errors']:,} ({s['error_ratio']:.2%})")
    for key, label in (("p50", "p50"), ("p90", "p90"), ("p99", "p99"), ("max", "max")):
        if key in lat:
            table.add_row(f"latency {label}", f"{lat[key]:.2f} ms  (service {svc.get(key, float('nan')):.2f} ms)")
    if s["unsent"]:
        for kind, info in s["unsent"].items():
            table.add_row(f"not sent: {kind}", f"{info['count']:,} — {info['reason']}")
    lag = h["schedule_lag_ms"]
    if lag:
        table.add_row("schedule lag p99", f"{lag['p99']:.3f} ms ({h['late_share']:.2%} > 1 ms late)")
    table.add_row("generator CPU", ", ".join(f"w{w['index']} {w['cpu_share']:.0%}" for w in h["workers"]))
    table.add_row("generator bound", "YES — " + "; ".join(h["reasons"]) if h["generator_bound"] else "no")
    out_console.print(table)
    for note in h["notes"]:
        out_console.print(f"note: {note}")
    out_console.print(f"run folder: {path}")
