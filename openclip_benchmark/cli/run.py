"""Command: `benchmark run`, evaluate pairs on this machine."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from ..core.errors import BenchmarkError
from ..core.pair import INTERPOLATIONS, RESIZE_MODES, Pair, Preprocess
from .app import app, comma_list, console, load_catalog
from .options import (DEFAULT_BATCH_SIZE, DEFAULT_CACHE_DIR, DEFAULT_STORE, DEFAULT_TRACKER, BatchSize, CacheDir,
                      DatasetMapping, DatasetRoot, Datasets, DeviceOption, EndpointUrl, ImageSize, Languages, Models, Tasks,
                      NumWorkers, PrecisionOption, Progress, Store, Tracker)
from .tables import TEXT, Column, print_table


def _numbers(text: str | None, what: str, cast=float) -> list | None:
    if not text:
        return None
    try:
        return [cast(part) for part in comma_list(text)]
    except ValueError:
        raise BenchmarkError(f"{what} must be comma-separated numbers, got {text!r}") from None


def preprocess_variants(image_sizes: str | None, mean: str | None, std: str | None, interpolation: str | None,
                        resize_mode: str | None) -> list[Preprocess]:
    """One Preprocess per image size of the sweep (or one without a size), with the other overrides on each."""
    sizes = _numbers(image_sizes, "--image-size", int) or [None]
    mean_v, std_v = _numbers(mean, "--mean"), _numbers(std, "--std")
    return [
        Preprocess(image_size=size, mean=tuple(mean_v) if mean_v else None, std=tuple(std_v) if std_v else None,
                   interpolation=interpolation, resize_mode=resize_mode)
        for size in dict.fromkeys(sizes)
    ]


@app.command()
def run(
    models: Models = ...,
    datasets: Datasets = ...,
    languages: Languages = None,
    tasks: Tasks = None,
    store: Store = DEFAULT_STORE,
    endpoint_url: EndpointUrl = None,
    batch_size: BatchSize = DEFAULT_BATCH_SIZE,
    num_workers: NumWorkers = 4,
    precision: PrecisionOption = "auto",
    device: DeviceOption = "auto",
    dataset_root: DatasetRoot = None,
    cache_dir: CacheDir = DEFAULT_CACHE_DIR,
    task: Annotated[Optional[str], typer.Option(
        help="Task for datasets the catalog does not know (with --dataset-root).")] = None,
    image_size: ImageSize = None,
    mean: Annotated[Optional[str], typer.Option(help="Normalisation mean override: r,g,b.")] = None,
    std: Annotated[Optional[str], typer.Option(help="Normalisation std override: r,g,b.")] = None,
    interpolation: Annotated[Optional[str], typer.Option(
        help=f"Resize interpolation: {', '.join(INTERPOLATIONS)}.")] = None,
    resize_mode: Annotated[Optional[str], typer.Option(help=f"Resize mode: {', '.join(RESIZE_MODES)}.")] = None,
    tracker: Tracker = DEFAULT_TRACKER,
    progress: Progress = True,
    dataset_mapping: DatasetMapping = None,
):
    """Evaluate models x datasets on this machine (GPU if present); only pairs without a result run."""
    from ..core.manifest import RunSettings
    from ..pipeline.run import run_pairs, select_pairs

    settings = RunSettings(batch_size=batch_size, num_workers=num_workers, precision=precision, device=device,
                           cache_dir=cache_dir, dataset_root=dataset_root)
    variants = preprocess_variants(image_size, mean, std, interpolation, resize_mode)
    cat = load_catalog(dataset_mapping)
    pairs = select_pairs(cat, comma_list(models), comma_list(datasets), comma_list(languages), variants, dataset_root,
                         task, cache_dir, comma_list(tasks))
    report = run_pairs(cat, pairs, store_url=store, endpoint_url=endpoint_url, settings=settings,
                       tracker_path=tracker, progress=progress)
    print_shard_report(report)
    raise typer.Exit(report.exit_code)


SHORT_METRICS = {"mean_per_class_recall": "recall", "mean_average_precision": "mAP",
                 "image_retrieval_recall@": "I@", "text_retrieval_recall@": "T@"}


def _short(metric: str) -> str:
    for long, short in SHORT_METRICS.items():
        if metric.startswith(long):
            return short + metric[len(long):]
    return metric


def print_shard_report(report) -> None:
    """One row per pair of the shard: its main figures, or why it failed."""
    from rich.text import Text

    from ..core.records import Result

    retrieval = any(_short(k).startswith(("I@", "T@")) for r in report.records if isinstance(r, Result) for k in r.metrics)
    rows = []
    for record in report.records:
        if isinstance(record, Result):
            shown = " ".join(f"{_short(k)}={v:.4f}" for k, v in record.metrics.items() if v is not None)
            rows.append([_pair_label(record.pair), Text("ok", style="green"), shown])
        else:
            rows.append([_pair_label(record.pair), Text("failed", style="red"), record.error.message[:160]])
    rows += [[_pair_label(pair), "exists", ""] for pair in report.skipped]
    out = console()
    print_table(out, f"shard {report.shard_id}", [Column("model, dataset"), Column("status"), Column("metrics", TEXT)],
                rows, caption="I@k / T@k: image / text retrieval recall@k" if retrieval else None)
    out.print(f"{len(report.succeeded)} succeeded, {len(report.failed)} failed, {len(report.skipped)} already done"
              + (f"; stopped: {report.transient_error}" if report.transient_error else ""))


def _pair_label(pair: Pair) -> str:
    return f"{_model_ref(pair)}\n{pair.dataset}"


def _model_ref(pair: Pair) -> str:
    ref = f"{pair.model}:{pair.pretrained}" if pair.pretrained else pair.model
    return ref + (f" {pair.preprocess.canonical()}" if pair.preprocess else "")
