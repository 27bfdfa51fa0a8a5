"""Every name inside a run folder, in one place.

<results>/<UTC time>-<name>/
    run.json                     the result (schema_version, command, figures)
    samples/w<worker>-<seq>.npz  `run`: every request, in parts written while it ran
    samples.npz, timeline.npz    every request (a probe; a run of an older version); each worker's timeline
    histograms.json              `run` (and each probe): per-worker HDR histograms of latency and lag
    monitor.npz                  host and per-process series (capacity, storm)
    probes/<NN>-<rate>/          `capacity`: one folder per probe, samples + timeline
    phases.npz                   `storm`: per-instance marks
    console/                     `storm`: the guests' serial consoles
    <storm folders>/             `scale`: one complete storm folder per storm
    report.html, png/, *.png     written by `redline report` from the above

<results>/<study name>/           `redline study`
    study.json, study.yaml       the cells, what became of each; the study file as given
    cells/<id>/attempt-<k>/      each attempt's lab.log, job.log and run folder
    study.html                   the table and the factors' effects
"""

from __future__ import annotations

RUN_JSON = "run.json"
SAMPLES = "samples.npz"
SAMPLE_PARTS = "samples"  # `run`: the rows as parts written while it ran (store/parts.py)
TIMELINE = "timeline.npz"
HISTOGRAMS = "histograms.json"
PROFILE = "profile.txt.gz"  # a probe's (or run's) py-spy samples of the target, collapsed stacks
MONITOR = "monitor.npz"
PHASES = "phases.npz"
CONSOLE_DIR = "console"
PROBES_DIR = "probes"
REPORT_HTML = "report.html"
PNG_DIR = "png"
STORM_PHASES_PNG = "phases.png"
STORM_TIMELINE_PNG = "timeline.png"
SCALE_PNG = "scale.png"
STUDY_JSON = "study.json"
STUDY_YAML = "study.yaml"
STUDY_CELLS = "cells"
STUDY_HTML = "study.html"


def probe_dir(index: int, rate: float) -> str:
    """A probe's folder, relative to its run folder."""
    return f"{PROBES_DIR}/{index:02d}-{rate:g}"


def probe_png(index: int, rate: float) -> str:
    return f"latency-{index:02d}-{rate:g}.png"


# The report's charts, in png/ (report.html embeds the same figures).
SEARCH_PNG = "search.png"
KNEE_PNG = "knee.png"
THROUGHPUT_PNG = "throughput.png"
HOST_PNG = "host.png"
RUN_LATENCY_PNG = "latency.png"

# `redline compare` writes its page beside the run folders it compares, not inside one.
COMPARE_HTML = "compare.html"
