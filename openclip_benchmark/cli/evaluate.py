"""Commands: evaluate pairs on this machine (`run`) and run one shard of a plan (`worker`)."""

from __future__ import annotations

import os
from dataclasses import replace
from typing import Optional

import typer

from ..core.errors import BenchmarkError
from ..core.manifest import PRECISIONS, Manifest, RunSettings
from ..core.pair import INTERPOLATIONS, RESIZE_MODES, Pair, Preprocess
from ..core.records import Result
from .app import DATASET_MAPPING, DEFAULT_RESULTS, DEFAULT_TRACKER, app, comma_list, console, load_catalog


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


def select_pairs(cat, models: str, datasets: str, languages: str, preprocesses: list[Preprocess],
                 dataset_root: str | None, task: str | None, cache_dir: str) -> list[Pair]:
    """Models and datasets by the catalog's selectors; with --dataset-root, also datasets the catalog lacks."""
    from .. import catalog
    from ..datasets.download import ensure_dataset
    from ..core.errors import UnknownNameError
    from ..evaluate import folder_task
    from ..tasks import get_task

    if task is not None:
        get_task(task)  # an unknown --task is named with the closest known ones
    if not comma_list(models) or not comma_list(datasets):
        raise BenchmarkError("--models and --datasets each need at least one name")
    model_refs = cat.select_models(comma_list(models))
    specs, extra = [], []
    for name in comma_list(datasets):
        try:
            specs += cat.select_datasets([name])
        except UnknownNameError:
            if dataset_root is None:
                raise
            extra.append(name)
    langs = comma_list(languages) or ["en"]
    pairs = catalog.enumerate_pairs(model_refs, specs, langs)
    for name in extra:  # a local dataset: the task is --task, or what its folder says it holds
        kind = task or folder_task(ensure_dataset(name, cache_dir, dataset_root))
        pairs += [Pair(m, p, name, language=lang, task=kind) for m, p in model_refs for lang in langs]
    pairs = [replace(pair, preprocess=pp) for pair in pairs for pp in preprocesses]
    if not pairs:
        raise BenchmarkError("no pairs selected: check --models, --datasets and --languages")
    return list(dict.fromkeys(pairs))


@app.command()
def run(
    models: str = typer.Option(..., "--models", "-m", help="Comma list: ARCH:TAG, local-dir:PATH, hf-hub:ORG/REPO, "
                               "ARCH:/path/ckpt.pt, globs or collections."),
    datasets: str = typer.Option(..., "--datasets", "-d", help="Comma list of dataset names, globs or collections."),
    languages: str = typer.Option("en", help="Comma list of languages."),
    store: str = typer.Option(DEFAULT_RESULTS, help="Results store: a folder or s3://bucket/prefix."),
    endpoint_url: Optional[str] = typer.Option(None, help="S3 endpoint (Cloudflare R2); default $R2_ENDPOINT_URL."),
    batch_size: int = typer.Option(64, min=1),
    num_workers: int = typer.Option(4, min=0, help="Data loader workers (at most one per dataset shard is used)."),
    precision: str = typer.Option("auto", help=f"{' | '.join(PRECISIONS)}; auto = amp on GPU, fp32 on CPU."),
    device: str = typer.Option("auto", help="auto, cpu, cuda, cuda:1 ..."),
    dataset_root: Optional[str] = typer.Option(None, help="Folder of wds_<name>/ datasets; default: download."),
    cache_dir: str = typer.Option(RunSettings.cache_dir, help="Where datasets and weights are cached."),
    task: Optional[str] = typer.Option(None, help="Task for datasets the catalog does not know (with --dataset-root)."),
    image_size: Optional[str] = typer.Option(None, help="Image size override; a comma list sweeps: 160,192,224."),
    mean: Optional[str] = typer.Option(None, help="Normalisation mean override: r,g,b."),
    std: Optional[str] = typer.Option(None, help="Normalisation std override: r,g,b."),
    interpolation: Optional[str] = typer.Option(None, help=f"Resize interpolation: {', '.join(INTERPOLATIONS)}."),
    resize_mode: Optional[str] = typer.Option(None, help=f"Resize mode: {', '.join(RESIZE_MODES)}."),
    tracker: str = typer.Option(DEFAULT_TRACKER, help="Tracker CSV to update, if it exists."),
    progress: bool = typer.Option(True, help="Show progress bars."),
    dataset_mapping: Optional[str] = DATASET_MAPPING,
):
    """Evaluate models x datasets on this machine (GPU if present); only pairs without a result run."""
    from datetime import datetime, timezone

    from ..storage.store import open_store

    settings = RunSettings(batch_size=batch_size, num_workers=num_workers, precision=precision, device=device,
                           cache_dir=cache_dir, dataset_root=dataset_root)
    variants = preprocess_variants(image_size, mean, std, interpolation, resize_mode)
    cat = load_catalog(dataset_mapping)
    pairs = select_pairs(cat, models, datasets, languages, variants, dataset_root, task, cache_dir)
    shard_id = "run-" + datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S")
    results = open_store(store, endpoint_url)
    manifest = Manifest(shard_id, store, tuple(pairs), settings, datasets=cat.specs_for(pairs))
    report = _run(manifest, results, progress)
    if os.path.exists(tracker):
        _update_tracker(tracker, pairs, report, results)
    raise typer.Exit(report.exit_code)


@app.command()
def worker(
    manifest: str = typer.Option(..., envvar="MANIFEST_URL", help="Shard manifest: a path or s3://bucket/key."),
    store: Optional[str] = typer.Option(None, help="Write results here instead of the manifest's store."),
    endpoint_url: Optional[str] = typer.Option(None, help="S3 endpoint (Cloudflare R2); default $R2_ENDPOINT_URL."),
    progress: bool = typer.Option(True, help="Show progress bars."),
):
    """Run one shard: exit 0 when every pair succeeded, 3 when some failed, 75 when a retry may help."""
    from ..storage.store import open_store
    from ..worker import load_manifest

    shard = load_manifest(manifest, endpoint_url)
    shard = replace(shard, store=store) if store else shard
    report = _run(shard, open_store(shard.store, endpoint_url), progress)
    raise typer.Exit(report.exit_code)


def _run(manifest: Manifest, results, progress: bool):
    from ..worker import run_shard

    report = run_shard(manifest, results, progress=progress)
    _print_report(report)
    return report


SHORT_METRICS = {"mean_per_class_recall": "recall", "mean_average_precision": "mAP",
                 "image_retrieval_recall@": "I@", "text_retrieval_recall@": "T@"}


def _short(metric: str) -> str:
    for long, short in SHORT_METRICS.items():
        if metric.startswith(long):
            return short + metric[len(long):]
    return metric


def _print_report(report) -> None:
    from rich.table import Table

    retrieval = any(_short(k).startswith(("I@", "T@")) for r in report.records if isinstance(r, Result) for k in r.metrics)
    table = Table(title=f"shard {report.shard_id}",
                  caption="I@k / T@k: image / text retrieval recall@k" if retrieval else None)
    for column in ("model", "dataset", "status", "metrics"):
        table.add_column(column, overflow="fold")
    for record in report.records:
        if isinstance(record, Result):
            shown = " ".join(f"{_short(k)}={v:.4f}" for k, v in record.metrics.items() if v is not None)
            table.add_row(_model_ref(record.pair), record.pair.dataset, "[green]ok[/]", shown)
        else:
            table.add_row(_model_ref(record.pair), record.pair.dataset, "[red]failed[/]",
                          record.error.get("message", "")[:160])
    for pair in report.skipped:
        table.add_row(_model_ref(pair), pair.dataset, "exists", "")
    out = console()
    out.print(table)
    out.print(f"{len(report.succeeded)} succeeded, {len(report.failed)} failed, {len(report.skipped)} already done"
              + (f"; stopped: {report.transient_error}" if report.transient_error else ""))


def _model_ref(pair: Pair) -> str:
    ref = f"{pair.model}:{pair.pretrained}" if pair.pretrained else pair.model
    return ref + (f" {pair.preprocess.canonical()}" if pair.preprocess else "")


def _update_tracker(path: str, pairs: list[Pair], report, results) -> None:
    """Track the pairs and move them to their new state; results that already existed count as succeeded."""
    from ..tracker import open_tracker

    records = report.outcome_records(results)
    with open_tracker(path) as tracked:
        tracked.add(pairs)
        for record in records:
            tracked.apply_record(record)


@app.command()
def demo(
    workdir: str = typer.Option("demo", help="Working folder: new, or a previous demo's (which is replaced)."),
    images: int = typer.Option(64, help="Images per synthetic dataset (at least 10)."),
    keep: bool = typer.Option(True, "--keep/--clean", help="Keep the working folder to inspect, or delete it when done."),
):
    """Offline tour: synthetic webdatasets and two tiny models through init, plan, a local run, parse and report."""
    from ..demo import print_demo, remove_workdir, run_demo

    result = run_demo(workdir, images=images, say=lambda line: console(stderr=True).print(line, highlight=False))
    print_demo(result, console(), kept=keep)
    if not keep:
        remove_workdir(result.layout)
    raise typer.Exit(result.exit_code)
