"""Command: `benchmark init`, enumerate pairs into the tracker."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ..tracker import STATUSES
from .app import DATASET_MAPPING, DEFAULT_TRACKER, app, comma_list, console, load_catalog
from .tables import DATASETS_HELP, MODELS_HELP, _table

@app.command()
def init(
    models: Optional[list[str]] = typer.Option(None, "--models", "-m", help=MODELS_HELP),
    datasets: Optional[list[str]] = typer.Option(None, "--datasets", "-d", help=DATASETS_HELP),
    languages: Optional[list[str]] = typer.Option(None, "--languages", "-l", help="Languages, e.g. en,jp (default: en); each dataset gets the ones it has."),
    dataset_mapping: Optional[Path] = DATASET_MAPPING,
    tracker: Path = typer.Option(Path(DEFAULT_TRACKER), "--tracker", "-t", help="The tracker CSV."),
    reset: bool = typer.Option(False, "--reset", help="Forget every tracked pair and status first."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask before --reset."),
):
    """Enumerate model x dataset pairs into the tracker, keeping the status of pairs already there."""
    from ..pipeline.track import init_tracker

    known = load_catalog(dataset_mapping)
    if reset and tracker.exists() and not yes:
        typer.confirm(f"Reset {tracker}, forgetting every status in it?", abort=True)
    done = init_tracker(tracker, known, comma_list(models), comma_list(datasets), comma_list(languages), reset)
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
    out.print(_table("", ["", "count"], rows, justify_right=(1,)))
