"""Use case: `benchmark similarity` scores an image-caption (retrieval) dataset pair by pair with each model.

The dataset is a name of the mapping (your own, added with `dataset add`, or a catalog retrieval set), a local
webdataset folder, or a table (`--csv`) that is first added through `add_dataset`. Each model is loaded once and the
set read once; one process, or N torch.distributed ranks on this machine whose merged outputs are the same bytes.
"""

from __future__ import annotations

import csv
import secrets
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from ..backends.skypilot import render_similarity_task, submit_task, write_rendered
from ..catalog import Catalog
from ..core.errors import BenchmarkError
from ..datasets.captions import FetchOptions
from ..datasets.download import check_layout, ensure_dataset
from ..evaluate import dataset_type
from ..similarity.nodes import collect_run, node_env, run_node, upload_dataset, write_manifest
from ..similarity.outputs import SUMMARY
from ..similarity.score import Job, run_rank, run_ranks
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


def _job(catalog: Catalog, models: list[str], source: Source, out, gpus: int, cache_dir: str, settings: dict) -> Job:
    check_options(gpus, settings.get("heatmap_size", 1), settings.get("distractors", 0), settings.get("batch_size", 1))
    if not models:
        raise BenchmarkError("--models needs at least one model")
    refs = tuple(catalog.select_models(models))
    name, folder = resolve_dataset(catalog, source, cache_dir)
    return Job(name, str(folder), refs, str(out), cache_dir=cache_dir, **settings)


def _summary(out: str | Path) -> list[dict[str, str]]:
    with open(Path(out) / SUMMARY, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def similarity(catalog: Catalog, models: list[str], source: Source, out: str | Path, *, gpus: int = 1,
               cache_dir: str, **settings) -> list[dict[str, str]]:
    """Score the set with every model into `out`; the summary rows (as written) for the caller to show.
    `settings` are `Job`'s fields: batch_size, num_workers, device, precision, threshold, heatmap_size, seed,
    export_embeddings, distractors, timeout_s."""
    job = _job(catalog, models, source, out, gpus, cache_dir, settings)
    if gpus == 1:
        run_rank(job)
    else:
        run_ranks(job, gpus)
    return _summary(out)


@dataclass(frozen=True)
class Launched:
    run_id: str
    rendered: Path  # the task YAML as rendered (secrets null)
    job_id: str | None  # None for a dry run


def launch_similarity(catalog: Catalog, models: list[str], source: Source, *, store_url: str,
                      endpoint_url: str | None, nodes: int, gpus_per_node: int, gpu: str, spot: bool,
                      dry_run: bool, work_dir: str | Path, cache_dir: str, **settings) -> Launched:
    """The same scoring as a SkyPilot task of `nodes` nodes: the set and a manifest into the store, the task rendered
    and validated (nothing sent on a dry run), then submitted; `collect_similarity` merges the nodes' parts."""
    if nodes < 1 or gpus_per_node < 1:
        raise BenchmarkError(f"--nodes and --gpus-per-node must be at least 1, got {nodes} and {gpus_per_node}")
    job = _job(catalog, models, source, "", 1, cache_dir, {**settings, "device": "auto"})
    store = open_store(store_url, endpoint_url)
    run_id = f"{job.name}-{datetime.now(timezone.utc).strftime('%Y%m%dT%H%M%S')}-{secrets.token_hex(3)}"
    config, task = render_similarity_task(store, run_id, nodes=nodes, gpus_per_node=gpus_per_node, gpu=gpu,
                                          spot=spot, dry_run=dry_run)
    rendered = write_rendered(config, Path(work_dir))
    if dry_run:
        return Launched(run_id, rendered, None)
    write_manifest(store, run_id, job, upload_dataset(store, job.name, Path(job.folder)), nodes, gpus_per_node)
    return Launched(run_id, rendered, submit_task(task))


def similarity_node(store_url: str, endpoint_url: str | None, run_id: str) -> int:
    """What each SkyPilot node runs: its ranks' share into the store (node rank and count from SkyPilot's env)."""
    node, nodes = node_env()
    return run_node(open_store(store_url, endpoint_url), run_id, node, nodes)


def collect_similarity(store_url: str, endpoint_url: str | None, run_id: str, out: str | Path) -> list[dict[str, str]]:
    """The nodes' parts merged into `out`: the files a one-process run writes."""
    collect_run(open_store(store_url, endpoint_url), run_id, out)
    return _summary(out)
