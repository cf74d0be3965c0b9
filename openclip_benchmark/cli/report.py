"""Command: `benchmark report`, CSVs -> HTML page."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..core.paths import check_output_folder
from .app import app, console, load_catalog
from .options import DEFAULT_RESULTS, DEFAULT_TRACKER, DatasetMapping, Results, Tracker
from .parse import _print_parse


@app.command()
def report(
    results: Results = DEFAULT_RESULTS,
    metrics: Annotated[Path, typer.Option(
        "--metrics", help="folder of the metric CSVs (written by `benchmark parse`)")] = Path("."),
    tracker: Tracker = DEFAULT_TRACKER,
    out: Annotated[Path, typer.Option("--out", help="folder for index.html and the PNGs")] = Path("report"),
    dataset_mapping: DatasetMapping = None,
):
    """Write one self-contained HTML page (leaderboard, heatmap, accuracy vs GFLOPs and cost, progress)."""
    from ..pipeline.collect import report as build

    check_output_folder(out, "--out")
    outcome = build(results, metrics, tracker, out, load_catalog(dataset_mapping))
    if outcome.parsed is not None:
        _print_parse(outcome.parsed)
    console().print(f"report: {outcome.page.resolve().as_uri()}", highlight=False)
