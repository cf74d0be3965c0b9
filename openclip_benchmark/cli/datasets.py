"""Command: `benchmark datasets`, the benchmark datasets of the catalog."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from ..core.jsonio import dumps_strict
from .app import app, comma_list, console, load_catalog
from .options import DATASETS_HELP, DatasetMapping, Json
from .tables import FIGURE, TEXT, Column, print_table


@app.command()
def datasets(
    patterns: Annotated[Optional[list[str]], typer.Argument(help=DATASETS_HELP)] = None,
    as_json: Json = False,
    dataset_mapping: DatasetMapping = None,
):
    """List benchmark datasets: webdataset, task, test-split size, classes, main metric, collections, languages."""
    rows = load_catalog(dataset_mapping).select_datasets(comma_list(patterns))
    if as_json:
        typer.echo(dumps_strict([s.to_json() for s in rows]))
        return
    print_table(
        console(), f"{len(rows)} datasets",
        [Column("dataset"), Column("task"), Column("test size", FIGURE), Column("classes", FIGURE), Column("metric"),
         Column("collections", TEXT), Column("languages", TEXT)],
        [
            [s.name, s.task.removeprefix("zeroshot_"), s.size,
             s.num_classes or (f"{s.captions_per_image} capt." if s.captions_per_image else ""),
             s.metric, ", ".join(s.collections), ", ".join(s.languages)]
            for s in rows
        ],
    )
