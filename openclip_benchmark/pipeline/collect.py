"""The collect use cases: sync (store -> local results folder + tracker), parse (results -> metric CSVs) and report
(CSVs -> HTML page). `benchmark sync`, `parse` and `report` each call one of these and print what it returns."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ..collect.parse import ParseReport, canonical_pair, outputs_stale, parse_results
from ..collect.report import build_report
from ..storage.sync import Progress, SyncReport, open_source, sync_results


def sync(
    store: str,
    results: str | os.PathLike,
    tracker: str | os.PathLike | None,
    *,
    endpoint_url: str | None = None,
    workers: int = 16,
    dry_run: bool = False,
    bundles: bool = True,
    timeout: float | None = None,
    on_progress: Progress | None = None,
) -> SyncReport:
    """Mirror the store's new or changed results into `results` and move the tracked pairs; records name their
    datasets in any spelling the catalog knows."""
    source = open_source(store, endpoint_url, workers, timeout)
    return sync_results(source, results, tracker, dry_run=dry_run, workers=workers, on_progress=on_progress,
                        bundles=bundles, canonical_pair=canonical_pair)


def parse(results: str | os.PathLike, out: str | os.PathLike, tracker: str | os.PathLike | None) -> ParseReport:
    """The metric CSVs, the leaderboard and their Parquet twins from every result in `results`."""
    return parse_results(results, out, tracker)


@dataclass(frozen=True)
class ReportOutcome:
    page: Path
    parsed: ParseReport | None  # the parse run first because the results were newer than the CSVs, if any


def report(results: str | os.PathLike, metrics: str | os.PathLike, tracker: Path,
           out: str | os.PathLike, throughput: Path = Path("throughput")) -> ReportOutcome:
    """The HTML report of the metric CSVs, parsed again first when a result is newer than them; with a section for
    the `benchmark throughput` runs in `throughput`, if any."""
    parsed = parse_results(results, metrics, tracker) if outputs_stale(results, metrics) else None
    page = build_report(metrics, out, tracker if tracker.exists() else None, throughput)
    return ReportOutcome(page, parsed)
