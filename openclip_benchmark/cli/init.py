"""Command: `benchmark init`, enumerate pairs into the tracker."""

from __future__ import annotations

from typing import Annotated

import typer

from ..tracker import STATUSES
from .app import app, comma_list, console, load_catalog
from .options import DEFAULT_TRACKER, DatasetMapping, Datasets, Languages, Models, Tasks, Tracker, Yes
from .tables import FIGURE, Column, print_table


@app.command()
def init(
    models: Models = None, datasets: Datasets = None, languages: Languages = None, tasks: Tasks = None,  # the pairs
    dataset_mapping: DatasetMapping = None,
    tracker: Tracker = DEFAULT_TRACKER,
    reset: Annotated[bool, typer.Option("--reset", help="Forget every tracked pair and status first.")] = False,
    yes: Yes = False,
):
    """Enumerate model x dataset pairs into the tracker, keeping the status of pairs already there."""
    from ..pipeline.track import init_tracker

    known = load_catalog(dataset_mapping)
    if reset and tracker.exists() and not yes:
        typer.confirm(f"Reset {tracker}, forgetting every status in it?", abort=True)
    done = init_tracker(tracker, known, comma_list(models), comma_list(datasets), comma_list(languages), reset,
                        comma_list(tasks))
    rows = [
        ["models", done.models],
        ["datasets", done.datasets],
        ["pairs selected", done.selected],
        ["new pairs", done.added],
        ["already tracked", done.selected - done.added],
        ["pairs in tracker", done.before + done.added],
        *[[f"  {s}", done.counts[s]] for s in STATUSES if done.counts[s]],
    ]
    out = console()
    out.print(str(tracker), markup=False)
    print_table(out, None, [Column(""), Column("count", FIGURE)], rows)
