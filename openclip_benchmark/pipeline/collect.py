"""The collect use cases: sync (store -> local results folder + tracker), parse (results -> metric CSVs) and report
(CSVs -> HTML page), the check against published numbers, the paired comparison of two models, and publish (the
tables and the page -> a Hugging Face dataset repo). `benchmark sync`, `parse`, `report`, `compare` and `publish`
each call one of these and print what it returns."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ..catalog import Catalog
from ..collect import compare, published
from ..collect import publish as hub
from ..collect.parse import ParseReport, ResultFile, outputs_stale, parse_results, read_result_files
from ..collect.report import build_report
from ..core.jsonio import atomic_write_text
from ..storage.layout import slug
from ..storage.sync import Progress, SyncReport, open_source
from .track import sync_and_track


def sync(
    store: str,
    results: str | os.PathLike,
    tracker: str | os.PathLike | None,
    catalog: Catalog,
    *,
    endpoint_url: str | None = None,
    workers: int = 16,
    dry_run: bool = False,
    bundles: bool = True,
    timeout: float | None = None,
    on_progress: Progress | None = None,
) -> SyncReport:
    """Mirror the store's new or changed results into `results` and move the tracked pairs; records name their
    datasets in any spelling the catalog knows, so they match the tracked pairs."""
    source = open_source(store, endpoint_url, workers, timeout)
    return sync_and_track(source, results, tracker, dry_run=dry_run, workers=workers, on_progress=on_progress,
                          bundles=bundles, catalog=catalog)


def parse(results: str | os.PathLike, out: str | os.PathLike, tracker: str | os.PathLike | None,
          catalog: Catalog) -> ParseReport:
    """The metric CSVs, the leaderboard and their Parquet twins from every result in `results`."""
    return parse_results(results, out, tracker, catalog=catalog)


@dataclass(frozen=True)
class ReportOutcome:
    page: Path
    parsed: ParseReport | None  # the parse run first because the results were newer than the CSVs, if any


def report(results: str | os.PathLike, metrics: str | os.PathLike, tracker: Path, out: str | os.PathLike,
           catalog: Catalog, throughput: Path = Path("throughput"), parsed: ParseReport | None = None) -> ReportOutcome:
    """The HTML report of the metric tables, with the check against open_clip's published numbers where any result
    has a published cell, and a section for the `benchmark throughput` runs in `throughput`, if any. The tables are
    `parsed`'s when this command just parsed; else parsed here when a result is newer than the CSVs, else the CSVs."""
    ran = None
    if parsed is None and outputs_stale(results, metrics):
        parsed = ran = parse(results, metrics, tracker, catalog)
    found = parsed.found if parsed is not None else read_result_files(results, catalog) if Path(results).is_dir() else None
    checked = _published_check(found, catalog) if found is not None else None
    page = build_report(metrics, out, tracker, published=checked, throughput_dir=throughput,
                        catalog=catalog, tables=parsed.tables if parsed is not None else None)
    return ReportOutcome(page, ran)


@dataclass(frozen=True)
class PublishedOutcome:
    comparison: published.Comparison
    written: Path


def compare_published(results: str | os.PathLike, out: str | os.PathLike, catalog: Catalog, *,
                      tolerance: float = published.TOLERANCE_POINTS, table: Path | None = None,
                      tasks: Path | None = None) -> PublishedOutcome:
    """Every result that open_clip's published table has a cell for, against it; written as
    `published_comparison.csv` in `out`."""
    comparison = _published_check(read_result_files(results, catalog), catalog, tolerance, table, tasks)
    path = Path(out) / "published_comparison.csv"
    atomic_write_text(path, published.comparison_csv(comparison))
    return PublishedOutcome(comparison, path)


def _published_check(found: list[ResultFile], catalog: Catalog, tolerance: float = published.TOLERANCE_POINTS,
                     table: Path | None = None, tasks: Path | None = None) -> published.Comparison:
    reference = published.load_published(catalog, table, tasks)
    return published.compare_published((f.record for f in found), reference, tolerance, catalog)


@dataclass(frozen=True)
class PairedOutcome:
    comparison: compare.PairedComparison
    written: Path
    skipped: list[tuple[str, str]]  # (file, why) of the files in the results folder that are not valid records


def compare_models(results: str | os.PathLike, out: str | os.PathLike, catalog: Catalog, a: str,
                   b: str) -> PairedOutcome:
    """Model `a` against model `b` on every dataset both have results for (paired tests where both have per-sample
    outcomes); written as `compare_<a>_<b>.csv` in `out`."""
    read = ParseReport()
    side_a, side_b, cells_a, cells_b = compare.read_cells(results, catalog, (a, b), read)
    comparison = compare.compare_cells(side_a, side_b, cells_a, cells_b)
    path = Path(out) / f"compare_{slug(compare.label(side_a))}_{slug(compare.label(side_b))}.csv"
    atomic_write_text(path, compare.comparison_csv(comparison))
    return PairedOutcome(comparison, path, read.invalid)


def publish(repo_id: str, metrics: str | os.PathLike, report: str | os.PathLike, results: str | os.PathLike,
            catalog: Catalog, *, private: bool = False, endpoint: str | None = None,
            dry_run: bool = False) -> hub.PublishOutcome:
    """The leaderboard, the metric CSVs and the report page in `metrics` and `report`, with a dataset card made from
    the results in `results` (what ran, with which versions), to the Hugging Face dataset repo `repo_id`: only what
    differs from the repo's files, in one commit."""
    repo_id = hub.check_repo_id(repo_id)
    files = hub.collect_files(Path(metrics), Path(report))
    files[hub.CARD] = hub.dataset_card(repo_id, files, read_result_files(results, catalog), catalog).encode()
    return hub.publish(repo_id, files, private=private, endpoint=endpoint, dry_run=dry_run)
