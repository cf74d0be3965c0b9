"""Command: `benchmark datasets`, the benchmark datasets of the catalog."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ..core.jsonio import dumps_strict
from .app import DATASET_MAPPING, app, comma_list, console, load_catalog
from .tables import DATASETS_HELP, _table

@app.command()
def datasets(
    patterns: Optional[list[str]] = typer.Argument(None, help=DATASETS_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print the datasets as JSON."),
    dataset_mapping: Optional[Path] = DATASET_MAPPING,
):
    """List benchmark datasets: webdataset, task, test-split size, classes, main metric, collections, languages."""
    rows = load_catalog(dataset_mapping).select_datasets(comma_list(patterns))
    if as_json:
        typer.echo(dumps_strict([s.to_json() for s in rows]))
        return
    table = _table(
        f"{len(rows)} datasets",
        ["dataset", "task", "test size", "classes", "metric", "collections", "languages"],
        [
            [s.name, s.task.removeprefix("zeroshot_"), s.size, s.num_classes or (f"{s.captions_per_image} capt." if s.captions_per_image else ""),
             s.metric, ", ".join(s.collections), ", ".join(s.languages)]
            for s in rows
        ],
        justify_right=(2, 3),
    )
    console().print(table)
