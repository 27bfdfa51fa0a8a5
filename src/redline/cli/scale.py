"""`redline scale`: storms at several sizes, Universal Scalability Law and Amdahl fits."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from redline.cli.app import app
from redline.cli.options import err_console, out_console
from redline.errors import UserError


def parse_counts(text: str) -> list[int]:
    try:
        counts = sorted({int(p) for p in text.split(",") if p.strip()})
    except ValueError:
        raise UserError(f"bad --counts {text!r}: expected e.g. 1,2,4,8") from None
    if len(counts) < 3 or counts[0] < 1 or counts[-1] > 100:
        raise UserError(f"--counts needs at least three distinct sizes in 1..100 (got {text!r})")
    return counts


@app.command("scale")
def scale_command(
    driver: str = typer.Option("libvirt", "--driver", help="Storm driver (libvirt)."),
    counts: str = typer.Option("1,2,4,8", "--counts", help="Storm sizes, comma-separated (at least three)."),
    concurrency: Optional[int] = typer.Option(None, "--concurrency", "-c", help="Launch concurrency of each storm (default: its size)."),
    instance_timeout: float = typer.Option(300.0, "--instance-timeout", help="Seconds an instance may take from request to SSH."),
    results: Path = typer.Option(Path("results"), "--results", help="Where the run folder is created."),
    state_dir: Optional[Path] = typer.Option(None, "--state-dir", help="Hypervisor lab state."),
    as_json: bool = typer.Option(False, "--json", help="Print the fits as JSON."),
) -> None:
    """Run a storm at each size, time each to its last SSH login, fit USL (σ, κ) and Amdahl with bootstrap intervals."""
    from redline.analysis.scalability import fit, sentences
    from redline.cli.storm import _driver
    from redline.jobs.storm import new_run_id, run_storm_job
    from redline.report.run_folder import RunFolder
    from redline.storm.model import StormPlan

    sizes = parse_counts(counts)
    if driver != "libvirt":
        raise UserError("redline scale supports --driver libvirt")
    folder = RunFolder.create(results, f"scale-{driver}-{'-'.join(map(str, sizes))}")
    doc = folder.header("scale", {"driver": driver}, {"counts": sizes, "concurrency": concurrency})
    folder.write_json(doc)
    points = []
    for n in sizes:
        plan = StormPlan(n, concurrency or n, instance_timeout_s=instance_timeout, total_timeout_s=instance_timeout + 120)
        run_id = new_run_id()
        drv, specs, target = _driver(driver, run_id, plan, state_dir)
        err_console.print(f"storm of {n} (run {run_id})…")
        out = run_storm_job(drv, specs, plan, run_id, target, folder.path)
        if out.result.interrupted:
            raise KeyboardInterrupt
        s = out.summary
        if s.reached["ssh"] != n or s.last_ssh_s is None:
            raise UserError(f"the storm of {n} did not complete ({s.reached['ssh']}/{n} reached SSH): see {out.folder.path}")
        points.append({"n": n, "t_s": s.last_ssh_s, "throughput_per_s": n / s.last_ssh_s, "run_dir": out.folder.path.name})
        err_console.print(f"  {n} instances: last SSH login at {s.last_ssh_s:.2f} s")
    ns = [p["n"] for p in points]
    xs = [p["throughput_per_s"] for p in points]
    try:
        usl_fit, amdahl_fit = fit(ns, xs, "usl"), fit(ns, xs, "amdahl")
    except ValueError as exc:
        raise UserError(str(exc)) from None
    said = sentences(ns, [p["t_s"] for p in points])
    doc.update(status="complete", points=points, usl=usl_fit.to_dict(), amdahl=amdahl_fit.to_dict(), sentences=said)
    folder.write_json(doc)
    _png(folder.path / "png" / "scale.png", ns, xs, usl_fit, amdahl_fit)
    if as_json:
        print(json.dumps({"run_dir": str(folder.path), **{k: doc[k] for k in ("points", "usl", "amdahl", "sentences")}}, indent=2))
        return
    t = Table(title="storm time to the last SSH login")
    for c in ("instances", "time, s", "instances/s", "relative capacity"):
        t.add_column(c, justify="right")
    for p in points:
        t.add_row(str(p["n"]), f"{p['t_s']:.2f}", f"{p['throughput_per_s']:.3f}", f"{p['throughput_per_s'] / xs[0] * ns[0]:.2f}")
    out_console.print(t)
    k = usl_fit.kappa
    out_console.print(f"USL: σ = {usl_fit.sigma.value:.4f} [{usl_fit.sigma.low:.4f}, {usl_fit.sigma.high:.4f}], "
                      f"κ = {k.value:.5f} [{k.low:.5f}, {k.high:.5f}] (95% bootstrap)"
                      + (f", peak at N ≈ {usl_fit.peak_n:.1f}" if usl_fit.peak_n else ""))  # fmt: skip
    out_console.print(f"Amdahl: serial fraction {amdahl_fit.sigma.value:.4f} [{amdahl_fit.sigma.low:.4f}, {amdahl_fit.sigma.high:.4f}]")
    for line in said:
        out_console.print(line)
    out_console.print(f"run folder: {folder.path}")


def _png(out: Path, ns, xs, usl_fit, amdahl_fit) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    out.parent.mkdir(parents=True, exist_ok=True)
    grid = np.linspace(1, max(ns) * 1.5, 200)
    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=110)
    ax.plot(ns, xs, "ko", label="measured")
    ax.plot(grid, usl_fit.predict(grid), label=f"USL σ={usl_fit.sigma.value:.3f} κ={usl_fit.kappa.value:.4f}")
    ax.plot(grid, amdahl_fit.predict(grid), "--", label=f"Amdahl σ={amdahl_fit.sigma.value:.3f}")
    ax.plot(grid, usl_fit.lam * grid, ":", color="grey", label="linear")
    ax.set_ylim(0, max(xs) * 1.6)
    ax.set_xlabel("instances launched at once")
    ax.set_ylabel("instances per second to SSH")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)
