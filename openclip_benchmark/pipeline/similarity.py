"""Use case: `benchmark similarity` scores an image-caption (retrieval) dataset pair by pair with each model.

The dataset is a name of the mapping (your own, added with `dataset add`, or a catalog retrieval set), a local
webdataset folder, or a table (`--csv`) that is first added through `add_dataset`. Each model is loaded once and the
set read once; one process, or N torch.distributed ranks on this machine whose merged outputs are the same bytes.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from ..catalog import Catalog
from ..core.errors import BenchmarkError
from ..datasets.captions import FetchOptions
from ..datasets.download import check_layout, ensure_dataset
from ..evaluate import dataset_type
from ..similarity.outputs import SUMMARY
from ..similarity.score import Job, run_rank, run_ranks
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
        name, folder = spec.name, ensure_dataset(spec.name, cache_dir, spec=spec)
    kind = dataset_type(folder)
    if kind != RETRIEVAL.dataset_type:
        raise BenchmarkError(f"dataset {name} holds {kind} data; similarity needs image-caption ({RETRIEVAL.dataset_type}) "
                             "data")
    return name, folder


def check_options(gpus: int, heatmap_size: int, distractors: int, batch_size: int) -> None:
    for value, option, least in ((gpus, "--gpus", 1), (heatmap_size, "--heatmap-size", 1),
                                 (distractors, "--distractors", 0), (batch_size, "--batch-size", 1)):
        if value < least:
            raise BenchmarkError(f"{option} must be at least {least}, got {value}")


def similarity(catalog: Catalog, models: list[str], source: Source, out: str | Path, *, gpus: int = 1,
               cache_dir: str, **settings) -> list[dict[str, str]]:
    """Score the set with every model into `out`; the summary rows (as written) for the caller to show.
    `settings` are `Job`'s fields: batch_size, num_workers, device, precision, threshold, heatmap_size, seed,
    export_embeddings, distractors, timeout_s."""
    check_options(gpus, settings.get("heatmap_size", 1), settings.get("distractors", 0), settings.get("batch_size", 1))
    if not models:
        raise BenchmarkError("--models needs at least one model")
    refs = tuple(catalog.select_models(models))
    name, folder = resolve_dataset(catalog, source, cache_dir)
    job = Job(name, str(folder), refs, str(out), cache_dir=cache_dir, **settings)
    if gpus == 1:
        run_rank(job)
    else:
        run_ranks(job, gpus)
    with open(Path(out) / SUMMARY, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))
