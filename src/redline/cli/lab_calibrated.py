"""`redline lab calibrated`: serve a target of known capacity (K servers × S ms)."""

from __future__ import annotations

import json
from typing import Optional

import typer

from redline.cli.app import lab_app
from redline.errors import UserError
from redline.lab.calibrated import CalibratedConfig, run_forever


@lab_app.command("calibrated")
def lab_calibrated(
    port: int = typer.Option(8400, "--port", help="TCP port on 127.0.0.1 (0: any free port)."),
    servers: int = typer.Option(4, "--servers", "-k", help="Parallel servers K."),
    service_ms: float = typer.Option(10.0, "--service-ms", "-s", help="Service time S per request, ms."),
    distribution: str = typer.Option("fixed", "--distribution", help="fixed or exponential service times."),
    shed_above: Optional[float] = typer.Option(
        None, "--shed-above", help="Answer 503 to requests beyond this many per second."
    ),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on."),
    as_json: bool = typer.Option(
        False, "--json", help="Announce the target as one JSON line (url, servers, capacity…) once listening."
    ),
) -> None:
    """Serve HTTP with capacity K × 1000 / S requests/s until Ctrl-C."""
    try:
        config = CalibratedConfig(servers, service_ms, distribution, shed_above)  # type: ignore[arg-type]
    except ValueError as exc:
        raise UserError(str(exc)) from None
    if not 0 <= port <= 65535:
        raise UserError(f"--port must be 0..65535, not {port}")

    def announce(bound: int) -> None:
        # One line, flushed: a script reads it to learn the URL, then the target serves on.
        doc = {
            "url": f"http://{host}:{bound}/",
            "servers": config.servers,
            "service_ms": config.service_ms,
            "distribution": config.distribution,
            "capacity_rps": config.capacity,
            "shed_above_rps": config.shed_above,
        }
        print(json.dumps(doc), flush=True)

    try:
        run_forever(config, host, port, announce if as_json else None)
    except OSError as exc:
        raise UserError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
