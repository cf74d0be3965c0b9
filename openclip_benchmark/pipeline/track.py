"""The tracker's use cases: the catalog's model x dataset x language pairs into it (`benchmark init`, the demo), and
a sync's records applied to it (`benchmark sync`)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from ..catalog import Catalog, check_languages, check_pairs, enumerate_pairs
from ..core.errors import BenchmarkError
from ..core.records import Result
from ..storage.sync import SyncReport, read_mirrored, sync_results
from ..tracker import open_tracker


@dataclass(frozen=True)
class Initialized:
    models: int
    datasets: int
    selected: int  # pairs the selectors chose
    added: int  # of them, new to the tracker
    before: int  # pairs the tracker held before (after a reset: none)
    counts: Counter  # pairs by status, after


def init_tracker(tracker_path: str | Path, catalog: Catalog, models: list[str], datasets: list[str],
                 languages: list[str], reset: bool = False, tasks: list[str] | None = None) -> Initialized:
    """Add every selected pair the tracker lacks; tracked pairs keep their status (all are forgotten with `reset`).
    `tasks`: the tasks each dataset gets among those it serves (default: its first)."""
    chosen_models = catalog.select_models(models)
    chosen_datasets = catalog.select_datasets(datasets)
    check_languages(languages, chosen_datasets, catalog.datasets)
    pairs = enumerate_pairs(chosen_models, chosen_datasets, languages, tasks)
    check_pairs(pairs, catalog.datasets)
    if not pairs:
        raise BenchmarkError("no pair matches: none of the chosen datasets has the chosen languages")
    with open_tracker(tracker_path, create=True) as tracker:
        if reset and tracker.entries:
            tracker.entries.clear()
            tracker.changed = True
        before = len(tracker)
        added = tracker.add(pairs)
        counts = Counter(e.status for e in tracker)
    return Initialized(len(chosen_models), len(chosen_datasets), len(pairs), added, before, counts)


def sync_and_track(store, results, tracker_path, *, catalog=None, **options) -> SyncReport:
    """`sync_results` (see there for `options`), then the tracker follows: the records fetched, and every mirrored
    result whose pair it does not show as succeeded (a tracker re-created by `init` after an earlier sync)."""
    report = sync_results(store, results, catalog=catalog, **options)
    if tracker_path is None or report.dry_run:
        return report
    with open_tracker(tracker_path, create=True) as tracker:
        before = dict(tracker.entries)
        tracker.apply(sorted(report.records, key=lambda r: not isinstance(r, Result)))  # a stale failure never wins
        behind = [key for pid, key in report.mirrored.items()
                  if (entry := tracker.entries.get(pid)) is None or entry.status != "succeeded"]
        tracker.apply(read_mirrored(results, behind, catalog))
        report.tracker_updates = sum(before.get(pid) != entry for pid, entry in tracker.entries.items())
    return report
