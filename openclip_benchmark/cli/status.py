"""Command: `benchmark status`, summarise the tracker."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from ..core.jsonio import dumps_strict
from ..tracker import STATUSES
from .app import app, console
from .options import DEFAULT_TRACKER, Json, Tracker
from .tables import FIGURE, TEXT, Column, FittedTable

FAILED_SHOWN = 20


def _status_tables(summary: dict[str, Any]) -> list[FittedTable]:
    statuses = [s for s in STATUSES if summary["by_status"][s]] or ["pending"]
    counts = [Column(s, FIGURE) for s in (*statuses, "total")]

    def grid(title: str, key: str, first: str) -> FittedTable:
        rows = [[name, *(by.get(s, 0) for s in statuses), sum(by.values())] for name, by in summary[key].items()]
        return FittedTable(title, [Column(first), *counts], rows)

    totals = [[s, summary["by_status"][s]] for s in STATUSES] + [["total", summary["total"]]]
    tables = [
        FittedTable("by status", [Column("status"), Column("pairs", FIGURE)], totals, sections=[len(STATUSES) - 1]),
        grid("by dataset", "by_dataset", "dataset"),
        grid("by model family", "by_family", "family"),
    ]
    failed = summary["failed"]
    if failed:
        rows = [
            [f"{f['model']}:{f['pretrained']}\n{f['dataset']} ({f['language']})", f["attempts"], f["error"][:160]]
            for f in failed[:FAILED_SHOWN]
        ]
        more = f" (first {FAILED_SHOWN} of {len(failed)}; --json lists all)" if len(failed) > FAILED_SHOWN else ""
        tables.append(FittedTable(f"failed pairs{more}", [Column("model, dataset (language)"),
                                                          Column("attempts", FIGURE), Column("error", TEXT)], rows))
    return tables


@app.command()
def status(
    tracker: Tracker = DEFAULT_TRACKER,
    as_json: Json = False,
    no_queue: Annotated[bool, typer.Option("--no-queue", help="Do not read SkyPilot's job queue first.")] = False,
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
