"""`redline capacity`: find N, the largest rate the target sustains without degrading."""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

import typer
from rich.table import Table

from redline.analysis.protocols import PROTOCOLS, customised
from redline.cli.app import app
from redline.cli.console import err_console, out_console
from redline.cli.gating import GatingOptions, exit_after_capacity, print_thresholds
from redline.cli.limit_display import print_limit
from redline.cli.options import (
    DiagnosisOptions,
    GeneratorOptions,
    OutputOptions,
    RequestOptions,
    option_groups,
    publish,
)
from redline.cli.progress import RunProgress
from redline.cli.scenario_options import ScenarioOptions, choose_scenario, unit_of
from redline.errors import UserError
from redline.jobs.capacity import CapacityHooks, CapacityRequest, ProbeReport, run_capacity
from redline.model.capacity import CapacityResult
from redline.monitor import ProcessSelector
from redline.targets.embedded import EMBEDDED_KINDS, EmbeddedKind, embedded_target, with_url_path
from redline.targets.scenario import lab_audit_root

if TYPE_CHECKING:
    from redline.analysis.search import Step
    from redline.load.engine import Progress as LoadProgress
    from redline.load.settle import Settled

EXIT_CODES = {"found": 0, "at_upper_bound": 0, "never_stable": 4, "inconclusive": 5, "probe_limit": 5}

_COLOURS = {"stable": "green", "degraded": "red", "inconclusive": "yellow"}


class _Display(CapacityHooks):
    def __init__(self) -> None:
        self.bar: RunProgress | None = None

    def probe_started(self, index: int, step: Step, warmup_s: float, window_s: float) -> None:
        kind = "confirm, full length" if step.full else step.phase
        retry = f", retry {step.attempt}" if step.attempt else ""
        self.bar = RunProgress(f"probe {index + 1:>2} {step.rate:>8g}/s ({kind}{retry})", step.rate)
        self.bar.__enter__()

    def progress(self, p: LoadProgress) -> None:
        if self.bar is not None:
            self.bar.update(p)

    def settled(self, r: Settled) -> None:
        if r.waited_s >= 0.5 or not r.settled:
            state = "drained" if r.settled else "[yellow]still slow[/yellow]"
            last = "—" if r.last_ms is None else f"{r.last_ms:.1f} ms"
            err_console.print(
                f"   [dim]waited {r.waited_s:.1f} s for the target to drain the last probe's backlog ({state}; last single request {last})[/dim]"
            )

    def probe_finished(self, r: ProbeReport) -> None:
        if self.bar is not None:
            self.bar.__exit__(None, None, None)
            self.bar = None
        s = r.warmup_summary or r.summary
        lat = s.latency_ms
        figures = f"achieved {s.achieved_rps:,.1f}/s"
        if r.warmup_summary:
            figures = f"stopped in warm-up after {s.window_s:.1f} s: {figures}"
        if lat:
            figures += f", p50 {lat['p50']:.1f} ms, p99 {lat['p99']:.1f} ms"
        if s.errors:
            figures += f", {s.errors:,} errors"
        state = r.verdict.state
        colour = _COLOURS[state]
        err_console.print(f"   [{colour}]{state}[/{colour}] — {figures}")
        if state != "stable":
            for reason in r.verdict.reasons[:2]:
                err_console.print(f"     [dim]{reason}[/dim]")


@app.command("capacity")
@option_groups
def capacity_command(
    url: Optional[str] = typer.Option(
        None,
        "--url",
        help="Target URL. Without it (and without --scenario), redline starts an embedded target: see --embedded.",
    ),
    embedded: Optional[str] = typer.Option(
        None,
        "--embedded",
        help="The target redline starts when there is no --url: identity (the default: the reference identity service on its own CPU, keystone.issue at bcrypt cost 4) or calibrated (a queue of known capacity, 400 requests/s).",
    ),
    protocol: str = typer.Option("quick", "--protocol", "-p", help="quick, thorough or paper."),
    criterion: Optional[str] = typer.Option(None, "--criterion", help="robust or paper (default: the protocol's)."),
    min_rate: Optional[float] = typer.Option(None, "--min", help="Lower end of a fixed search range (with --max)."),
    max_rate: Optional[float] = typer.Option(None, "--max", help="Upper end of the search range."),
    start_rate: Optional[float] = typer.Option(None, "--start", help="First rate tried when bracketing (default 100)."),
    resolution: Optional[str] = typer.Option(
        None, "--resolution", help="Stop bisecting at this width: requests/s (5) or percent (2%)."
    ),
    slo_p99: Optional[float] = typer.Option(
        None, "--slo-p99", help="robust: a p99 latency above this many ms degrades."
    ),
    request: RequestOptions = RequestOptions(),
    arrival: str = typer.Option("constant", "--arrival", help="constant or poisson."),
    generator: GeneratorOptions = GeneratorOptions(),
    diag: DiagnosisOptions = DiagnosisOptions(),
    output: OutputOptions = OutputOptions(),
    scen: ScenarioOptions = ScenarioOptions(),
    gating: GatingOptions = GatingOptions(),
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
    gates = gating.thresholds("capacity")
    gen_cpus = generator.generator_cpus()
    template = request.template()
    selector: ProcessSelector | None = diag.selector()
    lab_root: Path | None = None

    kind = _embedded_kind(embedded, url, scen)
    with ExitStack() as stack:  # whatever fails after an embedded target started, the target is stopped
        if kind is not None:
            emb = stack.enter_context(
                embedded_target(kind, gen_cpus, scenario=scen.scenario, token_pool=scen.token_pool, mix=scen.mix)
            )
            err_console.print(f"[dim]{emb.banner}[/dim]")
            url, target_desc, chosen, gen_cpus = emb.url, emb.description, emb.choice, emb.generator_cpus
            # Kept from before the move: --target-pid/--target-process replace what is monitored
            # of the identity service, but not of the calibrated target (one process, redline's).
            if selector is None or kind == "calibrated":
                selector = emb.processes
            lab_started = True
        else:
            chosen = choose_scenario(scen, url, generator, request)
            lab_started = chosen is not None and chosen.lab is not None and selector is None
            if chosen is not None:
                url = chosen.scenario.url
                target_desc = chosen.target_description()
                lab_root = lab_audit_root(chosen.lab)
                if selector is None:
                    selector = chosen.processes
            else:
                target_desc = {"url": url, "embedded": False}
        assert url is not None
        target = chosen.scenario.target if chosen is not None else generator.target(url)
        req = CapacityRequest(
            target=target,
            request=chosen.scenario.request(sum(proto.trial(True)))
            if chosen is not None
            else with_url_path(template, url),
            request_for=chosen.scenario.request if chosen is not None else None,
            protocol=proto,
            arrival=arrival,
            target_processes=selector,
            profile=diag.profiling(lab_started, selector is not None),
            audit_root=diag.audit_for(url, lab_root),
            unit=unit_of(chosen),
            **generator.settings(gen_cpus),
        )
        err_console.print(f"[bold]capacity search[/bold] — protocol {proto.name}: {proto.description}")
        name = output.name or f"capacity-{target.host}-{target.port}"
        result = run_capacity(req, target_desc, output.results, name, _Display())

    doc = gating.judge(result.result, gates, result.folder)
    keys = ("status", "outcome", "limit", "protocol", "criterion", "time_taken_s", "findings", "target", "thresholds")
    summary = {k: v for k, v in doc.to_json().items() if k in keys} | {"probes": _probe_rows(doc)}
    publish(doc, result.folder.path, output.as_json, summary, _print_result)
    assert doc.outcome is not None  # the search always records one, even when cut short
    exit_after_capacity(doc, EXIT_CODES[doc.outcome.state])


def _embedded_kind(embedded: str | None, url: str | None, scen: ScenarioOptions) -> EmbeddedKind | None:
    """Which embedded target to start, if any: without --url and --scenario, the reference
    identity service (or what --embedded names)."""
    if embedded is None:
        return "identity" if url is None and scen.scenario is None else None
    if embedded not in EMBEDDED_KINDS:
        raise UserError(f"--embedded must be one of {', '.join(EMBEDDED_KINDS)}, not {embedded!r}")
    if url is not None:
        raise UserError("--embedded starts its own target: drop --url (or --embedded)")
    if scen.os_cloud or scen.os_auth_url:
        raise UserError("--embedded starts its own target with its own credentials: drop --os-cloud/--os-auth-url")
    if embedded == "calibrated" and scen.scenario is not None:
        raise UserError(
            "--scenario needs a Keystone: --embedded identity, or credentials (--os-auth-url, OS_AUTH_URL, --os-cloud)"
        )
    return embedded


def _probe_rows(doc: CapacityResult) -> list[dict[str, Any]]:
    rows = []
    for p in doc.probes:
        s = p.shown  # a probe stopped during its warm-up has an empty window: its warm-up instead
        rows.append(
            {
                "rate": p.rate,
                "phase": p.phase,
                "full": p.full,
                "verdict": p.verdict.state,
                "reasons": list(p.verdict.reasons),
                "achieved_rps": s.achieved_rps,
                "latency_ms": {k: s.latency_ms.get(k) for k in ("p50", "p95", "p99")},
                "errors": s.errors,
                "schedule_lag_p99_ms": p.health.lag_ms.get("p99"),
                "generator_cpu_pct": p.generator_cpu_pct,
                "target_cpu_pct": p.target_cpu_pct,
                "stopped_early": p.stopped_early,
                "stopped_in_warmup": p.warmup_summary is not None,
            }
        )
    return rows


def _stop_note(row: dict[str, Any]) -> str:
    if row["stopped_in_warmup"]:
        return " (stopped in warm-up)"
    return " (early stop)" if row["stopped_early"] else ""


def _print_result(doc: CapacityResult, path: Path) -> None:
    table = Table(title="probes", header_style="bold")
    for col in (
        "#",
        "rate/s",
        "trial",
        "verdict",
        "achieved/s",
        "p50 ms",
        "p99 ms",
        "errors",
        "lag p99 ms",
        "gen CPU",
        "target CPU",
    ):
        table.add_column(col, justify="right")
    for p, row in zip(doc.probes, _probe_rows(doc)):
        lat = row["latency_ms"]
        colour = _COLOURS[row["verdict"]]
        table.add_row(
            str(p.index + 1),
            f"{row['rate']:g}",
            f"{'full' if row['full'] else 'short'}{_stop_note(row)}",
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
    o = doc.outcome
    if o is not None:
        n = "—" if o.n is None else f"{o.n:g} requests/s"
        out_console.print(f"[bold]N = {n}[/bold] ({o.state}): {o.reason}")
    print_limit(doc.limit, doc.findings, [p.profile for p in doc.probes if p.profile is not None])
    print_thresholds(doc.thresholds)
    out_console.print(f"time taken: {doc.time_taken_s or 0:g} s; run folder: {path}")


def _ms(v: float | None) -> str:
    return "—" if v is None else f"{v:.1f}"


def _pct(v: float | None) -> str:
    return "—" if v is None else f"{v:.0f}%"
