"""The init use case: the catalog's model x dataset x language pairs into the tracker (`benchmark init`, the demo)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

from ..catalog import Catalog, DatasetSpec, enumerate_pairs
from ..core.errors import BenchmarkError, UnknownNameError
from ..tracker import open_tracker


@dataclass(frozen=True)
class Initialized:
    models: int
    datasets: int
    selected: int  # pairs the selectors chose
    added: int  # of them, new to the tracker
    before: int  # pairs the tracker held before (after a reset: none)
    counts: Counter  # pairs by status, after


def check_languages(values: list[str], datasets: Mapping[str, DatasetSpec]) -> list[str]:
    known = sorted({lang for spec in datasets.values() for lang in spec.languages})
    for lang in values:
        if lang not in known:
            raise UnknownNameError("language", lang, known)
    return values


def init_tracker(tracker_path: str | Path, catalog: Catalog, models: list[str], datasets: list[str],
                 languages: list[str], reset: bool = False, tasks: list[str] | None = None) -> Initialized:
    """Add every selected pair the tracker lacks; tracked pairs keep their status (all are forgotten with `reset`).
    `tasks`: the tasks each dataset gets among those it serves (default: its first)."""
    chosen_models = catalog.select_models(models)
    chosen_datasets = catalog.select_datasets(datasets)
    pairs = enumerate_pairs(chosen_models, chosen_datasets, check_languages(languages, catalog.datasets), tasks)
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
