"""`redline capacity`: find N, the largest rate the target sustains without degrading."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from redline.analysis.protocols import PROTOCOLS, customised
from redline.cli.app import app
from redline.cli.options import build_template, err_console, out_console, parse_cpus, publish, read_body
from redline.cli.progress import RunProgress
from redline.cli import scenario_options as so
from redline.cli.run import EMBEDDED, split_cpus_for_embedded, with_url_path
from redline.errors import UserError
from redline.jobs.capacity import CapacityHooks, CapacityRequest, ProbeReport, run_capacity
from redline.lab.embedded import DEFAULT_SCENARIO, start_identity
from redline.lab.process import start_calibrated
from redline.load.request import Target
from redline.monitor import NamePattern, PidTree

EMBEDDED_KINDS = ("identity", "calibrated")
EXIT_CODES = {"found": 0, "at_upper_bound": 0, "never_stable": 4, "inconclusive": 5, "probe_limit": 5}

_COLOURS = {"stable": "green", "degraded": "red", "inconclusive": "yellow"}


class _Display(CapacityHooks):
    def __init__(self) -> None:
        self.bar: RunProgress | None = None

    def probe_started(self, index, step, warmup_s, window_s) -> None:
        kind = "confirm, full length" if step.full else step.phase
        retry = f", retry {step.attempt}" if step.attempt else ""
        self.bar = RunProgress(f"probe {index + 1:>2} {step.rate:>8g}/s ({kind}{retry})", step.rate)
        self.bar.__enter__()

    def progress(self, p) -> None:
        if self.bar is not None:
            self.bar.update(p)

    def settled(self, r) -> None:
        if r.waited_s >= 0.5 or not r.settled:
            state = "drained" if r.settled else "[yellow]still slow[/yellow]"
            last = "—" if r.last_ms is None else f"{r.last_ms:.1f} ms"
            err_console.print(f"   [dim]waited {r.waited_s:.1f} s for the target to drain the last probe's backlog ({state}; last single request {last})[/dim]")

    def probe_finished(self, r: ProbeReport) -> None:
        if self.bar is not None:
            self.bar.__exit__(None, None, None)
            self.bar = None
        s = r.summary
        lat = s.get("latency_ms", {})
        figures = f"achieved {s['achieved_rps']:,.1f}/s"
        if lat:
            figures += f", p50 {lat['p50']:.1f} ms, p99 {lat['p99']:.1f} ms"
        if s["errors"]:
            figures += f", {s['errors']:,} errors"
        state = r.verdict.state
        colour = _COLOURS[state]
        err_console.print(f"   [{colour}]{state}[/{colour}] — {figures}")
        if state != "stable":
            for reason in r.verdict.reasons[:2]:
                err_console.print(f"     [dim]{reason}[/dim]")


@app.command("capacity")
def capacity_command(
    url: Optional[str] = typer.Option(None, "--url", help="Target URL. Without it (and without --scenario), redline starts an embedded target: see --embedded."),
    embedded: Optional[str] = typer.Option(None, "--embedded", help="The target redline starts when there is no --url: identity (the default: the reference identity service on its own CPU, keystone.issue at bcrypt cost 4) or calibrated (a queue of known capacity, 400 requests/s)."),
    protocol: str = typer.Option("quick", "--protocol", "-p", help="quick, thorough or paper."),
    criterion: Optional[str] = typer.Option(None, "--criterion", help="robust or paper (default: the protocol's)."),
    min_rate: Optional[float] = typer.Option(None, "--min", help="Lower end of a fixed search range (with --max)."),
    max_rate: Optional[float] = typer.Option(None, "--max", help="Upper end of the search range."),
    start_rate: Optional[float] = typer.Option(None, "--start", help="First rate tried when bracketing (default 100)."),
    resolution: Optional[str] = typer.Option(None, "--resolution", help="Stop bisecting at this width: requests/s (5) or percent (2%)."),
    slo_p99: Optional[float] = typer.Option(None, "--slo-p99", help="robust: a p99 latency above this many ms degrades."),
    method: str = typer.Option("GET", "--method", "-X"),
    header: Optional[list[str]] = typer.Option(None, "--header", "-H", help="'Name: value'; repeatable."),
    body: Optional[str] = typer.Option(None, "--body"),
    body_file: Optional[Path] = typer.Option(None, "--body-file"),
    arrival: str = typer.Option("constant", "--arrival", help="constant or poisson."),
    workers: Optional[int] = typer.Option(None, "--workers", "-w"),
    cpus: Optional[str] = typer.Option(None, "--cpus", help="CPUs for the generator, e.g. 0."),
    connections: int = typer.Option(1000, "--connections"),
    timeout: float = typer.Option(10.0, "--timeout"),
    connect_timeout: float = typer.Option(5.0, "--connect-timeout"),
    insecure: bool = typer.Option(False, "--insecure"),
    ca_file: Optional[str] = typer.Option(None, "--ca-file"),
    target_pid: Optional[int] = typer.Option(None, "--target-pid", help="Monitor this process and its children as the target."),
    target_process: Optional[str] = typer.Option(None, "--target-process", help="Monitor processes matching this regex as the target."),
    results: Path = typer.Option(Path("results"), "--results"),
    name: Optional[str] = typer.Option(None, "--name"),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON on stdout."),
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
    """Search for the largest rate the target sustains, confirm it at full length, report."""
    if protocol not in PROTOCOLS:
        raise UserError(f"--protocol must be one of {', '.join(PROTOCOLS)}, not {protocol!r}")
    if arrival not in ("constant", "poisson"):
        raise UserError(f"--arrival must be constant or poisson, not {arrival!r}")
    if (min_rate is None) != (max_rate is None) and min_rate is not None:
        raise UserError("--min needs --max (a fixed search range)")
    try:
        proto = customised(PROTOCOLS[protocol], criterion, min_rate, max_rate, start_rate, resolution, slo_p99)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    if workers is not None and workers < 1:
        raise UserError("--workers must be at least 1")
    gen_cpus = parse_cpus(cpus)
    template = build_template(method, "/", header, read_body(body, body_file))
    selector = PidTree(target_pid) if target_pid else NamePattern(target_process) if target_process else None

    kind = _embedded_kind(embedded, url, scenario, os_cloud, os_auth_url)
    lab = None
    identity = None
    try:  # whatever fails after an embedded target started, the target is stopped
        if kind == "identity":
            gen_cpus, target_cpus = split_cpus_for_embedded(gen_cpus)
            identity = start_identity(target_cpus)
            err_console.print(
                f"[dim]embedded target: the reference identity service on {identity.state.url}, CPU {_cpu_list(target_cpus)};"
                f" generator on CPU {_cpu_list(gen_cpus)}[/dim]"
            )
            chosen = so.embedded_choice(scenario or DEFAULT_SCENARIO, identity, token_pool, mix)
        else:
            chosen = so.choose_scenario(
                scenario, url, os_cloud, os_auth_url, os_username, os_password, os_project_name, os_user_domain_name,
                os_project_domain_name, users, users_project, token_pool, mix, password_hash_cost,
            )  # fmt: skip
        request_for = None
        if chosen is not None:
            url = chosen.scenario.url
            target_desc = chosen.target_description()
            template = chosen.scenario.request(sum(proto.trial(True)))
            request_for = chosen.scenario.request
            if selector is None and chosen.lab is not None:
                selector = PidTree(chosen.lab.pid, chosen.lab.extra_pids)
            if identity is not None:
                target_desc |= {"embedded": True, "cpus": list(target_cpus or ()), "pid": identity.state.pid}
        elif kind == "calibrated":
            gen_cpus, target_cpus = split_cpus_for_embedded(gen_cpus)
            lab = start_calibrated(EMBEDDED.servers, EMBEDDED.service_ms, cpus=target_cpus)
            url = lab.url + "/"
            selector = PidTree(lab.pid)
            target_desc = {"url": url, "embedded": True, "cpus": list(target_cpus or ()), **EMBEDDED.describe()}
            err_console.print(f"[dim]{lab.banner}[/dim]")
        else:
            target_desc = {"url": url, "embedded": False}
        assert url is not None
        target = Target.from_url(url, tls_verify=not insecure, ca_file=ca_file)
        req = CapacityRequest(
            target=target,
            request=template if chosen is not None else with_url_path(template, url),
            request_for=request_for,
            protocol=proto,
            workers=workers,
            cpus=gen_cpus,
            connection_cap=connections,
            connect_timeout_s=connect_timeout,
            read_timeout_s=timeout,
            arrival=arrival,
            target_processes=selector,
        )
        err_console.print(f"[bold]capacity search[/bold] — protocol {proto.name}: {proto.description}")
        result = run_capacity(req, target_desc, results, name or f"capacity-{target.host}-{target.port}", _Display())
    finally:
        if lab is not None:
            lab.stop()
        if identity is not None:
            identity.stop()

    doc = result.document
    keys = ("status", "outcome", "protocol", "criterion", "time_taken_s", "findings", "target")
    publish(doc, result.folder.path, as_json, {k: doc.get(k) for k in keys} | {"probes": _probe_rows(doc)}, _print_result)
    raise typer.Exit(EXIT_CODES[doc["outcome"]["state"]])


def _embedded_kind(embedded: str | None, url: str | None, scenario: str | None, os_cloud: str | None, os_auth_url: str | None) -> str | None:
    """Which embedded target to start, if any: without --url and --scenario, the reference
    identity service (or what --embedded names)."""
    if embedded is None:
        return "identity" if url is None and scenario is None else None
    if embedded not in EMBEDDED_KINDS:
        raise UserError(f"--embedded must be one of {', '.join(EMBEDDED_KINDS)}, not {embedded!r}")
    if url is not None:
        raise UserError("--embedded starts its own target: drop --url (or --embedded)")
    if os_cloud or os_auth_url:
        raise UserError("--embedded starts its own target with its own credentials: drop --os-cloud/--os-auth-url")
    if embedded == "calibrated" and scenario is not None:
        raise UserError("--scenario needs a Keystone: --embedded identity, or credentials (--os-auth-url, OS_AUTH_URL, --os-cloud)")
    return embedded


def _cpu_list(cpus: tuple[int, ...] | None) -> str:
    return ",".join(map(str, cpus)) if cpus else "any"


def _probe_rows(doc: dict) -> list[dict]:
    rows = []
    for p in doc["probes"]:
        s = p["summary"]
        rows.append(
            {
                "rate": p["rate"],
                "phase": p["phase"],
                "full": p["full"],
                "verdict": p["verdict"]["state"],
                "reasons": p["verdict"]["reasons"],
                "achieved_rps": s["achieved_rps"],
                "latency_ms": {k: s["latency_ms"].get(k) for k in ("p50", "p95", "p99")},
                "errors": s["errors"],
                "schedule_lag_p99_ms": p["health"]["schedule_lag_ms"].get("p99"),
                "generator_cpu_pct": p["generator_cpu_pct"],
                "target_cpu_pct": p["target_cpu_pct"],
                "stopped_early": p["stopped_early"],
            }
        )
    return rows


def _print_result(doc: dict, path: Path) -> None:
    table = Table(title="probes", header_style="bold")
    for col in ("#", "rate/s", "trial", "verdict", "achieved/s", "p50 ms", "p99 ms", "errors", "lag p99 ms", "gen CPU", "target CPU"):
        table.add_column(col, justify="right")
    for p, row in zip(doc["probes"], _probe_rows(doc)):
        lat = row["latency_ms"]
        colour = _COLOURS[row["verdict"]]
        table.add_row(
            str(p["index"] + 1),
            f"{row['rate']:g}",
            f"{'full' if row['full'] else 'short'}{' (early stop)' if row['stopped_early'] else ''}",
            f"[{colour}]{row['verdict']}[/{colour}]",
            f"{row['achieved_rps']:,.1f}",
            _ms(lat["p50"]),
            _ms(lat["p99"]),
            f"{row['errors']:,}",
            _ms(row["schedule_lag_p99_ms"]),
            _pct(row["generator_cpu_pct"]),
            _pct(row["target_cpu_pct"]),
        )
    out_console.print(table)
    o = doc["outcome"]
    n = "—" if o["n"] is None else f"{o['n']:g} requests/s"
    out_console.print(f"[bold]N = {n}[/bold] ({o['state']}): {o['reason']}")
    for f in doc.get("findings", []):
        out_console.print(f"finding: {f['title']} — {f['fix']}")
    out_console.print(f"time taken: {doc['time_taken_s']:g} s; run folder: {path}")


def _ms(v) -> str:
    return "—" if v is None else f"{v:.1f}"


def _pct(v) -> str:
    return "—" if v is None else f"{v:.0f}%"
