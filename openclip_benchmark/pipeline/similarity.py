"""Use case: `benchmark similarity` scores an image-caption (retrieval) dataset pair by pair with each model.

The dataset is a name of the mapping (your own, added with `dataset add`, or a catalog retrieval set), a local
webdataset folder, or a table (`--csv`) that is first added through `add_dataset`. Each model is loaded once and the
set read once. The run is one job, a similarity manifest, launched through a backend like any other: the local
backend runs it here (one process, or N torch.distributed ranks whose merged outputs are the same bytes); a cluster
backend runs it on its nodes, whose parts `collect_similarity` merges into the same files.
"""

from __future__ import annotations

import csv
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from ..backends import Job, LaunchContext, get_backend
from ..catalog import Catalog
from ..core.errors import BenchmarkError
from ..datasets.captions import FetchOptions
from ..datasets.download import check_layout, ensure_dataset
from ..evaluate import dataset_type
from ..similarity.kind import run_similarity, scoring_of, similarity_manifest
from ..similarity.nodes import collect_run, read_run, upload_prefix
from ..similarity.outputs import SUMMARY
from ..similarity.score import Scoring
from ..storage.store import open_store
from ..tasks import get_task
from ..tasks.zeroshot_retrieval import TASK as RETRIEVAL
from .own_data import add_dataset, user_mapping


@dataclass(frozen=True)
class Source:
    """Where the set comes from: exactly one of a dataset (name or folder) and a table."""

    dataset: str | None = None
    table: str | None = None
    name: str | None = None  # the name a table is added under (default: the table's file name)
    root: str = "datasets"
    dataset_mapping: str | None = None
    url_col: str = "url"
    caption_col: str = "caption"
    options: FetchOptions = FetchOptions()


def resolve_dataset(catalog: Catalog, source: Source, cache_dir: str) -> tuple[str, Path]:
    """(name, folder) of a retrieval webdataset; a table is added (fetched) first."""
    if (source.dataset is None) == (source.table is None):
        raise BenchmarkError("give either --dataset (a name or a webdataset folder) or --csv (a table to add)")
    if source.table is not None:
        name = source.name or Path(source.table).stem
        built = add_dataset(name, source.table, source.root, user_mapping(source.dataset_mapping, source.root),
                            url_col=source.url_col, caption_col=source.caption_col, options=source.options)
        if built.folder is None:
            raise BenchmarkError(f"no row of {source.table} gave an image (see {built.status_path})")
        folder = built.folder
    elif Path(source.dataset).is_dir():
        folder = check_layout(Path(source.dataset))
        name = folder.name.removeprefix("wds_")
    else:
        spec = catalog.dataset(source.dataset)
        _check_retrieval(spec.name, get_task(spec.task).dataset_type)  # the catalog knows: before any download
        name, folder = spec.name, ensure_dataset(spec.name, cache_dir, spec=spec)
    _check_retrieval(name, dataset_type(folder))
    return name, folder


def _check_retrieval(name: str, kind: str) -> None:
    if kind != RETRIEVAL.dataset_type:
        raise BenchmarkError(f"dataset {name} holds {kind} data; similarity needs image-caption ({RETRIEVAL.dataset_type}) "
                             "data")


def check_options(gpus: int, heatmap_size: int, distractors: int, batch_size: int) -> None:
    for value, option, least in ((gpus, "--gpus", 1), (heatmap_size, "--heatmap-size", 1),
                                 (distractors, "--distractors", 0), (batch_size, "--batch-size", 1)):
        if value < least:
            raise BenchmarkError(f"{option} must be at least {least}, got {value}")


def _scoring(catalog: Catalog, models: list[str], source: Source, out, gpus: int, cache_dir: str,
             settings: dict) -> Scoring:
    check_options(gpus, settings.get("heatmap_size", 1), settings.get("distractors", 0), settings.get("batch_size", 1))
    if not models:
        raise BenchmarkError("--models needs at least one model")
    refs = tuple(catalog.select_models(models))
    name, folder = resolve_dataset(catalog, source, cache_dir)
    return Scoring(name, str(folder), refs, str(out), cache_dir=cache_dir, **settings)


def _summary(out: str | Path) -> list[dict[str, str]]:
    with open(Path(out) / SUMMARY, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


@dataclass(frozen=True)
class SimilarityRun:
    """What `similarity` did: the summary rows when the outputs are written (a run here, or a collect), else the
    job a cluster backend runs, to collect when it ends."""

    run_id: str
    rows: list[dict[str, str]] = field(default_factory=list)
    job_id: str | None = None  # None: ran here, or a dry run
    notes: list[str] = field(default_factory=list)  # the backend's validation notes


def similarity(catalog: Catalog, models: list[str], source: Source, out: str | Path, *, backend: str = "local",
               gpus: int = 1, nodes: int = 1, gpu: str = "L4", spot: bool = False, store_url: str | None = None,
               endpoint_url: str | None = None, dry_run: bool = False, cache_dir: str, **settings) -> SimilarityRun:
    """Score the set with every model into `out` as one job of `backend`: `gpus` ranks on each of `nodes` machines.
    With a store, the set goes there (by content) for machines elsewhere to read. `settings` are `Scoring`'s fields:
    batch_size, num_workers, device, precision, threshold, heatmap_size, seed, export_embeddings, distractors,
    timeout_s."""
    if nodes < 1:
        raise BenchmarkError(f"--nodes must be at least 1, got {nodes}")
    chosen = get_backend(backend)
    store = open_store(store_url, endpoint_url) if store_url else None
    context = LaunchContext(store=store, spot=spot, render_dir=Path(out), out=Path(out))
    chosen.validate([], context, dry_run)  # the backend's own refusals (a cluster without a bucket) before any download
    scoring = _scoring(catalog, models, source, out, gpus, cache_dir, settings)
    prefix = upload_prefix(scoring.name, Path(scoring.folder)) if store is not None else ""
    run_id = f"similarity-{scoring.name}-{datetime.now(timezone.utc).strftime('%Y%m%dT%H%M%S')}-{secrets.token_hex(3)}"
    manifest = similarity_manifest(run_id, store.url if store is not None else "", scoring, prefix=prefix,
                                   nodes=nodes, gpus=gpus)
    job = Job(manifest, gpu=gpu, gpus=gpus, nodes=nodes, inputs=((prefix, Path(scoring.folder)),) if prefix else ())
    notes = chosen.validate([job], context, dry_run)
    if dry_run:
        return SimilarityRun(run_id, notes=notes)
    submission = chosen.submit([job], context)
    if submission.failed:
        raise BenchmarkError(f"similarity run {run_id} was not submitted: {submission.failed[0][1]}")
    if submission.finished:
        return SimilarityRun(run_id, _summary(out))
    (_, job_id), = submission.launched
    return SimilarityRun(run_id, job_id=job_id)


def similarity_node(store_url: str, endpoint_url: str | None, run_id: str) -> int:
    """What each node of a cluster job runs: its ranks' parts into the store (node rank and count from SkyPilot's
    env); how many ranks it ran."""
    store = open_store(store_url, endpoint_url)
    return run_similarity(read_run(store, run_id), store, None)


def collect_similarity(store_url: str, endpoint_url: str | None, run_id: str, out: str | Path) -> SimilarityRun:
    """The nodes' parts merged into `out`: the files a one-process run writes."""
    if not store_url:
        raise BenchmarkError("--collect needs --store: the bucket (s3://bucket/prefix) the run's nodes wrote to")
    store = open_store(store_url, endpoint_url)
    manifest = read_run(store, run_id)
    collect_run(manifest, scoring_of(manifest), store, out)
    return SimilarityRun(run_id, _summary(out))
