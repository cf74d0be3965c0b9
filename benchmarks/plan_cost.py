"""Cost of benchmarking the full catalog: our plan vs the source project's way vs the lower bound.

All three are priced with the same GPU and price tables and the same overhead constants (CostModel):

- ours: `plan_shards`: jobs filled up to the target (45 min on spot, 90 min on demand, overheads and downloads
  included), each model loaded once per job, each dataset downloaded once per job, each zero-shot classifier
  built once per model; the instance (GPU and vCPU count, so that decoding keeps up) chosen by cost per unit of
  work; a spot plan runs a shard on demand where that instance is cheaper than any spot one for the work;
- source: one job per model; every dataset runs in a fresh `clip_benchmark eval` process that reloads the model
  and downloads the dataset again and builds its own classifier; the GPU comes from a memory table (A10G for
  models under 0.5 B parameters, A100 up to 2 B, A100-80GB above), on that GPU's cheapest spot instance;
- ours, pool: the same plan sent to a SkyPilot pool, where setup is paid once per worker (not counted here);
- lower bound: pure model FLOPs (each classifier once per model) on the GPU with the lowest cost per FLOP that
  fits the model, at the asked purchase option; no reading, no loading, no overheads. With spot, the line
  below it also lets on-demand offers count (our spot plan may use them), to show the bound is not gamed.

Prints the pairs and the plan's shards, a table of GPU-hours and dollars for each way, and the ratios
(`ours / source`, `ours / lower bound`, ...).

    uv run python benchmarks/plan_cost.py [--on-demand] [--models 'ViT-B-*,RN50:openai']
    uv run python benchmarks/plan_cost.py --smoke     # 4 models, spot then on demand: that the script still runs
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace

from openclip_benchmark import catalog
from openclip_benchmark.planning import plan
from openclip_benchmark.planning.cost import (
    POOL_JOB_OVERHEAD_S, CostModel, ModelIndex, download_seconds, fits, image_seconds, pair_work, pure_work_seconds, text_seconds,
)
from openclip_benchmark.planning.options import DEFAULT_TARGET_S, PlanOptions
from openclip_benchmark.planning import pricing

SMOKE_MODELS = "RN50:openai,ViT-B-32:openai,ViT-H-14:laion2b_s32b_b79k,ViT-bigG-14:laion2b_s39b_b160k"  # each source GPU


def source_gpu(params: float) -> str:
    return "A10G" if params < 0.5e9 else "A100" if params < 2e9 else "A100-80GB"


def source_cost(works_by_model, gpus, prices, spot, cost):
    seconds = dollars = 0.0
    for works in works_by_model.values():
        model = works[0].model
        gpu = gpus[source_gpu(model.params)]
        offer = prices.offers_for(gpu.name, None, spot)[0]
        job = cost.job_overhead_s + model.params * 4 / cost.weights_download_bps  # weights fetched once per job
        for w in works:  # a fresh process per dataset
            job += cost.model_load_s + download_seconds(w.images, cost)
            job += image_seconds(w, gpu, offer.vcpus, cost) + text_seconds(w.prompts, model, gpu, cost)
        seconds += job
        dollars += offer.hourly(spot) * job / 3600
    return seconds, dollars


def lower_bound(works_by_model, gpus, prices, spot, batch_size, cost, purchases=None):
    seconds = dollars = 0.0
    for works in works_by_model.values():
        model = works[0].model
        peak = max(w.image_gflops for w in works)
        best = None
        for gpu in gpus.values():
            rates = [o.hourly(p) for p in (purchases or (spot,)) for o in prices.offers_for(gpu.name, None, p)]
            if not rates or not fits(model, peak, gpu, batch_size, cost):
                continue
            t = pure_work_seconds(works, gpu)
            d = min(rates) * t / 3600
            if best is None or d < best[1]:
                best = (t, d)
        seconds += best[0]
        dollars += best[1]
    return seconds, dollars


def report(pairs, models, datasets, spot: bool) -> None:
    """Plan and price `pairs` the three ways at one purchase option; print the table and the ratios."""
    gpus, prices, cost = pricing.load_gpus(), pricing.load_prices(), CostModel()
    index = ModelIndex(models)
    options = PlanOptions(spot=spot)

    started = time.perf_counter()
    ours = plan.plan_shards(pairs, models=index, datasets=datasets, gpus=gpus, prices=prices, options=options, cost=cost)
    plan_s = time.perf_counter() - started
    works_by_model: dict = {}
    for p in pairs:
        works_by_model.setdefault((p.model, p.pretrained), []).append(pair_work(p, index.work(p.model, p.pretrained), datasets))
    src_s, src_d = source_cost(works_by_model, gpus, prices, spot, cost)
    low_s, low_d = lower_bound(works_by_model, gpus, prices, spot, options.batch_size, cost)
    our_s, our_d = ours.runtime_s, ours.cost(spot)
    pooled = plan.plan_shards(pairs, models=index, datasets=datasets, gpus=gpus, prices=prices, options=options,
                              cost=replace(cost, job_overhead_s=POOL_JOB_OVERHEAD_S))
    pool_s, pool_d = pooled.runtime_s, pooled.cost(spot)
    rows = [("source", src_s, src_d), ("ours", our_s, our_d), ("ours, pool", pool_s, pool_d), ("lower bound", low_s, low_d)]
    if spot:
        mixed = lower_bound(works_by_model, gpus, prices, spot, options.batch_size, cost, purchases=(True, False))
        rows.append(("  +on demand", *mixed))
    else:  # the same plan with the spot target, to show what the longer on-demand jobs buy
        short = plan.plan_shards(pairs, models=index, datasets=datasets, gpus=gpus, prices=prices,
                                 options=replace(options, target_s=DEFAULT_TARGET_S), cost=cost)
        rows.insert(2, ("ours, 45 min", short.runtime_s, short.cost(spot)))

    kind = "spot" if spot else "on demand"
    print(f"{len(works_by_model)} models x {len(datasets)} datasets = {len(pairs)} pairs; prices: {kind}, "
          f"table of {prices.date}")
    on_demand = sum(not s.spot for s in ours.shards)
    mixed_note = f", {on_demand} of them on demand (cheaper there)" if spot else ""
    print(f"our plan: {len(ours.shards)} shards of up to {options.target / 60:.0f} min{mixed_note} (planned in "
          f"{plan_s:.2f} s); source: {len(works_by_model)} jobs, {len(pairs)} processes")
    print(f"{'':14}{'GPU-hours':>12}{'dollars':>12}")
    for name, s, d in rows:
        print(f"{name:14}{s / 3600:12.1f}{d:12.2f}")
    print(f"ours / source:      {our_d / src_d:.3f}x dollars, {our_s / src_s:.2f}x GPU-hours")
    print(f"ours / lower bound: {our_d / low_d:.3f}x dollars, {our_s / low_s:.2f}x GPU-hours")
    if spot:
        print(f"ours / lower bound with on-demand offers too: {our_d / mixed[1]:.3f}x dollars")
    print(f"with a pool (setup once per worker; worker start-up not counted): {pool_d / src_d:.3f}x source dollars, "
          f"{pool_d / low_d:.3f}x lower bound")
    gpus_used: dict[str, int] = {}
    for s in ours.shards:
        gpus_used[s.gpu] = gpus_used.get(s.gpu, 0) + 1
    print("our GPUs (shards): " + ", ".join(f"{g} {n}" for g, n in sorted(gpus_used.items())))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--on-demand", action="store_true", help="price on demand instead of spot")
    parser.add_argument("--models", help="comma-separated model selectors, as `benchmark init -m` takes (default: all)")
    parser.add_argument("--smoke", action="store_true",
                        help=f"{len(SMOKE_MODELS.split(','))} models, spot and on demand: that the script still runs")
    args = parser.parse_args()
    if args.smoke and args.models is None:
        args.models = SMOKE_MODELS

    models = catalog.load_models()
    datasets = catalog.load_datasets()
    pairs = catalog.enumerate_pairs(catalog.Catalog(datasets, tuple(models)).select_models(args.models and args.models.split(",")),
                                    datasets.values())
    for spot in (True, False) if args.smoke else (not args.on_demand,):
        report(pairs, models, datasets, spot)


if __name__ == "__main__":
    main()
