"""Command: `benchmark sync`, store -> ./results + tracker."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from ..core.errors import BenchmarkError
from ..core.paths import check_output_folder
from ..core.project import PROJECT_FILE, SETTINGS
from ..storage.store import TIMEOUT_ENV
from .app import app, console, load_catalog
from .options import DEFAULT_RESULTS, DEFAULT_TRACKER, DatasetMapping, EndpointUrl, Results, Store, Tracker
from .tables import FIGURE, Column, print_table


@app.command()
def sync(
    store: Store = None,
    endpoint_url: EndpointUrl = None,
    results: Results = DEFAULT_RESULTS,
    tracker: Tracker = DEFAULT_TRACKER,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="list and compare only: download and change nothing")] = False,
    workers: Annotated[int, typer.Option("--workers", min=1, max=256, help="parallel downloads")] = 16,
    no_bundles: Annotated[bool, typer.Option("--no-bundles", help="one GET per object (ignore shard bundles)")] = False,
    store_timeout: Annotated[Optional[float], typer.Option(
        "--store-timeout", envvar=TIMEOUT_ENV, show_envvar=True,
        help="seconds one store request may take, retries included, before sync gives up (exit 75)  [default: 60]",
    )] = None,
    dataset_mapping: DatasetMapping = None,
):
    """Download every new or changed result from the store and move the tracked pairs to succeeded or failed."""
    from ..pipeline.collect import sync as sync_store

    if not store:
        raise BenchmarkError(f"no store given: pass --store s3://bucket/prefix, set {SETTINGS['store'].env[0]} or "
                             f"write store = \"s3://...\" in {PROJECT_FILE}")
    check_output_folder(results, "--results")
    catalog = load_catalog(dataset_mapping)
    with _Bar("downloading") as bar:
        report = sync_store(store, results, tracker, catalog, endpoint_url=endpoint_url, workers=workers, dry_run=dry_run,
                            bundles=not no_bundles, timeout=store_timeout, on_progress=bar)
    _print_sync(report, results)
    if report.exit_code:
        raise typer.Exit(report.exit_code)


class _Bar:
    """A rich progress bar on stderr, drawn from the use case's `on_progress(done, total)` calls."""

    def __init__(self, title: str):
        self.title, self.bar, self.task = title, None, None

    def __call__(self, done: int, total: int) -> None:
        if self.bar is None:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self.bar = Progress(TextColumn(self.title), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                                console=console(stderr=True))
            self.bar.start()
            self.task = self.bar.add_task(self.title, total=total)
        self.bar.update(self.task, completed=done, total=total)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self.bar is not None:
            self.bar.stop()
        return False


def _print_sync(report, results: Path) -> None:
    from rich.markup import escape

    out, err = console(), console(stderr=True)
    rows = [
        ("listed", report.listed),
        ("new" + (" (would fetch)" if report.dry_run else ""), len(report.new)),
        ("changed" + (" (would fetch)" if report.dry_run else ""), len(report.changed)),
        ("unchanged", report.unchanged),
        ("manifests (skipped)", report.manifests),
        ("refused", len(report.refused)),
        ("quarantined", len(report.quarantined)),
        ("bad before, unchanged (skipped)", report.known_bad),
        ("shard bundles fetched", report.bundles),
        ("taken from bundles (no GET)", report.from_bundles),
        ("download errors", len(report.errors)),
        ("result records", report.results),
        ("failure records", report.failures),
        ("per-sample outcome files", report.samples),
        ("tracker rows changed", report.tracker_updates),
        ("MiB downloaded", f"{report.bytes / 2**20:.2f}"),
    ]
    print_table(out, f"sync {report.store} -> {results}" + (" (dry run)" if report.dry_run else ""),
                [Column("objects"), Column("count", FIGURE)], rows)
    for title, items in (("refused", report.refused), ("quarantined", report.quarantined), ("error", report.errors)):
        for key, why in items[:20]:  # keys come from the bucket: repr() shows control characters, escape() markup
            err.print(f"[yellow]warning[/]: {title} {escape(repr(key))}: {escape(why)}", highlight=False, soft_wrap=True)
        if len(items) > 20:
            err.print(f"[yellow]warning[/]: ... and {len(items) - 20} more {title}")
    if report.quarantined:
        err.print(f"quarantined objects are in {results / '.quarantine'} with a .reason.json each", highlight=False)
