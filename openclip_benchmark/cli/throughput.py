"""Command: `benchmark throughput`, images/s and texts/s against batch size, precision and resolution, here, on pinned
CPU workers, or against an embeddings endpoint."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ..core.paths import check_output_folder
from .app import app, comma_list, console, load_catalog
from .options import (DEFAULT_CACHE_DIR, CacheDir, DatasetMapping, DatasetRoot, DeviceOption, ImageSize, NumWorkers,
                      PrecisionList)
from .tables import FIGURE, Column, print_table

DEFAULT_BATCHES = "1,8,32,64"


def _sizes(text: str | None) -> tuple[int | None, ...]:
    from ..throughput.settings import int_list

    return int_list(comma_list(text), "--image-size") if text else (None,)


@app.command()
def throughput(
    models: str = typer.Option(..., "--models", "-m", help="Comma list: ARCH:TAG, ARCH (with --random-init), "
                               "local-dir:PATH, globs; with --endpoint, the server's model names."),
    mode: str = typer.Option("image,text", "--mode", help="Comma list of image, text, pair (N images + N captions)."),
    batch_sizes: str = typer.Option(DEFAULT_BATCHES, "--batch-sizes", help="Comma list of batch sizes."),
    precision: PrecisionList = "auto",
    image_size: ImageSize = None,
    source: str = typer.Option("random", "--source", help="random, or a dataset (catalog name or webdataset folder): "
                               "decoding and preprocessing are then timed too."),
    dataset_root: DatasetRoot = None,
    num_workers: NumWorkers = 2,
    random_init: bool = typer.Option(False, "--random-init", help="Build the architecture without weights."),
    warmup: int = typer.Option(3, help="Warm-up batches (or requests) before timing."),
    iters: Optional[int] = typer.Option(None, help="Timed batches per point (default 10)."),
    seconds: Optional[float] = typer.Option(None, help="Time each point for this long instead of --iters."),
    device: DeviceOption = "auto",
    processes: Optional[int] = typer.Option(None, help="CPU worker processes, each pinned to its share of --cores."),
    cores: Optional[str] = typer.Option(None, help="Cores for the workers: 0-3,8 (default: all usable)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Show the workers and cores it would use; run nothing."),
    endpoint: Optional[str] = typer.Option(None, help="OpenAI-compatible embeddings API: http://HOST:PORT/v1."),
    concurrency: int = typer.Option(1, help="Requests in flight at once (--endpoint)."),
    timeout: float = typer.Option(60.0, help="Seconds per request (--endpoint)."),
    api_key_env: Optional[str] = typer.Option(None, help="Environment variable holding the API key (--endpoint); "
                                              "the key is sent, never written."),
    out: Path = typer.Option(Path("throughput"), "--out", help="Folder for run JSONs, throughput.csv and .png."),
    cache_dir: CacheDir = DEFAULT_CACHE_DIR,
    dataset_mapping: DatasetMapping = None,
):
    """Measure samples/s and ms per batch (p50/p95/p99) for each model x mode x precision x batch size x image size;
    writes one JSON per run into --out, and throughput.csv and throughput.png over all its runs."""
    from ..pipeline.throughput import LOGS, ThroughputRequest, measure_throughput, prepare
    from ..throughput.endpoint import Endpoint
    from ..throughput.settings import DEFAULT_ITERS, Sweep, int_list

    check_output_folder(out, "--out")
    selectors = comma_list(models)
    sweep = Sweep(
        models=tuple((m, "") for m in selectors), modes=tuple(comma_list(mode)),
        precisions=tuple(comma_list(precision)),  # the option's parser checked them and dropped repeats
        batch_sizes=int_list(comma_list(batch_sizes), "--batch-sizes"), image_sizes=_sizes(image_size),
        warmup=warmup, iters=DEFAULT_ITERS if iters is None and seconds is None else iters, seconds=seconds,
        source=source, dataset_root=dataset_root, num_workers=num_workers, random_init=random_init, device=device,
        cache_dir=cache_dir,
    )
    target = Endpoint(endpoint, concurrency, timeout, api_key_env) if endpoint else None
    request = ThroughputRequest(sweep, out, processes, cores, target)
    prepared = prepare(load_catalog(dataset_mapping), request)
    if dry_run:
        _print_dry_run(prepared, out / LOGS)
        return
    result = measure_throughput(prepared, out, say=lambda line: console(stderr=True).print(line, highlight=False,
                                                                                          markup=False))
    _print_table(result)


def _print_dry_run(prepared, log_dir: Path) -> None:
    out = console()
    sweep = prepared.sweep
    where = (f"endpoint {prepared.endpoint.embeddings_url}" if prepared.endpoint
             else f"{len(prepared.workers)} pinned worker process(es)" if prepared.workers else "this process")
    out.print(f"would measure {len(sweep.models)} model(s) x modes {','.join(sweep.modes)} x batch sizes "
              f"{','.join(map(str, sorted(sweep.batch_sizes)))} in {where}", markup=False)
    for line in prepared.worker_lines(log_dir):
        out.print(line, markup=False, highlight=False)


def _memory(m) -> str:
    if m.peak_memory_bytes is None:
        return ""
    return f"{m.peak_memory_bytes / 2**20:,.0f} MiB" + (" rss" if m.memory == "cpu_max_rss" else "")


def _print_table(result) -> None:
    from rich.text import Text

    env = result.run["environment"]
    workers = any(m.workers for m in result.measurements)
    remote = any(m.requests for m in result.measurements)
    columns = [Column("model"), Column("mode"), Column("precision"), Column("batch", FIGURE), Column("image", FIGURE),
               Column("samples/s", FIGURE), Column("ms p50", FIGURE), Column("ms p95", FIGURE), Column("ms p99", FIGURE),
               Column("peak mem", FIGURE)]
    columns += [Column("per worker samples/s", FIGURE)] * workers + [Column("requests ok / failed")] * remote
    rows = []
    for m in result.measurements:
        rate = f"{m.samples_per_s:,.1f}" if m.status == "ok" else Text(m.status, style="red")
        row = [m.model, m.mode, m.precision, m.batch_size, m.image_size or "", rate,
               *(f"{v:.2f}" if v is not None else "" for v in (m.ms(50), m.ms(95), m.ms(99))), _memory(m)]
        if workers:
            row.append(" + ".join(f"{w['samples_per_s']:,.1f}" for w in m.workers))
        if remote:
            failed = m.requests.get("failed", {})
            row.append(f"{m.requests.get('ok', 0)} / " + (", ".join(f"{n}x{k}" for k, n in failed.items()) or "0"))
        rows.append(row)
    out = console()
    print_table(out, f"throughput on {env.get('device_name') or env.get('device')}", columns, rows,
                caption=f"run {result.run['run_id']}")
    for w in env.get("workers") or ():
        out.print(f"worker {w['worker']}: cores {w['cores']}, affinity read back {w['affinity']}, "
                  f"{w['threads']} torch thread(s)", markup=False, highlight=False)
    out.print(f"wrote {result.run_file}, {result.csv_file}" + (f", {result.plot_file}" if result.plot_file else ""),
              markup=False, highlight=False)
