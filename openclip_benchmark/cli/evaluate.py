"""Commands: evaluate pairs on this machine (`run`) and run one shard of a plan (`worker`)."""

from __future__ import annotations

from typing import Optional

import typer

from ..core.errors import BenchmarkError
from ..core.manifest import PRECISIONS, RunSettings
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
    tasks: Optional[str] = typer.Option(None, help="Comma list: the tasks each dataset gets among those it serves, "
                                        "e.g. zeroshot_classification,linear_probe (default: each dataset's first)."),
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
    from ..pipeline.run import run_pairs, select_pairs

    settings = RunSettings(batch_size=batch_size, num_workers=num_workers, precision=precision, device=device,
                           cache_dir=cache_dir, dataset_root=dataset_root)
    variants = preprocess_variants(image_size, mean, std, interpolation, resize_mode)
    cat = load_catalog(dataset_mapping)
    pairs = select_pairs(cat, comma_list(models), comma_list(datasets), comma_list(languages), variants, dataset_root,
                         task, cache_dir, comma_list(tasks))
    report = run_pairs(cat, pairs, store_url=store, endpoint_url=endpoint_url, settings=settings,
                       tracker_path=tracker, progress=progress)
    _print_report(report)
    raise typer.Exit(report.exit_code)


@app.command()
def worker(
    manifest: str = typer.Option(..., envvar="MANIFEST_URL", help="Shard manifest: a path or s3://bucket/key."),
    store: Optional[str] = typer.Option(None, help="Write results here instead of the manifest's store."),
    endpoint_url: Optional[str] = typer.Option(None, help="S3 endpoint (Cloudflare R2); default $R2_ENDPOINT_URL."),
    progress: bool = typer.Option(True, help="Show progress bars."),
):
    """Run one shard: exit 0 when every pair succeeded, 3 when some failed, 75 when a retry may help."""
    from ..pipeline.run import run_manifest

    report = run_manifest(manifest, store_url=store, endpoint_url=endpoint_url, progress=progress)
    _print_report(report)
    raise typer.Exit(report.exit_code)


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
