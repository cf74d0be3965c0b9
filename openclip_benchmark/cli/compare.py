"""Command: `benchmark compare`, two models, or ours against the published table."""

from __future__ import annotations

from itertools import groupby
from pathlib import Path
from typing import Annotated, Optional

import typer

from ..core.errors import BenchmarkError
from ..core.paths import check_output_folder
from .app import app, console, load_catalog
from .options import DEFAULT_RESULTS, DatasetMapping, Results
from .tables import FIGURE, Column, print_table


@app.command()
def compare(
    models: Annotated[Optional[list[str]], typer.Argument(
        help="two models A B (`model` or `model/pretrained`): A - B per dataset with a paired test",
        show_default=False)] = None,
    published: Annotated[bool, typer.Option(
        "--published", help="Compare with open_clip's published table (DataComp's 38 tasks).")] = False,
    results: Results = DEFAULT_RESULTS,
    out: Annotated[Path, typer.Option(
        "--out", help="where published_comparison.csv or compare_<A>_<B>.csv goes")] = Path("."),
    tolerance: Annotated[float, typer.Option("--tolerance", min=0, help="flag differences over this many points")] = 0.5,
    table: Annotated[Optional[Path], typer.Option(
        "--table", help="another published table in the same format (default: the shipped copy)")] = None,
    tasks: Annotated[Optional[Path], typer.Option(
        "--tasks", help="another DataComp task list (default: the shipped copy)")] = None,
    dataset_mapping: DatasetMapping = None,
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

    from ..collect.compare import label

    c = outcome.comparison
    out, err = console(), console(stderr=True)
    rows, styles = [], []
    for d in [*c.rows, c.average]:
        interval = f"[{100 * d.low:+.2f}, {100 * d.high:+.2f}]" if d.low is not None else "-"
        p = f"{d.p_value:.3g}" if d.p_value is not None else "-"
        rows.append([f"{d.dataset} ({d.metric})", "" if d.n is None else d.n, f"{100 * d.a:.2f}", f"{100 * d.b:.2f}",
                     f"{d.points:+.2f}", interval, f"{p} ({d.test or 'none'})"])
        styles.append("bold" if d is c.average else ("green" if d.p_value is not None and d.p_value < 0.05 else None))
    print_table(out, f"{label(c.a)} (A) against {label(c.b)} (B): A - B, paired on the same images",
                [Column("dataset (metric)"), Column("images", FIGURE), Column("A", FIGURE), Column("B", FIGURE),
                 Column("Δ points", FIGURE), Column("95% interval", FIGURE), Column("p (test)")],
                rows, styles=styles, sections=[len(rows) - 2])
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
    """One block per model (most flagged first): its datasets, ours, published and the difference; flagged in red."""
    from rich.markup import escape

    c = outcome.comparison
    out, err = console(), console(stderr=True)
    by_model = [list(group) for _, group in groupby(sorted(c.rows, key=lambda d: (d.model, d.pretrained)),
                                                    key=lambda d: (d.model, d.pretrained))]
    by_model.sort(key=lambda group: -sum(d.flagged(c.tolerance) for d in group))
    rows, styles, sections = [], [], []
    for group in by_model:
        flagged = sum(d.flagged(c.tolerance) for d in group)
        rows.append([f"{group[0].model}:{group[0].pretrained}" + (f" ({flagged} flagged)" if flagged else ""), "", "", ""])
        styles.append("bold")
        for d in sorted(group, key=lambda d: (not d.flagged(c.tolerance), d.dataset)):
            rows.append([f"  {d.dataset} ({d.metric})", f"{100 * d.ours:.2f}", f"{100 * d.published:.2f}",
                         f"{d.points:+.2f}"])
            styles.append("red" if d.flagged(c.tolerance) else None)
        sections.append(len(rows) - 1)
    print_table(out, f"ours against open_clip's published table (flagged: more than {c.tolerance:g} points apart)",
                [Column("model, dataset (metric)"), Column("ours", FIGURE), Column("published", FIGURE),
                 Column("Δ points", FIGURE)], rows, styles=styles, sections=sections[:-1])
    out.print(f"{len(c.rows)} compared, {len(c.flagged)} flagged; written to {outcome.written}", highlight=False)
    if c.unpublished_models:
        names = ", ".join(f"{m}:{p}" if p else m for m, p in c.unpublished_models[:10])
        more = f" and {len(c.unpublished_models) - 10} more" if len(c.unpublished_models) > 10 else ""
        err.print(f"no published row for {escape(names)}{more}", highlight=False)
    for model, pretrained, dataset, metric in c.no_metric[:10]:
        err.print(f"[yellow]warning[/]: {escape(model)}:{escape(pretrained)} {dataset} has no {metric}", highlight=False)
    if c.not_in_catalog:
        err.print(f"in DataComp's suite, not in the catalog (not compared): {', '.join(c.not_in_catalog)}", highlight=False)
    for model, pretrained, cell in c.incomplete_averages[:10]:
        err.print(f"DataComp's average of {escape(model)}:{escape(pretrained)} not compared: {cell} of its tasks",
                  highlight=False)
    if c.missing_columns:
        err.print(f"[yellow]warning[/]: the published table lacks the column(s) {', '.join(c.missing_columns)}", highlight=False)
