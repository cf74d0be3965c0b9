"""Use cases: evaluate pairs on this machine now (`benchmark run`) and run one planned shard (`benchmark worker`)."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path

from ..catalog import Catalog, check_languages, check_pairs, enumerate_pairs
from ..core.errors import BenchmarkError, UnknownNameError
from ..core.manifest import Manifest, RunSettings, dataset_entries
from ..core.pair import Pair, Preprocess
from ..datasets.download import ensure_dataset
from ..evaluate import SPLIT, dataset_type, folder_task
from ..storage.store import open_store
from ..tasks import get_task, tasks_for_dataset_type
from ..tracker import record_outcomes
from ..worker import ShardReport, load_manifest, run_shard


def select_pairs(catalog: Catalog, models: list[str], datasets: list[str], languages: list[str],
                 preprocesses: list[Preprocess], dataset_root: str | None, task: str | None,
                 cache_dir: str, tasks: list[str] | None = None) -> list[Pair]:
    """Models and datasets by the catalog's selectors, each dataset with the `tasks` it serves (default: its first);
    with a dataset root, also datasets the catalog lacks: their task is `task`, else those of `tasks` that read the
    folder's data (dataset_type.txt), else the folder's own; a folder that lacks a split its task learns from is
    refused here, before anything runs."""
    for name in (task, *(tasks or ())):
        if name is not None:
            get_task(name)  # an unknown --task is named with the closest known ones
    if not models or not datasets:
        raise BenchmarkError("--models and --datasets each need at least one name")
    model_refs = catalog.select_models(models)
    specs, extra = [], []
    for name in datasets:
        try:
            specs += catalog.select_datasets([name])
        except UnknownNameError:
            if dataset_root is None:
                raise
            extra.append(name)
    langs = languages or ["en"]
    if specs:
        check_languages(langs, specs, catalog.datasets)
    pairs = enumerate_pairs(model_refs, specs, langs, tasks)
    for name in extra:
        folder = ensure_dataset(name, cache_dir, dataset_root)
        own = folder_task(folder)  # a one-line error for a type no task reads
        readers = [t.name for t in tasks_for_dataset_type(dataset_type(folder))]
        kinds = [task] if task else [t for t in tasks if t in readers] if tasks else [own]
        if not kinds:
            raise BenchmarkError(f"dataset {name} holds {dataset_type(folder)} data, which {', '.join(tasks)} cannot "
                                 f"read (its tasks: {', '.join(readers)})")
        for kind in kinds:
            ensure_dataset(name, cache_dir, dataset_root, splits=(SPLIT, *get_task(kind).fit_splits(None)))
            pairs += [Pair(m, p, name, language=lang, task=kind) for m, p in model_refs for lang in langs]
    pairs = [replace(pair, preprocess=pp) for pair in pairs for pp in preprocesses]
    check_pairs(pairs, catalog.datasets)
    if not pairs:
        raise BenchmarkError("no pairs selected: check --models, --datasets and --languages")
    return list(dict.fromkeys(pairs))


def run_pairs(catalog: Catalog, pairs: list[Pair], *, store_url: str, endpoint_url: str | None,
              settings: RunSettings, tracker_path: str | Path, progress: bool = True) -> ShardReport:
    """The pairs as one shard here (only those without a result run); an existing tracker learns the outcomes."""
    shard_id = "run-" + datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S")
    store = open_store(store_url, endpoint_url)
    manifest = Manifest(shard_id=shard_id, store=store_url, pairs=tuple(pairs), settings=settings,
                        datasets=dataset_entries(catalog.specs_for(pairs)))
    report = run_shard(manifest, store, progress=progress)
    if Path(tracker_path).exists():
        record_outcomes(tracker_path, report.outcome_records(store), track=pairs)
    return report


def run_manifest(url: str, *, store_url: str | None, endpoint_url: str | None, progress: bool = True) -> ShardReport:
    """One shard of a plan, from its manifest's URL (what a SkyPilot job runs); `store_url` redirects its results."""
    manifest = load_manifest(url, endpoint_url)
    manifest = manifest.model_copy(update={"store": store_url}) if store_url else manifest
    return run_shard(manifest, open_store(manifest.store, endpoint_url), progress=progress)
