"""Commands: sync (store -> ./results + tracker), parse (results -> metric CSVs), report (CSVs -> HTML page)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ..core.errors import BenchmarkError
from ..core.paths import check_output_folder
from ..storage.store import TIMEOUT_ENV
from .app import DATASET_MAPPING, DEFAULT_RESULTS, DEFAULT_TRACKER, app, console, load_catalog

STORE_ENV = "BENCHMARK_STORE"


@app.command()
def sync(
    store: Optional[str] = typer.Option(
        None, "--store", envvar=STORE_ENV, help="s3://bucket/prefix (R2 or any S3) or a folder", show_default=False
    ),
    endpoint_url: Optional[str] = typer.Option(None, "--endpoint-url", help="S3 endpoint; default: $R2_ENDPOINT_URL"),
    results: Path = typer.Option(Path(DEFAULT_RESULTS), "--results", help="local mirror of the store"),
    tracker: Path = typer.Option(Path(DEFAULT_TRACKER), "--tracker", help="tracker CSV to update"),
    dry_run: bool = typer.Option(False, "--dry-run", help="list and compare only: download and change nothing"),
    workers: int = typer.Option(16, "--workers", min=1, max=256, help="parallel downloads"),
    no_bundles: bool = typer.Option(False, "--no-bundles", help="one GET per object (ignore shard bundles)"),
    store_timeout: Optional[float] = typer.Option(
        None, "--store-timeout", envvar=TIMEOUT_ENV, show_envvar=True,
        help="seconds one store request may take, retries included, before sync gives up (exit 75)  [default: 60]",
    ),
    dataset_mapping: Optional[Path] = DATASET_MAPPING,
):
    """Download every new or changed result from the store and move the tracked pairs to succeeded or failed."""
    from ..pipeline.collect import sync as sync_store

    if not store:
        raise BenchmarkError(f"no store given: pass --store s3://bucket/prefix or set {STORE_ENV}")
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
    from rich.table import Table

    out, err = console(), console(stderr=True)
    table = Table(title=f"sync {report.store} -> {results}" + (" (dry run)" if report.dry_run else ""))
    table.add_column("objects")
    table.add_column("count", justify="right")
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
    for name, value in rows:
        table.add_row(name, str(value))
    out.print(table)
    for title, items in (("refused", report.refused), ("quarantined", report.quarantined), ("error", report.errors)):
        for key, why in items[:20]:  # keys come from the bucket: repr() shows control characters, escape() markup
            err.print(f"[yellow]warning[/]: {title} {escape(repr(key))}: {escape(why)}", highlight=False, soft_wrap=True)
        if len(items) > 20:
            err.print(f"[yellow]warning[/]: ... and {len(items) - 20} more {title}")
    if report.quarantined:
        err.print(f"quarantined objects are in {results / '.quarantine'} with a .reason.json each", highlight=False)


@app.command()
def parse(
    results: Path = typer.Option(Path(DEFAULT_RESULTS), "--results", help="folder of result JSONs (any layout)"),
    out: Path = typer.Option(Path("."), "--out", help="where the CSVs and Parquet files go"),
    tracker: Path = typer.Option(Path(DEFAULT_TRACKER), "--tracker", help="tracker CSV, to report results not synced yet"),
    dataset_mapping: Optional[Path] = DATASET_MAPPING,
):
    """Write classification_metrics.csv, retrieval_metrics.csv and leaderboard.csv (+ .parquet) from the results."""
    from ..pipeline.collect import parse as parse_folder

    check_output_folder(out, "--out")
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


@app.command()
def report(
    results: Path = typer.Option(Path(DEFAULT_RESULTS), "--results", help="result JSONs, parsed first when newer than the CSVs"),
    metrics: Path = typer.Option(Path("."), "--metrics", help="folder of the metric CSVs (written by `benchmark parse`)"),
    tracker: Path = typer.Option(Path(DEFAULT_TRACKER), "--tracker", help="tracker CSV, for the progress plot"),
    out: Path = typer.Option(Path("report"), "--out", help="folder for index.html and the PNGs"),
    dataset_mapping: Optional[Path] = DATASET_MAPPING,
):
    """Write one self-contained HTML page (leaderboard, heatmap, accuracy vs GFLOPs and cost, progress)."""
    from ..pipeline.collect import report as build

    check_output_folder(out, "--out")
    outcome = build(results, metrics, tracker, out, load_catalog(dataset_mapping))
    if outcome.parsed is not None:
        _print_parse(outcome.parsed)
    console().print(f"report: {outcome.page.resolve().as_uri()}", highlight=False)


@app.command()
def compare(
    models: Optional[list[str]] = typer.Argument(
        None, help="two models A B (`model` or `model/pretrained`): A - B per dataset with a paired test", show_default=False),
    published: bool = typer.Option(False, "--published", help="Compare with open_clip's published table (DataComp's 38 tasks)."),
    results: Path = typer.Option(Path(DEFAULT_RESULTS), "--results", help="folder of result JSONs"),
    out: Path = typer.Option(Path("."), "--out", help="where published_comparison.csv or compare_<A>_<B>.csv goes"),
    tolerance: float = typer.Option(0.5, "--tolerance", min=0, help="flag differences over this many points"),
    table: Optional[Path] = typer.Option(None, "--table", help="another published table in the same format (default: the shipped copy)"),
    tasks: Optional[Path] = typer.Option(None, "--tasks", help="another DataComp task list (default: the shipped copy)"),
    dataset_mapping: Optional[Path] = DATASET_MAPPING,
):
    """`compare A B`: model A against model B on every dataset both have, the difference in main metric (points),
    a paired test (exact McNemar for accuracies, paired bootstrap otherwise) with its p-value and 95% interval, and
    the same on the average. `compare --published`: our value, the published one and the difference in points for
    every (model, pretrained, dataset) both have, each column with DataComp's main metric."""
    from ..pipeline.collect import compare_models, compare_published

    models = models or []
    check_output_folder(out, "--out")
    if published and models:
        raise BenchmarkError("compare takes either two models or --published, not both")
    if models:
        if len(models) != 2:
            raise BenchmarkError(f"compare takes two models A B, not {len(models)}")
        _print_paired(compare_models(results, out, load_catalog(dataset_mapping), *models))
        return
    if not published:
        raise BenchmarkError("compare needs two models A B, or --published (what to compare the results with)")
    outcome = compare_published(results, out, load_catalog(dataset_mapping), tolerance=tolerance, table=table, tasks=tasks)
    _print_published(outcome)


def _print_paired(outcome) -> None:
    from rich.markup import escape
    from rich.table import Table

    from ..collect.compare import label

    c = outcome.comparison
    out, err = console(), console(stderr=True)
    table = Table(title=f"{escape(label(c.a))} (A) against {escape(label(c.b))} (B): A - B, paired on the same images")
    for name in ("dataset", "metric", "images", "A", "B", "Δ points", "95% interval", "p", "test"):
        table.add_column(name, justify="left" if name in ("dataset", "metric", "test") else "right")
    for d in [*c.rows, c.average]:
        interval = f"[{100 * d.low:+.2f}, {100 * d.high:+.2f}]" if d.low is not None else "-"
        p = f"{d.p_value:.3g}" if d.p_value is not None else "-"
        style = "bold" if d is c.average else ("green" if d.p_value is not None and d.p_value < 0.05 else None)
        table.add_row(escape(d.dataset), d.metric, "" if d.n is None else str(d.n), f"{100 * d.a:.2f}",
                      f"{100 * d.b:.2f}", f"{d.points:+.2f}", interval, p, d.test or "none", style=style)
    out.print(table)
    out.print(f"{len(c.rows)} datasets in common; written to {outcome.written}", highlight=False)
    for rel, why in outcome.skipped[:20]:
        err.print(f"[yellow]warning[/]: skipped {escape(repr(rel))}: {escape(why)}", highlight=False, soft_wrap=True)
    for d in [*c.rows, c.average]:
        if d.note:
            err.print(f"[yellow]warning[/]: {escape(d.dataset)}: {escape(d.note)}", highlight=False)
    if c.untested:
        err.print("results without per-sample outcomes (written before they were recorded) show their difference but "
                  "no test; run those pairs again to get one", highlight=False)


def _print_published(outcome) -> None:
    from rich.markup import escape
    from rich.table import Table

    c = outcome.comparison
    out, err = console(), console(stderr=True)
    table = Table(title=f"ours against open_clip's published table (flagged: more than {c.tolerance:g} points apart)")
    for name in ("model", "pretrained", "dataset", "metric", "ours", "published", "Δ points"):
        table.add_column(name, justify="right" if name in ("ours", "published", "Δ points") else "left")
    for d in sorted(c.rows, key=lambda d: (not d.flagged(c.tolerance), d.model, d.pretrained, d.dataset)):
        style = "red" if d.flagged(c.tolerance) else None
        table.add_row(escape(d.model), escape(d.pretrained), d.dataset, d.metric, f"{100 * d.ours:.2f}",
                      f"{100 * d.published:.2f}", f"{d.points:+.2f}", style=style)
    out.print(table)
    out.print(f"{len(c.rows)} compared, {len(c.flagged)} flagged; written to {outcome.written}", highlight=False)
    if c.unpublished_models:
        names = ", ".join(f"{m}:{p}" if p else m for m, p in c.unpublished_models[:10])
        more = f" and {len(c.unpublished_models) - 10} more" if len(c.unpublished_models) > 10 else ""
        err.print(f"no published row for {escape(names)}{more}", highlight=False)
    for model, pretrained, dataset, metric in c.no_metric[:10]:
        err.print(f"[yellow]warning[/]: {escape(model)}:{escape(pretrained)} {dataset} has no {metric}", highlight=False)
    if c.not_in_catalog:
        err.print(f"in DataComp's suite, not in the catalog (not compared): {', '.join(c.not_in_catalog)}", highlight=False)
    if c.missing_columns:
        err.print(f"[yellow]warning[/]: the published table lacks the column(s) {', '.join(c.missing_columns)}", highlight=False)
