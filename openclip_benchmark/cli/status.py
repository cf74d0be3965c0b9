"""Command: `benchmark status`, summarise the tracker."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from ..core.jsonio import dumps_strict
from ..tracker import STATUSES
from .app import DEFAULT_TRACKER, app, console
from .tables import _table

FAILED_SHOWN = 20


def _status_tables(summary: dict[str, Any]) -> list:
    statuses = [s for s in STATUSES if summary["by_status"][s]] or ["pending"]

    def grid(title: str, key: str, first: str):
        rows = [[name, *(counts.get(s, 0) for s in statuses), sum(counts.values())] for name, counts in summary[key].items()]
        return _table(title, [first, *statuses, "total"], rows, justify_right=tuple(range(1, len(statuses) + 2)))

    totals = [[s, summary["by_status"][s]] for s in STATUSES] + [["total", summary["total"]]]
    tables = [
        _table("by status", ["status", "pairs"], totals, justify_right=(1,)),
        grid("by dataset", "by_dataset", "dataset"),
        grid("by model family", "by_family", "family"),
    ]
    failed = summary["failed"]
    if failed:
        rows = [
            [f"{f['model']}:{f['pretrained']}", f["dataset"], f["language"], f["attempts"], f["error"][:160]]
            for f in failed[:FAILED_SHOWN]
        ]
        more = f" (first {FAILED_SHOWN} of {len(failed)}; --json lists all)" if len(failed) > FAILED_SHOWN else ""
        tables.append(_table(f"failed pairs{more}", ["model", "dataset", "lang", "attempts", "error"], rows))
    return tables


@app.command()
def status(
    tracker: Path = typer.Option(Path(DEFAULT_TRACKER), "--tracker", "-t", help="The tracker CSV."),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
    no_queue: bool = typer.Option(False, "--no-queue", help="Do not read SkyPilot's job queue first."),
):
    """Summarise the tracker: counts by status, dataset and model family, and failed pairs with their reasons."""
    from ..pipeline.launch import status_summary

    summary = status_summary(tracker, poll=not no_queue)
    moved, warning = summary["queue_moved"], summary.get("queue_warning", "")
    if as_json:
        typer.echo(dumps_strict(summary))
        return
    if warning:
        typer.echo(f"warning: job queue not read ({warning}); showing the tracker as saved", err=True)
    out = console()
    out.print(f"{summary['tracker']}: {summary['total']} pairs", markup=False)
    if moved:
        out.print("job queue: " + ", ".join(f"{n} pair(s) now {s}" for s, n in sorted(moved.items())))
    for table in _status_tables(summary):
        out.print(table)
