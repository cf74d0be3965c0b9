"""Command: `benchmark launch`, the open pairs as jobs within a budget."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Optional

import typer

from ..backends import backend_names
from ..core.errors import BenchmarkError
from .app import DATASET_MAPPING, DEFAULT_RESULTS, app, console, load_catalog
from .plan import BATCH, CALIBRATE, CLOUDS, GPUS, MAX_PARALLEL, PRICES, RETRY, SPOT, TARGET, TRACKER, _print_kept, _request, print_plan

CONFIRM_OVER = 3  # more jobs than this asks first, unless --yes
BUDGET_RULE = (
    "Shards are taken in plan order; one that would take the total past --budget is skipped and later, cheaper "
    "ones that still fit are taken, up to --max-jobs."
)


# the --backend choices are the registry's names: a new backend needs no CLI change
BackendName = Enum("BackendName", {name: name for name in backend_names()}, type=str)


@app.command("launch", help=(
    "Launch the pending pairs as shards, within the budget; `--dry-run` prints the plan and validates every job "
    "(with the skypilot backend: each task under SkyPilot's schema) without submitting. " + BUDGET_RULE
))
def launch_command(
    tracker: Path = TRACKER,
    backend: BackendName = typer.Option("skypilot", "--backend", help="skypilot: managed jobs; local: this machine."),
    budget: Optional[float] = typer.Option(None, "--budget", min=0, help="Dollars to spend at most, in total (shards that do not fit are skipped, see above)."),
    max_jobs: int = typer.Option(10, "--max-jobs", min=1, help="Launch at most this many shards."),
    yes: bool = typer.Option(False, "--yes", "-y", help=f"Do not ask before launching more than {CONFIRM_OVER} jobs."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the plan and validate the jobs; submit nothing."),
    pool: Optional[str] = typer.Option(None, "--pool", help="Send jobs to this SkyPilot pool (see `benchmark pool up`)."),
    store: str = typer.Option(DEFAULT_RESULTS, "--store", help="Results store: a folder or s3://bucket/prefix."),
    endpoint_url: Optional[str] = typer.Option(None, "--endpoint-url", help="S3 endpoint (R2); default $R2_ENDPOINT_URL."),
    dataset_root: Optional[str] = typer.Option(None, "--dataset-root", help="Folder of wds_<name>/ datasets (no download)."),
    cache_dir: str = typer.Option("~/.cache/openclip_benchmark", "--cache-dir", help="Download cache on the worker."),
    precision: str = typer.Option("auto", "--precision", help="auto, fp32, amp or amp_bf16."),
    gpus: Optional[str] = GPUS,
    clouds: Optional[str] = CLOUDS,
    spot: bool = SPOT,
    target_minutes: Optional[float] = TARGET,
    batch_size: int = BATCH,
    retry_failed: bool = RETRY,
    calibrate_from: Optional[Path] = CALIBRATE,
    prices: Optional[Path] = PRICES,
    dataset_mapping: Optional[Path] = DATASET_MAPPING,
    max_parallel: Optional[int] = MAX_PARALLEL,
):
    from rich.markup import escape

    from ..core.manifest import RunSettings
    from ..pipeline.launch import launch, money

    out = console()

    def show(preview) -> None:
        print_plan(preview.planned.plan, preview.planned.calibration, preview.selected, max_parallel)
        if preview.left:
            out.print(f"{len(preview.left)} shard(s) left for later (--budget / --max-jobs); they are dimmed above")
        out.print(f"would launch {len(preview.selected)} shard(s), estimated {money(preview.cost)} ({'spot' if spot else 'on demand'})")

    def confirm(preview) -> bool:
        for note in preview.notes:
            out.print(note, markup=False)
        n = len(preview.selected)
        return n <= CONFIRM_OVER or yes or typer.confirm(f"Launch {n} jobs?", default=False)

    settings = RunSettings(batch_size=batch_size, precision=precision, cache_dir=cache_dir, dataset_root=dataset_root)
    done = launch(
        tracker, load_catalog(dataset_mapping), _request(gpus, clouds, spot, target_minutes, batch_size, retry_failed, calibrate_from, prices, pool),
        backend=backend.value, budget=budget, max_jobs=max_jobs, dry_run=dry_run, store_url=store, endpoint_url=endpoint_url,
        settings=settings, show=show, confirm=confirm,
    )
    if done.declined:
        raise typer.Exit(1)
    if done.submission is None:
        for note in done.preview.notes:
            out.print(note, markup=False)
        return
    sub = done.submission
    for line in sub.lines:
        out.print(line, markup=False)
    _print_kept(sub.kept)
    for shard, error in sub.failed:
        out.print(f"[red]failed to launch {shard.shard_id}:[/] {escape(error)}")
    if sub.failed:
        raise BenchmarkError(f"{len(sub.failed)} of {len(done.preview.selected)} launch(es) failed; their pairs stay as they were")
    if sub.exit_code:
        raise typer.Exit(sub.exit_code)
