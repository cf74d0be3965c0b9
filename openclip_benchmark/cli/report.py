"""Command: `benchmark report`, CSVs -> HTML page."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from .app import DATASET_MAPPING, DEFAULT_RESULTS, DEFAULT_TRACKER, app, console, load_catalog
from .parse import _print_parse

@app.command()
def report(
    results: Path = typer.Option(Path(DEFAULT_RESULTS), "--results", help="result JSONs, parsed first when newer than the CSVs"),
    metrics: Path = typer.Option(Path("."), "--metrics", help="folder of the metric CSVs (written by `benchmark parse`)"),
    tracker: Path = typer.Option(Path(DEFAULT_TRACKER), "--tracker", help="tracker CSV, for the progress plot"),
    out: Path = typer.Option(Path("report"), "--out", help="folder for index.html and the PNGs"),
    dataset_mapping: Optional[Path] = DATASET_MAPPING,
):
    """Write one self-contained HTML page (leaderboard, heatmap, accuracy vs GFLOPs and cost, progress)."""
    from ..pipeline.collect import report as build

    outcome = build(results, metrics, tracker, out, load_catalog(dataset_mapping))
    if outcome.parsed is not None:
        _print_parse(outcome.parsed)
    console().print(f"report: {outcome.page.resolve().as_uri()}", highlight=False)
