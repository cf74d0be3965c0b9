"""Commands: plan, launch, prices, interactive up|down, pool up|down."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Optional

import typer

from ..backends import backend_names
from ..core.errors import BenchmarkError
from .app import DATASET_MAPPING, DEFAULT_RESULTS, DEFAULT_TRACKER, app, comma_list, console, load_catalog

CONFIRM_OVER = 3  # more jobs than this asks first, unless --yes
BUDGET_RULE = (
    "Shards are taken in plan order; one that would take the total past --budget is skipped and later, cheaper "
    "ones that still fit are taken, up to --max-jobs."
)


# the --backend choices are the registry's names: a new backend needs no CLI change
BackendName = Enum("BackendName", {name: name for name in backend_names()}, type=str)


def _csv(text: str | None) -> tuple[str, ...] | None:
    return tuple(dict.fromkeys(comma_list(text))) or None


def _duration(seconds: float) -> str:
    minutes = seconds / 60
    return f"{minutes:.0f} min" if minutes < 120 else f"{minutes / 60:.1f} h"


def print_plan(result, calibration, selected=None, max_parallel: int | None = None) -> None:
    from rich.table import Table

    from ..pipeline.launch import money
    from ..planning.plan import SKYPILOT_MAX_RUNNING_JOBS

    out = console()
    chosen = {s.shard_id for s in (selected if selected is not None else result.shards)}
    table = Table(title=f"Plan: {len(result.shards)} shard(s), {sum(len(s.pairs) for s in result.shards)} pair(s)")
    for col in ("shard", "pairs", "models", "datasets", "GPU", "speed", "runtime", "spot", "on demand"):
        table.add_column(col, justify="left" if col in ("shard", "models", "GPU", "speed") else "right",
                         no_wrap=col == "shard")
    for s in result.shards:
        models = s.models[0] if len(s.models) == 1 else f"{len(s.models)} models"
        style = None if s.shard_id in chosen else "dim"
        table.add_row(
            s.shard_id, str(len(s.pairs)), models, str(len(s.datasets)), f"{s.gpu} {s.offer.cloud}/{s.offer.instance_type}",
            s.speed, _duration(s.runtime_s), money(s.cost_spot), money(s.cost_on_demand), style=style,
        )
    table.add_section()
    table.add_row(
        "total", str(sum(len(s.pairs) for s in result.shards)), "", "", "", "", f"{result.runtime_s / 3600:.1f} GPU-h", money(result.cost_spot), money(result.cost_on_demand),
    )
    out.print(table)
    running = selected if selected is not None else result.shards
    if running:
        limit = max_parallel or SKYPILOT_MAX_RUNNING_JOBS
        why = "--max-parallel" if max_parallel else "SkyPilot's cap on running managed jobs; a small jobs controller runs fewer"
        out.print(
            f"wall clock ≈ {_duration(result.wall_clock_s(limit, running))} with at most {limit} job(s) at once ({why}); "
            f"{sum(s.runtime_s for s in running) / 3600:.1f} GPU-h in all; the longest shard {_duration(max(s.runtime_s for s in running))}",
            highlight=False,
        )
    out.print("speed: measured = `benchmark throughput` figures, calibrated = rescaled from finished results, "
              "assumed = datasheet fraction of peak", markup=False)
    for gpu, (factor, n) in calibration.items():
        out.print(f"calibrated {gpu}: time x{factor:.2f} from {n} observed result(s)")
    for note in result.notes[:20]:
        out.print(f"[yellow]note:[/] {note}")
    if len(result.notes) > 20:
        out.print(f"[yellow]note:[/] ... and {len(result.notes) - 20} more fallback estimate(s)")


TRACKER = typer.Option(Path(DEFAULT_TRACKER), "--tracker", help="The tracker CSV.")
GPUS = typer.Option(None, "--gpus", help="Allowed GPUs, comma-separated (default: every GPU in the table).")
CLOUDS = typer.Option(None, "--clouds", help="Allowed clouds, comma-separated (default: every cloud in the price table).")
SPOT = typer.Option(True, "--spot/--on-demand", help="Price and run on spot instances (recovered on preemption).")
TARGET = typer.Option(
    None, "--target-minutes", min=5,
    help="Target duration of one job (default: 45 on spot, where it bounds what a preemption loses; 90 on demand).",
)
BATCH = typer.Option(64, "--batch-size", min=1, help="Evaluation batch size (sizes GPU memory).")
RETRY = typer.Option(False, "--retry-failed", help="Plan failed pairs again too.")
CALIBRATE = typer.Option(
    None, "--calibrate-from",
    help="Results folder to recalibrate from (default: ./results if present); `benchmark throughput` runs there "
    "(and in ./throughput) set measured GPU speeds.",
)
PRICES = typer.Option(None, "--prices", help="Price table JSON (default: the shipped snapshot).")
MAX_PARALLEL = typer.Option(
    None, "--max-parallel", min=1,
    help="Jobs running at once, for the wall-clock estimate (default: 2000, SkyPilot's cap on running managed jobs).",
)


def _request(gpus, clouds, spot, target_minutes, batch_size, retry_failed, calibrate_from, prices, pool=None):
    from ..pipeline.launch import PlanRequest

    return PlanRequest(
        gpus=_csv(gpus), clouds=_csv(clouds), spot=spot, target_minutes=target_minutes, batch_size=batch_size,
        retry_failed=retry_failed, calibrate_from=calibrate_from, prices=prices, pool=pool, results=Path(DEFAULT_RESULTS),
    )


def _print_kept(kept) -> None:
    from ..pipeline.launch import kept_summary

    if kept:
        console().print(f"[yellow]note:[/] {kept_summary(kept)}")


@app.command("plan")
def plan_command(
    tracker: Path = TRACKER,
    gpus: Optional[str] = GPUS,
    clouds: Optional[str] = CLOUDS,
    spot: bool = SPOT,
    target_minutes: Optional[float] = TARGET,
    batch_size: int = BATCH,
    retry_failed: bool = RETRY,
    calibrate_from: Optional[Path] = CALIBRATE,
    prices: Optional[Path] = PRICES,
    dataset_mapping: Optional[Path] = DATASET_MAPPING,
    record: bool = typer.Option(False, "--record", help="Write estimates and shard ids into the tracker (status planned)."),
    max_parallel: Optional[int] = MAX_PARALLEL,
):
    """Show every shard that would run: models, datasets, GPU, runtime, spot and on-demand cost, and the totals.
    The plan is written to .benchmark/plan.json beside the tracker."""
    from ..pipeline.launch import plan_and_record

    request = _request(gpus, clouds, spot, target_minutes, batch_size, retry_failed, calibrate_from, prices)
    planned, recorded = plan_and_record(tracker, load_catalog(dataset_mapping), request, record)
    print_plan(planned.plan, planned.calibration, max_parallel=max_parallel)
    if recorded is not None:
        console().print(f"recorded estimates for {recorded.count} pair(s) in {tracker}", markup=False)
        _print_kept(recorded.kept)


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


@app.command("cancel")
def cancel_command(
    tracker: Path = TRACKER,
    backend: Optional[BackendName] = typer.Option(None, "--backend", help="Only the jobs of this backend (default: each pair's job, through the backend that launched it)."),
    shards: Optional[list[str]] = typer.Option(None, "--shard", help="Cancel only these shards (repeat or comma-separate); default: every launched or running pair."),
):
    """Cancel the jobs of launched and running pairs; their pairs become failed, so `launch --retry-failed` retries them."""
    from ..pipeline.launch import cancel

    ids = cancel(tracker, backend.value if backend else None, comma_list(shards) or None)
    console().print(f"cancelled {len(ids)} job(s)" + (f": {', '.join(ids)}" if ids else ""), markup=False)


@app.command("prices")
def prices_command(
    refresh: bool = typer.Option(False, "--refresh", help="Rebuild the table from SkyPilot's catalog."),
    prices: Optional[Path] = typer.Option(None, "--prices", help="Price table JSON (default: the shipped snapshot)."),
    clouds: Optional[str] = typer.Option(None, "--clouds", help="Clouds to refresh (default: aws,gcp,azure,lambda,runpod)."),
):
    """Show the GPU price table (cheapest single-GPU offer per cloud), or refresh it from SkyPilot's catalog."""
    from rich.table import Table

    from ..planning import pricing

    gpu_table = pricing.load_gpus()
    path = prices or Path(str(pricing.DATA / "prices.json"))
    if refresh:
        from ..backends.prices import DEFAULT_REFRESH_CLOUDS, refresh_prices

        table = refresh_prices(path, gpu_table, _csv(clouds) or DEFAULT_REFRESH_CLOUDS)
    else:
        table = pricing.load_prices(path)
    out = Table(title=f"GPU prices, {table.date} ({len(table.offers)} offers)")
    for col in ("GPU", "memory", "TFLOP/s", "cloud", "instance", "vCPUs", "RAM", "on demand $/h", "spot $/h"):
        out.add_column(col)
    for o in sorted(table.offers, key=lambda o: (o.accelerator, o.price)):
        g = gpu_table.get(o.accelerator)
        out.add_row(
            o.accelerator, f"{g.memory_gib:g} GiB" if g else "?", f"{g.tflops:g}" if g else "?", o.cloud,
            o.instance_type, str(o.vcpus), "?" if o.memory_gib is None else f"{o.memory_gib:g} GiB", f"{o.price:.3f}", "-" if o.spot_price is None else f"{o.spot_price:.3f}",
        )
    c = console()
    c.print(out)
    c.print(f"source: {table.source}")


interactive_app = typer.Typer(help="The interactive cluster of configs/interactive.yaml (autostops when idle).", no_args_is_help=True)
pool_app = typer.Typer(help="SkyPilot pools of warm workers (configs/pool.yaml).", no_args_is_help=True)
app.add_typer(interactive_app, name="interactive")
app.add_typer(pool_app, name="pool")
CLUSTER = typer.Option("interactive", "--cluster", help="Cluster name.")


@interactive_app.command("up")
def interactive_up_command(
    cluster: str = CLUSTER,
    idle_minutes: int = typer.Option(30, "--idle-minutes", min=1, help="Autostop after this many idle minutes."),
    config: Optional[Path] = typer.Option(None, "--config", help="Cluster YAML (default: configs/interactive.yaml)."),
):
    """Start (or reuse) the interactive cluster, then print how to run a pair by hand on it."""
    from ..backends import interactive

    interactive.interactive_up(cluster, idle_minutes, config or interactive.INTERACTIVE)
    console().print(
        f"cluster {cluster} is up (autostop after {idle_minutes} idle minutes). Run a pair by hand:\n"
        f"  ssh {cluster}\n"
        "  cd ~/sky_workdir && uv run benchmark run --models ViT-B-32:openai --datasets cifar10\n"
        f"Stop it with: benchmark interactive down --cluster {cluster}"
    )


@interactive_app.command("down")
def interactive_down_command(cluster: str = CLUSTER):
    """Tear the interactive cluster down."""
    from ..backends import interactive

    interactive.interactive_down(cluster)
    console().print(f"cluster {cluster} is down")


@pool_app.command("up")
def pool_up_command(
    name: str = typer.Argument(..., help="Pool name."),
    workers: Optional[int] = typer.Option(None, "--workers", min=1, help="Workers (default: the YAML's pool.workers)."),
    config: Optional[Path] = typer.Option(None, "--config", help="Pool YAML (default: configs/pool.yaml)."),
):
    """Create or update a pool; then `benchmark launch --pool NAME` runs shards on its warm workers."""
    from ..backends import pools

    pools.pool_up(name, config or pools.POOL, workers)
    console().print(f"pool {name} applied; launch into it with: benchmark launch --pool {name}")


@pool_app.command("down")
def pool_down_command(name: str = typer.Argument(..., help="Pool name.")):
    """Delete a pool and its workers."""
    from ..backends import pools

    pools.pool_down(name)
    console().print(f"pool {name} is down")
