"""Command: `benchmark plan`, shards, GPUs, runtime and cost of the open pairs."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from .app import DATASET_MAPPING, DEFAULT_RESULTS, DEFAULT_TRACKER, app, comma_list, console, load_catalog

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
