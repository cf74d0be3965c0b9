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
    collection: Annotated[Optional[list[str]], typer.Option(
        "--collection", "-c", help="Only datasets of these collections ('datacomp', 'fairness', 'vtab', ...); repeat "
                                   "or comma-separate.")] = None,
    as_json: Json = False,
    dataset_mapping: DatasetMapping = None,
):
    """List benchmark datasets: webdataset, task, test-split size, classes, main metric, collections, languages."""
    from ..core.errors import UnknownNameError
    from ..tasks import get_task

    known = load_catalog(dataset_mapping)
    rows = known.select_datasets(comma_list(patterns))
    if collection:
        members = known.collections()
        wanted = set()
        for name in comma_list(collection):
            if name not in members:
                raise UnknownNameError("collection", name, members)
            wanted.update(members[name])
        rows = [s for s in rows if s.name in wanted]
    if as_json:
        typer.echo(dumps_strict([s.to_json() for s in rows]))
        return
    if "datacomp" in (comma_list(collection) or ()):
        return _datacomp_table(rows, known)
    print_table(
        console(), f"{len(rows)} datasets",
        [Column("dataset"), Column("task"), Column("test size", FIGURE), Column("classes", FIGURE), Column("metric"),
         Column("collections", TEXT), Column("languages", TEXT)],
        [
            [s.name, s.task.removeprefix("zeroshot_") + "".join(f" +{get_task(t).label or t}" for t in s.tasks[1:]), s.size,
             s.num_classes or (f"{s.captions_per_image} capt." if s.captions_per_image else ""),
             s.metric, ", ".join(s.collections), ", ".join(s.languages)]
            for s in rows
        ],
    )


def _datacomp_table(rows, known) -> None:
    """Datasets of DataComp's suite as DataComp names them: its task key and name, split, main metric and source."""
    out = console()
    print_table(
        out, f"{len(rows)} datasets of DataComp's suite",
        [Column("dataset"), Column("DataComp task"), Column("name"), Column("split"), Column("main metric"),
         Column("source")],
        [[s.name, s.datacomp.task, s.datacomp.name, s.split, s.datacomp.main_metric,
          s.datacomp.source.removeprefix("https://huggingface.co/datasets/")] for s in rows],
    )
    others = [s.name for s in known.datasets.values() if s.datacomp and s not in rows]
    if others:
        out.print(f"also in DataComp's task list: {', '.join(others)}", markup=False)
