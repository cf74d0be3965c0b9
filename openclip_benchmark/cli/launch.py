"""Commands: plan, launch, prices, interactive up|down, pool up|down."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Optional

import typer

from ..core.errors import BenchmarkError
from .app import DEFAULT_RESULTS, DEFAULT_TRACKER, app, comma_list, console

PLAN_FILE = Path(".benchmark/plan.json")
CONFIRM_OVER = 3  # more jobs than this asks first, unless --yes


class Backend(str, Enum):
    local = "local"
    skypilot = "skypilot"


def _csv(text: str | None) -> tuple[str, ...] | None:
    return tuple(dict.fromkeys(comma_list(text))) or None


def make_plan(
    tracker_path: Path,
    *,
    gpus: str | None,
    clouds: str | None,
    spot: bool,
    target_minutes: float | None,
    batch_size: int,
    retry_failed: bool,
    calibrate_from: Path | None,
    prices_path: Path | None,
    pool: str | None = None,
):
    """Plan the pending (and planned, and with --retry-failed failed) pairs of the tracker."""
    from .. import catalog
    from ..planning import plan, pricing
    from ..tracker import Tracker

    tracker = Tracker.load(tracker_path)
    statuses = ["pending", "planned"] + (["failed"] if retry_failed else [])
    pairs = [e.pair for e in tracker.select(statuses)]
    gpu_table = pricing.load_gpus()
    models = plan.ModelIndex(_catalog_models(catalog))
    datasets = catalog.load_datasets()
    cost = plan.CostModel()
    calibration = {}
    folder = calibrate_from if calibrate_from is not None else Path(DEFAULT_RESULTS)
    if folder.is_dir():
        from ..collect.parse import read_results

        records = [record for record, _ in read_results(folder) if record.pair.dataset in datasets]
        cost, calibration = plan.calibrate(records, models=models, datasets=datasets, gpus=gpu_table)
    elif calibrate_from is not None:
        raise BenchmarkError(f"{calibrate_from} is not a folder of results")
    if pool:
        from dataclasses import replace

        cost = replace(cost, job_overhead_s=plan.POOL_JOB_OVERHEAD_S)
    options = plan.PlanOptions(
        gpus=_csv(gpus), clouds=_csv(clouds), spot=spot, target_s=None if target_minutes is None else target_minutes * 60,
        batch_size=batch_size
    )
    result = plan.plan_shards(
        pairs, models=models, datasets=datasets, gpus=gpu_table, prices=pricing.load_prices(prices_path), options=options, cost=cost
    )
    return result, calibration


def _catalog_models(catalog):
    try:
        return catalog.load_models()
    except BenchmarkError:  # no snapshot yet: every model gets the documented fallback estimate
        return []


def _money(value: float | None) -> str:
    return "n/a" if value is None else f"${value:,.2f}"


def _duration(seconds: float) -> str:
    minutes = seconds / 60
    return f"{minutes:.0f} min" if minutes < 120 else f"{minutes / 60:.1f} h"


def print_plan(result, calibration, selected=None) -> None:
    from rich.table import Table

    out = console()
    chosen = {s.shard_id for s in (selected if selected is not None else result.shards)}
    table = Table(title=f"Plan: {len(result.shards)} shard(s), {sum(len(s.pairs) for s in result.shards)} pair(s)")
    for col in ("shard", "pairs", "models", "datasets", "GPU", "runtime", "spot", "on demand"):
        table.add_column(col, justify="left" if col in ("shard", "models", "GPU") else "right", no_wrap=col == "shard")
    for s in result.shards:
        models = s.models[0] if len(s.models) == 1 else f"{len(s.models)} models"
        style = None if s.shard_id in chosen else "dim"
        table.add_row(
            s.shard_id, str(len(s.pairs)), models, str(len(s.datasets)), f"{s.gpu} {s.offer.cloud}/{s.offer.instance_type}",
            _duration(s.runtime_s), _money(s.cost_spot), _money(s.cost_on_demand), style=style,
        )
    table.add_section()
    table.add_row(
        "total", str(sum(len(s.pairs) for s in result.shards)), "", "", "", f"{result.runtime_s / 3600:.1f} GPU-h", _money(result.cost_spot), _money(result.cost_on_demand),
    )
    out.print(table)
    for gpu, (factor, n) in calibration.items():
        out.print(f"calibrated {gpu}: time x{factor:.2f} from {n} observed result(s)")
    for note in result.notes[:20]:
        out.print(f"[yellow]note:[/] {note}")
    if len(result.notes) > 20:
        out.print(f"[yellow]note:[/] ... and {len(result.notes) - 20} more fallback estimate(s)")


def write_plan_file(result, path: Path = PLAN_FILE) -> None:
    from ..core.jsonio import atomic_write_json

    atomic_write_json(
        path,
        {
            "spot": result.options.spot,
            "target_s": result.options.target,
            "runtime_s": result.runtime_s,
            "cost_spot": result.cost_spot,
            "cost_on_demand": result.cost_on_demand,
            "notes": list(result.notes),
            "shards": [
                {
                    "shard_id": s.shard_id,
                    "gpu": s.gpu,
                    "cloud": s.offer.cloud,
                    "instance_type": s.offer.instance_type,
                    "runtime_s": s.runtime_s,
                    "cost_spot": s.cost_spot,
                    "cost_on_demand": s.cost_on_demand,
                    "pairs": [p.identity() for p in s.pairs],
                }
                for s in result.shards
            ],
        },
    )


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
CALIBRATE = typer.Option(None, "--calibrate-from", help="Results folder to recalibrate from (default: ./results if present).")
PRICES = typer.Option(None, "--prices", help="Price table JSON (default: the shipped snapshot).")


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
    record: bool = typer.Option(False, "--record", help="Write estimates and shard ids into the tracker (status planned)."),
):
    """Show every shard that would run: models, datasets, GPU, runtime, spot and on-demand cost, and the totals."""
    result, calibration = make_plan(
        tracker, gpus=gpus, clouds=clouds, spot=spot, target_minutes=target_minutes, batch_size=batch_size,
        retry_failed=retry_failed, calibrate_from=calibrate_from, prices_path=prices,
    )
    print_plan(result, calibration)
    write_plan_file(result)
    if record:
        from ..backends import record_plan

        n = record_plan(tracker, result.shards, spot)
        console().print(f"recorded estimates for {n} pair(s) in {tracker}")


@app.command("launch")
def launch_command(
    tracker: Path = TRACKER,
    backend: Backend = typer.Option(Backend.skypilot, "--backend", help="skypilot: managed jobs; local: this machine."),
    budget: Optional[float] = typer.Option(None, "--budget", min=0, help="Launch no shard past this many dollars in total."),
    max_jobs: int = typer.Option(10, "--max-jobs", min=1, help="Launch at most this many shards."),
    yes: bool = typer.Option(False, "--yes", "-y", help=f"Do not ask before launching more than {CONFIRM_OVER} jobs."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the plan and exit without launching."),
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
):
    """Launch the pending pairs as shards, within the budget; `--dry-run` only prints the plan."""
    from ..core.manifest import RunSettings
    from ..planning.plan import within_budget
    from ..storage.store import open_store

    if pool and backend is Backend.local:
        raise BenchmarkError("--pool only applies to the skypilot backend")
    if pool and not gpus:
        from ..backends.skypilot import pool_gpu

        gpus = pool_gpu()
    settings = RunSettings(
        batch_size=batch_size, precision=precision, cache_dir=cache_dir, dataset_root=dataset_root
    )
    result, calibration = make_plan(
        tracker, gpus=gpus, clouds=clouds, spot=spot, target_minutes=target_minutes, batch_size=batch_size,
        retry_failed=retry_failed, calibrate_from=calibrate_from, prices_path=prices, pool=pool,
    )
    selected, left = within_budget(result.shards, budget, spot, max_jobs)
    print_plan(result, calibration, selected)
    write_plan_file(result)
    out = console()
    if left:
        out.print(f"{len(left)} shard(s) left for later (--budget / --max-jobs); they are dimmed above")
    cost = sum(s.cost(spot) for s in selected)
    out.print(f"would launch {len(selected)} shard(s), estimated {_money(cost)} ({'spot' if spot else 'on demand'})")
    if dry_run or not selected:
        if not selected and result.shards:
            raise BenchmarkError(f"the cheapest shard costs {_money(result.shards[0].cost(spot))}, over the budget")
        return
    if len(selected) > CONFIRM_OVER and not yes and not typer.confirm(f"Launch {len(selected)} jobs?", default=False):
        raise typer.Exit(1)
    target = open_store(store, endpoint_url)
    if backend is Backend.local:
        from ..backends.local import run_local

        report = run_local(selected, store=target, settings=settings, tracker_path=tracker, spot=spot)
        ok = sum(len(r.succeeded) + len(r.skipped) for r in report.reports)
        bad = sum(len(r.failed) for r in report.reports)
        out.print(f"local: {ok} pair(s) done, {bad} failed, in {len(report.reports)} shard(s)")
        if report.exit_code:
            raise typer.Exit(report.exit_code)
        return
    from ..backends.skypilot import launch_shards

    report = launch_shards(
        selected, store=target, settings=settings, tracker_path=tracker, spot=spot, clouds=_csv(clouds), pool=pool
    )
    for shard, job_id in report.launched:
        out.print(f"launched {shard.shard_id} as job {job_id} ({len(shard.pairs)} pairs on {shard.gpu})")
    for shard, error in report.failed:
        out.print(f"[red]failed to launch {shard.shard_id}:[/] {error}")
    if report.failed:
        raise BenchmarkError(f"{len(report.failed)} of {len(selected)} launch(es) failed; their pairs stay pending")


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
        table = pricing.refresh_prices(path, gpu_table, _csv(clouds) or pricing.DEFAULT_REFRESH_CLOUDS)
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
    from ..backends import skypilot

    skypilot.interactive_up(cluster, idle_minutes, config or skypilot.INTERACTIVE)
    console().print(
        f"cluster {cluster} is up (autostop after {idle_minutes} idle minutes). Run a pair by hand:\n"
        f"  ssh {cluster}\n"
        "  cd ~/sky_workdir && uv run benchmark run --models ViT-B-32:openai --datasets cifar10\n"
        f"Stop it with: benchmark interactive down --cluster {cluster}"
    )


@interactive_app.command("down")
def interactive_down_command(cluster: str = CLUSTER):
    """Tear the interactive cluster down."""
    from ..backends import skypilot

    skypilot.interactive_down(cluster)
    console().print(f"cluster {cluster} is down")


@pool_app.command("up")
def pool_up_command(
    name: str = typer.Argument(..., help="Pool name."),
    workers: Optional[int] = typer.Option(None, "--workers", min=1, help="Workers (default: the YAML's pool.workers)."),
    config: Optional[Path] = typer.Option(None, "--config", help="Pool YAML (default: configs/pool.yaml)."),
):
    """Create or update a pool; then `benchmark launch --pool NAME` runs shards on its warm workers."""
    from ..backends import skypilot

    skypilot.pool_up(name, config or skypilot.POOL, workers)
    console().print(f"pool {name} applied; launch into it with: benchmark launch --pool {name}")


@pool_app.command("down")
def pool_down_command(name: str = typer.Argument(..., help="Pool name.")):
    """Delete a pool and its workers."""
    from ..backends import skypilot

    skypilot.pool_down(name)
    console().print(f"pool {name} is down")
