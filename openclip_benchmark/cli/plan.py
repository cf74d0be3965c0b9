"""Command: `benchmark plan`, shards, GPUs, runtime and cost of the open pairs: a summary by default, every shard with
`--shards`, the plan file with `--json`. `launch --dry-run` prints the same."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Annotated

import typer

from .app import app, comma_choice, console, load_catalog
from .options import (DEFAULT_BATCH_SIZE, DEFAULT_RESULTS, DEFAULT_TRACKER, BatchSize, CalibrateFrom, Clouds,
                      DatasetMapping, Gpus, Json, MaxParallel, Prices, Results, RetryFailed, Shards, Spot, Target, Tracker)
from .tables import FIGURE, Column, FittedTable, print_table

TOP_SHARDS = 5  # the summary's most expensive shards; a plan of up to TOP_SHARDS + 3 shards is listed whole
MODELS_SHOWN = 3  # model names shown per shard in the summary


def _duration(seconds: float) -> str:
    minutes = seconds / 60
    return f"{minutes:.0f} min" if minutes < 120 else f"{minutes / 60:.1f} h"


def _hours(seconds: float) -> str:
    return f"{seconds / 3600:.1f}"


def print_plan(result, calibration, selected=None, max_parallel: int | None = None, shards: bool = False) -> None:
    """The totals by GPU and cloud and the most expensive shards (every shard with `shards`), the wall clock and
    where the speeds come from. Shards outside `selected` (left by a budget) are dimmed."""
    from ..pipeline.launch import money
    from ..planning.plan import SKYPILOT_MAX_RUNNING_JOBS

    out = console()
    chosen = {s.shard_id for s in (selected if selected is not None else result.shards)}
    pairs = sum(len(s.pairs) for s in result.shards)
    models = len({m for s in result.shards for m in s.models})
    datasets = len({d for s in result.shards for d in s.datasets})
    title = (f"Plan: {len(result.shards)} shard(s), {pairs} pair(s), {models} model(s), {datasets} dataset(s), "
             f"{'spot' if result.options.spot else 'on demand'}")
    if shards:
        print_table(out, title, [Column("shard, model(s)"), Column("pairs", FIGURE), Column("datasets", FIGURE),
                                 Column("GPU"), Column("runtime", FIGURE), Column("spot", FIGURE),
                                 Column("on demand", FIGURE)],
                    [[_shard_label(s, 1), len(s.pairs), len(s.datasets), f"{s.gpu} {s.offer.cloud}",
                      _duration(s.runtime_s), money(s.cost_spot), money(s.cost_on_demand)] for s in result.shards],
                    styles=[None if s.shard_id in chosen else "dim" for s in result.shards])
    groups: dict[tuple[str, str], list] = defaultdict(list)
    for s in result.shards:
        groups[(s.gpu, s.offer.cloud)].append(s)
    rows = [[gpu, cloud, "/".join(sorted({part for s in group for part in s.speed.split("/")})), len(group),
             sum(len(s.pairs) for s in group), _hours(sum(s.runtime_s for s in group)),
             money(sum(s.cost_spot or 0.0 for s in group)), money(sum(s.cost_on_demand or 0.0 for s in group))]
            for (gpu, cloud), group in sorted(groups.items(), key=lambda kv: -sum(s.runtime_s for s in kv[1]))]
    rows.append(["total", "", "", len(result.shards), pairs, _hours(result.runtime_s), money(result.cost_spot),
                 money(result.cost_on_demand)])
    print_table(out, "totals by GPU and cloud" if shards else title,
                [Column("GPU"), Column("cloud"), Column("speed"), Column("shards", FIGURE), Column("pairs", FIGURE),
                 Column("GPU-h", FIGURE), Column("spot", FIGURE), Column("on demand", FIGURE)],
                rows, styles=[None] * (len(rows) - 1) + ["bold"], sections=[len(rows) - 2])
    if not shards:
        _print_top(out, result, chosen, money)
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


def _print_top(out, result, chosen: set[str], money) -> None:
    """The shards that cost the most, each with its models: where a budget goes."""
    spot = result.options.spot
    ranked = sorted(result.shards, key=lambda s: -s.cost(spot))
    shown = ranked if len(ranked) <= TOP_SHARDS + 3 else ranked[:TOP_SHARDS]
    if not shown:
        return

    title = ("every shard" if len(shown) == len(ranked) else
             f"the {len(shown)} most expensive of {len(ranked)} shards (--shards lists every one)")
    out.print(FittedTable(
        title, [Column("shard, models"), Column("pairs", FIGURE), Column("GPU"), Column("runtime", FIGURE),
                Column("spot", FIGURE), Column("on demand", FIGURE)],
        [[_shard_label(s, MODELS_SHOWN), len(s.pairs), f"{s.gpu} {s.offer.cloud}", _duration(s.runtime_s), money(s.cost_spot),
          money(s.cost_on_demand)] for s in shown],
        styles=[None if s.shard_id in chosen else "dim" for s in shown], sections=range(len(shown) - 1)))


def _shard_label(shard, models: int) -> str:
    """The shard id, then up to `models` of its model names, one a line (the id is what `cancel --shard` takes)."""
    more = len(shard.models) - models
    names = [*shard.models[:models], *([f"+{more} more model(s)"] if more > 0 else [])]
    return "\n".join([shard.shard_id, *names])


def _request(gpus, clouds, spot, target_minutes, batch_size, retry_failed, calibrate_from, prices, results, pool=None):
    from ..pipeline.launch import PlanRequest

    return PlanRequest(
        gpus=comma_choice(gpus), clouds=comma_choice(clouds), spot=spot, target_minutes=target_minutes, batch_size=batch_size,
        retry_failed=retry_failed, calibrate_from=calibrate_from, prices=prices, pool=pool, results=Path(results),
    )


def _print_kept(kept) -> None:
    from ..pipeline.launch import kept_summary

    if kept:
        console().print(f"[yellow]note:[/] {kept_summary(kept)}")


@app.command("plan")
def plan_command(
    tracker: Tracker = DEFAULT_TRACKER,
    gpus: Gpus = None,
    clouds: Clouds = None,
    spot: Spot = True,
    target_minutes: Target = None,
    batch_size: BatchSize = DEFAULT_BATCH_SIZE,
    retry_failed: RetryFailed = False,
    calibrate_from: CalibrateFrom = None,
    results: Results = DEFAULT_RESULTS,
    prices: Prices = None,
    dataset_mapping: DatasetMapping = None,
    record: Annotated[bool, typer.Option(
        "--record", help="Write estimates and shard ids into the tracker (status planned).")] = False,
    max_parallel: MaxParallel = None,
    shards: Shards = False,
    as_json: Json = False,
):
    """Plan the open pairs into shards: totals by GPU and cloud (GPU-hours, spot and on-demand cost), wall clock and
    the most expensive shards; `--shards` lists every shard. The plan is written to .benchmark/plan.json beside the
    tracker (`--json` prints it)."""
    from ..pipeline.launch import plan_and_record

    request = _request(gpus, clouds, spot, target_minutes, batch_size, retry_failed, calibrate_from, prices, results)
    planned, recorded = plan_and_record(tracker, load_catalog(dataset_mapping), request, record)
    if as_json:
        typer.echo(planned.plan_file.read_text(encoding="utf-8"), nl=False)
        return
    print_plan(planned.plan, planned.calibration, max_parallel=max_parallel, shards=shards)
    if recorded is not None:
        console().print(f"recorded estimates for {recorded.count} pair(s) in {tracker}", markup=False)
        _print_kept(recorded.kept)
