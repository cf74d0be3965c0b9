"""Command: `benchmark parse`, results -> metric CSVs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..core.paths import check_output_folder
from .app import app, console, load_catalog
from .options import DEFAULT_RESULTS, DEFAULT_TRACKER, DatasetMapping, Results, Tracker
from .tables import FIGURE, Column, print_table


@app.command()
def parse(
    results: Results = DEFAULT_RESULTS,
    out: Annotated[Path, typer.Option("--out", help="where the CSVs and Parquet files go")] = Path("."),
    tracker: Tracker = DEFAULT_TRACKER,
    dataset_mapping: DatasetMapping = None,
):
    """Write classification_metrics.csv, retrieval_metrics.csv and leaderboard.csv (+ .parquet) from the results."""
    from ..pipeline.collect import parse as parse_folder

    check_output_folder(out, "--out")
    _print_parse(parse_folder(results, out, tracker, load_catalog(dataset_mapping)))


def _print_parse(report) -> None:
    from rich.markup import escape

    out, err = console(), console(stderr=True)
    folder = report.written[0].parent if report.written else Path(".")
    print_table(out, f"parse -> {folder} (CSV + Parquet)", [Column("file"), Column("rows", FIGURE)],
                [[path.name, report.rows[path.stem]] for path in report.written if path.suffix == ".csv"])
    out.print(
        f"{report.files} files: {report.results} results, {report.failures} failure records, "
        f"{report.duplicates} duplicates, {len(report.invalid)} invalid",
        highlight=False,
    )
    for rel, why in report.invalid[:20]:
        err.print(f"[yellow]warning[/]: skipped {escape(repr(rel))}: {escape(why)}", highlight=False, soft_wrap=True)
    if report.missing:
        err.print(f"[yellow]warning[/]: {report.missing} succeeded pairs have no local result; run `benchmark sync`")
