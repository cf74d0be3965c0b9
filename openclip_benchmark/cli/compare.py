"""Command: `benchmark compare`, two models, or ours against the published table."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ..core.errors import BenchmarkError
from .app import DATASET_MAPPING, DEFAULT_RESULTS, app, console, load_catalog

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
