"""Command: `benchmark parse`, results -> metric CSVs."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from .app import DATASET_MAPPING, DEFAULT_RESULTS, DEFAULT_TRACKER, app, console, load_catalog

@app.command()
def parse(
    results: Path = typer.Option(Path(DEFAULT_RESULTS), "--results", help="folder of result JSONs (any layout)"),
    out: Path = typer.Option(Path("."), "--out", help="where the CSVs and Parquet files go"),
    tracker: Path = typer.Option(Path(DEFAULT_TRACKER), "--tracker", help="tracker CSV, to report results not synced yet"),
    dataset_mapping: Optional[Path] = DATASET_MAPPING,
):
    """Write classification_metrics.csv, retrieval_metrics.csv and leaderboard.csv (+ .parquet) from the results."""
    from ..pipeline.collect import parse as parse_folder

    _print_parse(parse_folder(results, out, tracker, load_catalog(dataset_mapping)))


def _print_parse(report) -> None:
    from rich.markup import escape
    from rich.table import Table

    out, err = console(), console(stderr=True)
    folder = report.written[0].parent if report.written else Path(".")
    table = Table(title=f"parse -> {folder} (CSV + Parquet)")
    table.add_column("file")
    table.add_column("rows", justify="right")
    for path in report.written:
        if path.suffix == ".csv":
            table.add_row(path.name, str(report.rows[path.stem]))
    out.print(table)
    out.print(
        f"{report.files} files: {report.results} results, {report.failures} failure records, "
        f"{report.duplicates} duplicates, {len(report.invalid)} invalid",
        highlight=False,
    )
    for rel, why in report.invalid[:20]:
        err.print(f"[yellow]warning[/]: skipped {escape(repr(rel))}: {escape(why)}", highlight=False, soft_wrap=True)
    if report.missing:
        err.print(f"[yellow]warning[/]: {report.missing} succeeded pairs have no local result; run `benchmark sync`")
