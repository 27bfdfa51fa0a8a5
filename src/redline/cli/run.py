"""`redline run`: offer one fixed (or ramped) rate to a target and record every request."""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from redline.cli.app import app
from redline.cli.console import err_console, out_console
from redline.cli.gating import GatingOptions, exit_after_run, print_thresholds
from redline.cli.limit_display import print_limit
from redline.cli.options import (
    DiagnosisOptions,
    GeneratorOptions,
    OutputOptions,
    RequestOptions,
    option_groups,
    positive,
    publish,
)
from redline.cli.progress import RunProgress
from redline.cli.scenario_options import ScenarioOptions, choose_scenario
from redline.errors import UserError
from redline.jobs.run import run_fixed_rate
from redline.load.engine import LoadPlan
from redline.load.request import Target
from redline.load.schedule import Schedule
from redline.model.run import RunResult
from redline.targets.embedded import embedded_target, with_url_path
from redline.targets.scenario import lab_audit_root


@app.command("run")
@option_groups
def run_command(
    url: Optional[str] = typer.Option(
        None, "--url", help="Target URL. Without it, redline starts its embedded calibrated target (4 servers × 10 ms)."
    ),
    rate: Optional[float] = typer.Option(
        None, "--rate", "-r", help="Requests per second to offer (default with the embedded target: 200)."
    ),
    duration: float = typer.Option(10.0, "--duration", "-d", help="Measurement window, seconds."),
    warmup: float = typer.Option(
        0.0, "--warmup", help="Warm-up before the window, seconds (recorded, not summarised)."
    ),
    end_rate: Optional[float] = typer.Option(
        None, "--end-rate", help="Ramp linearly from --rate to this rate over warm-up + window."
    ),
    arrival: str = typer.Option("constant", "--arrival", help="constant or poisson."),
    request: RequestOptions = RequestOptions(),
    generator: GeneratorOptions = GeneratorOptions(),
    seed: int = typer.Option(0, "--seed", help="Seed of the Poisson arrivals."),
    diag: DiagnosisOptions = DiagnosisOptions(),
    output: OutputOptions = OutputOptions(),
    scen: ScenarioOptions = ScenarioOptions(),
    gating: GatingOptions = GatingOptions(),
) -> None:
    """Offer load at a fixed rate (open loop) and record every request in a run folder."""
    if arrival not in ("constant", "poisson"):
        raise UserError(f"--arrival must be constant or poisson, not {arrival!r}")
    positive(duration, "--duration")
    gates = gating.thresholds("run")
    gen_cpus = generator.generator_cpus()
    template = request.template()

    chosen = choose_scenario(scen, url, generator, request)
    selector = diag.selector()
    lab_started, lab_root = False, None
    with ExitStack() as stack:  # whatever fails after the embedded target started, it is stopped
        if chosen is not None:
            url = chosen.scenario.url
            target_desc = chosen.target_description()
            template = chosen.scenario.request(warmup + duration)
            lab_started = chosen.lab is not None and selector is None
            lab_root = lab_audit_root(chosen.lab)
            selector = selector or chosen.processes
        elif url is None:
            embedded = stack.enter_context(embedded_target("calibrated", gen_cpus))
            url, target_desc, gen_cpus = embedded.url, embedded.description, embedded.generator_cpus
            rate = 200.0 if rate is None else rate
            err_console.print(f"[dim]{embedded.banner}[/dim]")
            selector, lab_started = embedded.processes, True
        else:
            target_desc = {"url": url, "embedded": False}
        if rate is None:
            raise UserError("--rate is required with --url")
        positive(rate, "--rate")
        target = chosen.scenario.target if chosen is not None else generator.target(url)
        if chosen is None:
            template = with_url_path(template, url)
        plan = LoadPlan(
            target=target,
            request=template,
            schedule=Schedule(rate=rate, duration_s=warmup + duration, arrival=arrival, end_rate=end_rate, seed=seed),  # type: ignore[arg-type]
            warmup_s=warmup,
            **generator.settings(gen_cpus),
        )
        label = f"{rate:g}/s" if end_rate is None else f"{rate:g}→{end_rate:g}/s"
        with RunProgress(label, rate) as progress:
            outcome = run_fixed_rate(
                plan,
                target_desc,
                output.results,
                output.name or _default_name(target),
                on_progress=progress.update,
                target_processes=selector,
                profile=diag.profiling(lab_started, selector is not None),
                audit_root=diag.audit_for(url, lab_root),
            )

    doc = gating.judge(outcome.result, gates, outcome.folder)
    keys = ("status", "summary", "health", "limit", "findings", "target", "plan", "thresholds")
    publish(
        doc, outcome.folder.path, output.as_json, {k: v for k, v in doc.to_json().items() if k in keys}, _print_summary
    )
    exit_after_run(doc, outcome.folder.path)


def _default_name(target: Target) -> str:
    return f"run-{target.host}-{target.port}"


def _print_summary(doc: RunResult, path: Path) -> None:
    s, h = doc.summary, doc.health
    assert s is not None and h is not None  # set once the run has ended
    lat, svc = s.latency_ms, s.service_ms
    table = Table(title=f"redline run — {doc.status}", show_header=True, header_style="bold")
    table.add_column("figure")
    table.add_column("value", justify="right")
    table.add_row("offered", f"{s.offered_rps:,.1f}/s ({s.scheduled:,} requests in {s.window_s:g} s)")
    table.add_row("achieved (2xx/3xx)", f"{s.achieved_rps:,.1f}/s")
    table.add_row("errors", f"{s.errors:,} ({s.error_ratio:.2%})")
    for key in ("p50", "p90", "p99", "max"):
        if key in lat:
            table.add_row(f"latency {key}", f"{lat[key]:.2f} ms  (service {svc.get(key, float('nan')):.2f} ms)")
    for st in s.steps:  # multi-step iterations: each step from the previous one's completion
        figures = (
            f"p50 {st.p50:.2f} · p99 {st.p99:.2f} ms" if st.p50 is not None and st.p99 is not None else "no answer"
        )
        table.add_row(f"step {st.name}", f"{figures}  ({st.count:,} sent, {st.errors:,} errors)")
    for kind, info in s.unsent.items():
        table.add_row(f"not sent: {kind}", f"{info.count:,} — {info.reason}")
    if h.lag_ms:
        table.add_row("schedule lag p99", f"{h.lag_ms['p99']:.3f} ms ({h.late_share:.2%} > 1 ms late)")
    table.add_row("generator CPU", ", ".join(f"w{w.index} {w.cpu_share:.0%}" for w in h.workers))
    table.add_row("generator bound", "YES — " + "; ".join(h.reasons) if h.generator_bound else "no")
    out_console.print(table)
    for note in h.notes:
        out_console.print(f"note: {note}")
    print_limit(doc.limit, doc.findings, [doc.profile] if doc.profile else [])
    print_thresholds(doc.thresholds)
    out_console.print(f"run folder: {path}")
