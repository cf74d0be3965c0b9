"""Command: `benchmark launch`, the open pairs as jobs within a budget."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from ..core.errors import BenchmarkError
from .app import app, console, load_catalog
from .options import (DEFAULT_BATCH_SIZE, DEFAULT_CACHE_DIR, DEFAULT_RESULTS, DEFAULT_STORE, DEFAULT_TRACKER, Backend,
                      BatchSize, Budget, CacheDir, CalibrateFrom, Clouds, DatasetMapping, DatasetRoot, EndpointUrl,
                      Gpus, MaxParallel, PrecisionOption, Prices, Results, RetryFailed, Shards, Spot, Store, Target,
                      Tracker, Yes)
from .plan import _print_kept, _request, print_plan

CONFIRM_OVER = 3  # more jobs than this asks first, unless --yes
BUDGET_RULE = (
    "Shards are taken in plan order; one that would take the total past --budget is skipped and later, cheaper "
    "ones that still fit are taken, up to --max-jobs."
)


@app.command("launch", help=(
    "Launch the pending pairs as shards, within the budget; `--dry-run` prints the plan and validates every job "
    "(with the skypilot backend: each task under SkyPilot's schema) without submitting. " + BUDGET_RULE
))
def launch_command(
    tracker: Tracker = DEFAULT_TRACKER,
    budget: Budget = None,
    max_jobs: Annotated[int, typer.Option("--max-jobs", min=1, help="Launch at most this many shards.")] = 10,
    yes: Yes = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the plan and validate the jobs; submit nothing.")] = False,
    shards: Shards = False,
    # where the jobs run and write
    backend: Backend = "skypilot",
    pool: Annotated[Optional[str], typer.Option(
        "--pool", help="Send jobs to this SkyPilot pool (see `benchmark pool up`).")] = None,
    store: Store = DEFAULT_STORE,
    endpoint_url: EndpointUrl = None,
    # how each job evaluates
    precision: PrecisionOption = "auto",
    batch_size: BatchSize = DEFAULT_BATCH_SIZE,
    cache_dir: CacheDir = DEFAULT_CACHE_DIR,
    dataset_root: DatasetRoot = None,
    # how the shards are planned, as `benchmark plan` plans them
    gpus: Gpus = None,
    clouds: Clouds = None,
    spot: Spot = True,
    target_minutes: Target = None,
    max_parallel: MaxParallel = None,
    retry_failed: RetryFailed = False,
    results: Results = DEFAULT_RESULTS,
    calibrate_from: CalibrateFrom = None,
    prices: Prices = None,
    dataset_mapping: DatasetMapping = None,
):
    from rich.markup import escape

    from ..core.manifest import RunSettings
    from ..pipeline.launch import launch, money

    out = console()

    def show(preview) -> None:
        print_plan(preview.planned.plan, preview.planned.calibration, preview.selected, max_parallel, shards)
        if preview.left:
            out.print(f"{len(preview.left)} shard(s) left for later (--budget / --max-jobs); they are dimmed where shown")
        out.print(f"would launch {len(preview.selected)} shard(s), estimated {money(preview.cost)} ({'spot' if spot else 'on demand'})")

    def confirm(preview) -> bool:
        for note in preview.notes:
            out.print(note, markup=False)
        n = len(preview.selected)
        return n <= CONFIRM_OVER or yes or typer.confirm(f"Launch {n} jobs?", default=False)

    settings = RunSettings(batch_size=batch_size, precision=precision, cache_dir=cache_dir, dataset_root=dataset_root)
    done = launch(
        tracker, load_catalog(dataset_mapping), _request(gpus, clouds, spot, target_minutes, batch_size, retry_failed, calibrate_from, prices, results, pool),
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
