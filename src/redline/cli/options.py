"""Parsing, display helpers and option groups shared by commands (no measurement logic here)."""

from __future__ import annotations

import dataclasses
import functools
import inspect
import json
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional, TypedDict, TypeVar, get_type_hints
from urllib.parse import urlsplit

import typer

from redline import interrupts
from redline.cli.console import err_console, out_console
from redline.errors import UserError
from redline.load.engine import DEFAULT_SLACK_US
from redline.load.request import RequestTemplate, Target, parse_header
from redline.model.capacity import CapacityResult
from redline.model.run import RunResult
from redline.tune.cpulist import parse_cpuset

if TYPE_CHECKING:
    from redline.monitor import ProcessSelector

R = TypeVar("R")


def parse_cpus(text: str | None) -> tuple[int, ...] | None:
    """'0,2-3' → (0, 2, 3); checked against the CPUs this process may use."""
    if not text:
        return None
    try:
        cpus = parse_cpuset(text)
    except ValueError:
        raise UserError(f"bad CPU list {text!r}: expected e.g. 0,2-3") from None
    allowed = os.sched_getaffinity(0)
    if not cpus or not cpus <= allowed:
        raise UserError(f"CPU list {text!r} is not within the CPUs available here ({sorted(allowed)})")
    return tuple(sorted(cpus))


def read_body(body: str | None, body_file: Path | None) -> bytes:
    if body is not None and body_file is not None:
        raise UserError("give --body or --body-file, not both")
    if body_file is not None:
        try:
            return body_file.read_bytes()
        except OSError as exc:
            raise UserError(f"cannot read body file {str(body_file)!r}: {exc.strerror}") from None
    return body.encode() if body is not None else b""


def build_template(method: str, path: str, headers: list[str] | None, body: bytes) -> RequestTemplate:
    method = method.upper()
    if not method.isalpha():
        raise UserError(f"bad HTTP method {method!r}")
    return RequestTemplate(
        method=method,
        path=path or "/",
        headers=tuple(parse_header(h) for h in headers or ()),
        body=body,
    )


def positive(value: float, name: str) -> float:
    if not value > 0:
        raise UserError(f"{name} must be positive (got {value:g})")
    return value


def write_report(run_dir: Path) -> Path | None:
    """Write the run's HTML/PNG report; a failure to draw is a warning, never a lost run."""
    from redline.report import REPORT_HTML, write_reports

    try:
        write_reports(run_dir)
    except Exception as exc:  # noqa: BLE001 — the measurements are already safe on disk
        err_console.print(f"[yellow]warning: could not write the report: {exc}[/yellow]")
        return None
    return run_dir / REPORT_HTML


EXIT_ABANDONED = 3


def publish(
    result: RunResult | CapacityResult,
    run_dir: Path,
    as_json: bool,
    json_doc: dict[str, Any],
    print_human: Callable[[Any, Path], None],
) -> None:
    """Write the report, print the result (JSON or tables), and exit as the status says.

    An interrupted run exits 130 (SIGINT) or 143 (SIGTERM) and an abandoned one (target gone) 3, each saying where
    what was measured is kept.
    """
    report = write_report(run_dir)
    if as_json:
        print(json.dumps(json_doc | {"run_dir": str(run_dir), "report": str(report) if report else None}, indent=2))
    else:
        print_human(result, run_dir)
        if report:
            out_console.print(f"report: {report}")
    if result.status == "interrupted":
        code, word = interrupts.exit_status()
        print(f"redline: {result.command} {word}; what was measured is in {run_dir}", file=sys.stderr)
        raise SystemExit(code)
    if result.status == "abandoned":
        raise UserError(f"{result.abandoned_because}; what was measured is in {run_dir}", EXIT_ABANDONED)


def option_groups(body: Callable[..., R]) -> Callable[..., R]:
    """Let a command take groups of options (frozen dataclasses) as parameters.

    typer reads options only from a function's own parameters, so the command typer sees
    has each group's fields in the group's place (the order `--help` lists them in), and
    the body is called with each group built from them.
    """
    signature = inspect.signature(body, eval_str=True)
    groups: dict[str, type] = {}
    params: list[inspect.Parameter] = []
    for param in signature.parameters.values():
        group = param.annotation
        if not (isinstance(group, type) and dataclasses.is_dataclass(group)):
            params.append(param)
            continue
        groups[param.name] = group
        hints = get_type_hints(group, include_extras=True)
        params += [
            inspect.Parameter(f.name, param.kind, default=f.default, annotation=hints[f.name])
            for f in dataclasses.fields(group)
        ]
    names = [p.name for p in params]
    if clashes := sorted({n for n in names if names.count(n) > 1}):
        raise TypeError(f"{body.__name__}: an option group's field shadows another parameter: {', '.join(clashes)}")

    @functools.wraps(body)
    def command(**kwargs: Any) -> R:
        built = {
            name: group(**{f.name: kwargs.pop(f.name) for f in dataclasses.fields(group)})
            for name, group in groups.items()
        }
        return body(**kwargs, **built)

    command.__signature__ = signature.replace(parameters=params)  # type: ignore[attr-defined]
    command.__annotations__ = {p.name: p.annotation for p in params} | {"return": signature.return_annotation}
    return command


@dataclass(frozen=True)
class RequestOptions:
    """What one plain HTTP request is (without --scenario)."""

    method: Annotated[str, typer.Option("--method", "-X")] = "GET"
    header: Annotated[Optional[list[str]], typer.Option("--header", "-H", help="'Name: value'; repeatable.")] = None
    body: Annotated[Optional[str], typer.Option("--body")] = None
    body_file: Annotated[Optional[Path], typer.Option("--body-file")] = None

    def template(self) -> RequestTemplate:
        """The request for path "/" (the URL's path is put in once the URL is known)."""
        return build_template(self.method, "/", self.header, read_body(self.body, self.body_file))


class GeneratorSettings(TypedDict):
    workers: int | None
    cpus: tuple[int, ...] | None
    connection_cap: int
    connect_timeout_s: float
    read_timeout_s: float
    slack_us: int


@dataclass(frozen=True)
class GeneratorOptions:
    """The load generator's processes, CPUs and connections."""

    workers: Annotated[
        Optional[int], typer.Option("--workers", "-w", help="Generator processes (default: one per generator CPU).")
    ] = None
    cpus: Annotated[Optional[str], typer.Option("--cpus", help="CPUs for the generator, e.g. 0 or 0,2-3.")] = None
    connections: Annotated[int, typer.Option("--connections", help="Connection cap over all workers.")] = 1000
    timeout: Annotated[float, typer.Option("--timeout", help="Read timeout per request, seconds.")] = 10.0
    connect_timeout: Annotated[float, typer.Option("--connect-timeout")] = 5.0
    slack: Annotated[
        int,
        typer.Option(
            "--slack",
            help="Dispatch slack, µs: one wake-up sends every request due within it (lag measured, ≤ 1000).",
        ),
    ] = DEFAULT_SLACK_US
    insecure: Annotated[bool, typer.Option("--insecure", help="Do not verify TLS certificates.")] = False
    ca_file: Annotated[Optional[str], typer.Option("--ca-file")] = None

    def generator_cpus(self) -> tuple[int, ...] | None:
        """--cpus as CPU numbers (None: any), once --workers is known to be sensible."""
        if self.workers is not None and self.workers < 1:
            raise UserError("--workers must be at least 1")
        return parse_cpus(self.cpus)

    def target(self, url: str) -> Target:
        return Target.from_url(url, tls_verify=not self.insecure, ca_file=self.ca_file)

    def settings(self, cpus: tuple[int, ...] | None) -> GeneratorSettings:
        """The fields of a LoadPlan or CapacityRequest these options set; `cpus` as split
        with an embedded target, which may take one of them."""
        return GeneratorSettings(
            workers=self.workers,
            cpus=cpus,
            connection_cap=self.connections,
            connect_timeout_s=self.connect_timeout,
            read_timeout_s=self.timeout,
            slack_us=self.slack,
        )


@dataclass(frozen=True)
class OutputOptions:
    """Where the run folder goes and how the result is printed."""

    results: Annotated[Path, typer.Option("--results", help="Where run folders go.")] = Path("results")
    name: Annotated[Optional[str], typer.Option("--name", help="Run folder name (after the UTC time).")] = None
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON on stdout.")] = False


@dataclass(frozen=True)
class DiagnosisOptions:
    """What is watched and profiled as the target, and whose configuration explains the limit."""

    target_pid: Annotated[
        Optional[int], typer.Option("--target-pid", help="Monitor this process and its children as the target.")
    ] = None
    target_process: Annotated[
        Optional[str], typer.Option("--target-process", help="Monitor processes matching this regex as the target.")
    ] = None
    profile: Annotated[
        Optional[bool],
        typer.Option(
            "--profile/--no-profile",
            help="Sample the target's Python processes with py-spy during each measurement window "
            "(default: on for targets redline started, off otherwise; needs root or ptrace permission).",
        ),
    ] = None
    audit_root: Annotated[
        Optional[Path],
        typer.Option(
            "--audit-root",
            help="Link the limit to the audit of the configuration under this root "
            "(default: the lab's own files, or / for a target on this host).",
        ),
    ] = None

    def selector(self) -> ProcessSelector | None:
        """The target's processes as given (None: the lab's, or not monitored)."""
        from redline.monitor import NamePattern, PidTree

        if self.target_pid is not None and self.target_process is not None:
            raise UserError("give --target-pid or --target-process, not both")
        if self.target_pid is not None:
            return PidTree(self.target_pid)
        return NamePattern(self.target_process) if self.target_process else None

    def profiling(self, lab_started: bool, monitored: bool) -> bool:
        """Whether to profile: on by default for a target redline started (it knows its pids)."""
        if self.profile and not monitored:
            raise UserError("--profile needs the target's processes: give --target-pid or --target-process")
        return lab_started and monitored if self.profile is None else self.profile

    def audit_for(self, url: str, lab_root: Path | None) -> Path | None:
        """--audit-root, else the lab's configuration, else the host's own for a loopback target."""
        if self.audit_root is not None:
            if not self.audit_root.is_dir():
                raise UserError(f"--audit-root {str(self.audit_root)!r} is not a directory")
            return self.audit_root
        if lab_root is not None:
            return lab_root
        host = (urlsplit(url).hostname or "").lower()
        return Path("/") if host in ("127.0.0.1", "localhost", "::1") else None
