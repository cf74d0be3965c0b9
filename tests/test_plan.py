"""The plan: pure cost model, GPU sizing, packing, budget and recalibration (no torch, no SkyPilot)."""

from __future__ import annotations

import math
import re
import random
from dataclasses import replace
from types import SimpleNamespace

import pytest
from typer.testing import CliRunner

from openclip_benchmark import catalog
from openclip_benchmark.cli import app
from openclip_benchmark.planning import plan
from openclip_benchmark.planning.budget import SKYPILOT_MAX_RUNNING_JOBS, within_budget
from openclip_benchmark.planning.calibration import calibrate
from openclip_benchmark.planning.cost import (
    CostModel, ModelIndex, ModelWork, download_seconds, fits, image_seconds, load_seconds, pair_work, text_seconds,
)
from openclip_benchmark.planning.options import DEFAULT_ON_DEMAND_TARGET_S, DEFAULT_TARGET_S, PlanOptions
from openclip_benchmark.planning.packing import shard_id
from openclip_benchmark.planning import pricing
from openclip_benchmark.core.errors import BenchmarkError
from openclip_benchmark.core.pair import Pair, Preprocess
from openclip_benchmark.core.records import Failure, Result
from openclip_benchmark.planning.pricing import Offer, PriceTable
from openclip_benchmark.storage.layout import result_key

DATASETS = catalog.load_datasets()
MODELS = ModelIndex(catalog.load_models())
GPUS = pricing.load_gpus()
PRICES = pricing.load_prices()


def spec(arch, pretrained="x", params=150e6, image_gflops=9.0, text_gflops=3.0, image_size=224):
    return SimpleNamespace(
        arch=arch, pretrained=pretrained, params=params, image_gflops=image_gflops, text_gflops=text_gflops,
        image_size=image_size,
    )


def pairs_for(models, datasets=None):
    datasets = datasets or list(DATASETS.values())
    return [Pair(m, p, d.name, task=d.task) for m, p in models for d in datasets]


def make(pairs, models=MODELS, **options):
    return plan.plan_shards(
        pairs, models=models, datasets=DATASETS, gpus=GPUS, prices=PRICES, options=PlanOptions(**options)
    )


def test_same_pairs_in_any_order_give_the_same_shards_and_ids():
    pairs = pairs_for([("ViT-B-32", "openai"), ("ViT-L-14", "openai"), ("RN50", "openai")])
    first = make(pairs)
    shuffled = list(pairs)
    random.Random(1).shuffle(shuffled)
    second = make(shuffled)
    assert [(s.shard_id, s.pairs) for s in first.shards] == [(s.shard_id, s.pairs) for s in second.shards]
    assert sorted(p.id for s in first.shards for p in s.pairs) == sorted(p.id for p in pairs)  # each pair once
    assert len({s.shard_id for s in first.shards}) == len(first.shards)


def test_shards_stay_near_the_target_and_big_models_split_by_dataset():
    models = ModelIndex([spec("Big", params=1.8e9, image_gflops=330.0, text_gflops=40.0)])
    result = make(pairs_for([("Big", "x")]), models=models, target_s=45 * 60)
    assert len(result.shards) > 1
    for s in result.shards:
        assert s.models == ("Big:x",)
        assert s.runtime_s <= 45 * 60 * 1.15, s.runtime_s
    # the ImageNet family shares one classifier: kept in one shard while it fits
    family = {s.shard_id for s in result.shards for p in s.pairs if p.dataset.startswith("imagenet")}
    assert len(family) == 1


def test_small_models_share_a_job_each_loaded_once():
    few = [d for d in DATASETS.values() if d.name in ("cifar10", "cifar100", "mnist")]
    models = ModelIndex([spec(f"Tiny{i}", params=30e6, image_gflops=1.0, text_gflops=0.5) for i in range(6)])
    result = make(pairs_for([(f"Tiny{i}", "x") for i in range(6)], few), models=models)
    assert len(result.shards) == 1
    shard = result.shards[0]
    assert len(shard.models) == 6 and len(shard.pairs) == 18 and len(shard.datasets) == 3


def test_gpu_sizing_needs_memory_and_picks_lowest_cost_per_work_not_the_smallest_card():
    huge = ModelWork("Huge", "x", params=5e9, image_gflops=500.0, text_gflops=60.0)
    assert not fits(huge, 500.0, GPUS["L4"], 64, CostModel())
    assert fits(huge, 500.0, GPUS["A100-80GB"], 64, CostModel())
    # a table where the big card is cheaper per unit of work than the small one
    prices = PriceTable("test", "2026-01-01", (
        Offer("aws", "small", "T4", 1, 8, price=0.50, spot_price=0.20, region="r"),
        Offer("aws", "big", "H100", 1, 26, price=2.00, spot_price=0.60, region="r"),
    ))
    models = ModelIndex([spec("Mid", params=400e6, image_gflops=80.0, text_gflops=12.0)])
    result = plan.plan_shards(
        pairs_for([("Mid", "x")]), models=models, datasets=DATASETS, gpus=GPUS, prices=prices,
    )
    assert {s.gpu for s in result.shards} == {"H100"}
    with pytest.raises(BenchmarkError, match="GiB"):
        plan.plan_shards(
            pairs_for([("Huge", "x")]), models=ModelIndex([spec("Huge", params=5e9, image_gflops=500.0)]),
            datasets=DATASETS, gpus=GPUS, prices=PRICES, options=PlanOptions(gpus=("T4", "L4")),
        )


def test_allowed_gpus_clouds_and_purchase_option():
    pairs = pairs_for([("ViT-B-32", "openai")])
    aws = make(pairs, clouds=("aws",), gpus=("A10G", "L4"))
    assert {s.offer.cloud for s in aws.shards} == {"aws"} and {s.gpu for s in aws.shards} <= {"A10G", "L4"}
    demand = make(pairs, clouds=("lambda",), spot=False)
    assert all(s.cost_spot is None and s.cost_on_demand > 0 for s in demand.shards)
    with pytest.raises(BenchmarkError, match="no spot price"):
        make(pairs, clouds=("lambda",))
    with pytest.raises(BenchmarkError, match="unknown GPU"):
        make(pairs, gpus=("B300",))


def test_costs_add_up_and_spot_is_cheaper():
    result = make(pairs_for([("ViT-B-16", "openai"), ("ViT-L-14", "openai")]))
    assert result.cost_spot == pytest.approx(sum(s.cost_spot for s in result.shards))
    assert 0 < result.cost_spot < result.cost_on_demand
    for s in result.shards:
        rate = s.offer.spot_price
        assert s.cost_spot == pytest.approx(rate * s.runtime_s / 3600)
        assert s.runtime_s > CostModel().job_overhead_s + sum(s.pair_seconds.values()) * 0.999


def test_budget_and_max_jobs_never_overrun():
    result = make(pairs_for([("ViT-B-16", "openai"), ("ViT-L-14", "openai"), ("ViT-H-14", "laion2b_s32b_b79k")]))
    assert len(result.shards) >= 3
    first_two = result.shards[0].cost_spot + result.shards[1].cost_spot
    chosen, left = within_budget(result.shards, first_two + 1e-9, spot=True)
    assert chosen == list(result.shards[:2]) and left == list(result.shards[2:])
    assert sum(s.cost_spot for s in chosen) <= first_two + 1e-9
    chosen, left = within_budget(result.shards, None, spot=True, max_jobs=1)
    assert len(chosen) == 1 and len(left) == len(result.shards) - 1
    assert within_budget(result.shards, 0.0, spot=True)[0] == []


def test_budget_skips_shards_that_do_not_fit_and_takes_later_ones_that_do():
    result = make(pairs_for([("ViT-B-16", "openai"), ("ViT-L-14", "openai"), ("ViT-H-14", "laion2b_s32b_b79k")]))
    dear_first = sorted(result.shards, key=lambda s: -s.cost_spot)
    cheapest = dear_first[-1]
    assert dear_first[0].cost_spot > cheapest.cost_spot
    chosen, left = within_budget(dear_first, cheapest.cost_spot + 1e-9, spot=True)
    assert chosen == [cheapest] and left == dear_first[:-1]
    budget = dear_first[0].cost_spot + cheapest.cost_spot + 1e-9
    chosen, _ = within_budget(dear_first, budget, spot=True)
    assert chosen[0] == dear_first[0] and chosen[-1] == cheapest and sum(s.cost_spot for s in chosen) <= budget
    assert within_budget(dear_first, budget, spot=True, max_jobs=1)[0] == [dear_first[0]]


def test_models_outside_the_catalog_get_a_noted_fallback_and_resolution_scales_work():
    pairs = [Pair("local-dir:/m", "", "cifar10"), Pair("ViT-B-32", "/ckpt/b32.pt", "cifar10")]
    result = make(pairs)
    assert any("local-dir:/m" in n and "default" in n for n in result.notes)
    assert any("ViT-B-32 architecture" in n for n in result.notes)
    model = MODELS.work("ViT-B-32", "openai")
    base = pair_work(Pair("ViT-B-32", "openai", "imagenet1k"), model, DATASETS)
    big = pair_work(Pair("ViT-B-32", "openai", "imagenet1k", preprocess=Preprocess(image_size=448)), model, DATASETS)
    assert big.image_gflops == pytest.approx(base.image_gflops * (448 / model.image_size) ** 2)
    # prompts: classes x clip_benchmark's templates (80 for ImageNet), captions for retrieval
    assert base.prompts == 1000 * 80
    coco = pair_work(Pair("ViT-B-32", "openai", "mscoco_captions", task="zeroshot_retrieval"), model, DATASETS)
    assert coco.prompts == DATASETS["mscoco_captions"].size * DATASETS["mscoco_captions"].captions_per_image


def test_calibration_scales_the_gpu_that_ran_slower_than_estimated():
    pair = Pair("ViT-B-32", "openai", "cifar10")
    model = MODELS.work("ViT-B-32", "openai")
    work = pair_work(pair, model, DATASETS)
    gpu = GPUS["A10G"]
    estimate = image_seconds(work, gpu, 8, CostModel()) + text_seconds(work.prompts, model, gpu, CostModel())
    records = [
        Result(pair=pair, metrics={"acc1": 0.5}, run={"seconds": estimate * 2, "gpu_name": "NVIDIA A10G", "num_workers": 8}),
        Result(pair=pair, metrics={"acc1": 0.5}, run={"seconds": estimate * 2.2, "gpu_name": "NVIDIA A10G", "num_workers": 8}),
        Result(pair=pair, metrics={"acc1": 0.5}, run={"seconds": 5.0}),  # no GPU name: ignored
        Failure(pair=pair, error={"message": "boom"}),
    ]
    cost, factors = calibrate(records, models=MODELS, datasets=DATASETS, gpus=GPUS)
    assert set(factors) == {"A10G"} and factors["A10G"][1] == 2
    assert factors["A10G"][0] == pytest.approx(2.1, rel=1e-6)
    assert image_seconds(work, gpu, 8, cost) == pytest.approx(2.1 * image_seconds(work, gpu, 8, CostModel()))
    before = make([pair], gpus=("A10G",)).runtime_s
    after = plan.plan_shards([pair], models=MODELS, datasets=DATASETS, gpus=GPUS, prices=PRICES,
                             options=PlanOptions(gpus=("A10G",)), cost=cost).runtime_s
    assert after > before


def test_target_must_exceed_overhead():
    with pytest.raises(BenchmarkError, match="overhead"):
        make(pairs_for([("ViT-B-32", "openai")]), target_s=60)


def test_shard_id_is_content_derived():
    a, b = Pair("m", "p", "cifar10"), Pair("m", "p", "mnist")
    assert shard_id([a, b], "L4") == shard_id([b, a], "L4") != shard_id([a], "L4")
    assert shard_id([a], "L4") != shard_id([a], "T4")


def test_cost_model_overrides_are_honoured():
    pairs = pairs_for([("ViT-B-32", "openai")])
    slow = replace(CostModel(), job_overhead_s=900)
    a = make(pairs)
    b = plan.plan_shards(pairs, models=MODELS, datasets=DATASETS, gpus=GPUS, prices=PRICES, cost=slow)
    assert b.runtime_s > a.runtime_s


def test_plan_command_recalibrates_from_the_results_folder(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from openclip_benchmark.cli import app
    from openclip_benchmark.core.jsonio import atomic_write_json
    from openclip_benchmark.core.records import make_result
    from openclip_benchmark.tracker import open_tracker

    monkeypatch.chdir(tmp_path)
    done = Pair("ViT-B-32", "openai", "cifar10")
    todo = Pair("ViT-B-32", "openai", "cifar100")
    with open_tracker("results.csv", create=True) as t:
        t.add([done, todo])
    # clip_benchmark's own dataset spelling, canonicalised on read; a GPU that ran 3x slower than estimated
    result = make_result(done, {"acc1": 0.9}, {"seconds": 1.0, "gpu_name": "NVIDIA L4", "num_workers": 4})
    result["dataset"] = "wds/cifar10"
    work = pair_work(done, MODELS.work("ViT-B-32", "openai"), DATASETS)
    result["run"]["seconds"] = 3 * (image_seconds(work, GPUS["L4"], 4, CostModel())
                                    + text_seconds(work.prompts, work.model, GPUS["L4"], CostModel()))
    atomic_write_json(tmp_path / "results" / result_key(done), result)
    (tmp_path / "results" / "junk.json").write_text("{not json")
    runner = CliRunner()
    calibrated = runner.invoke(app, ["plan", "--gpus", "L4"], env={"COLUMNS": "200"})
    assert calibrated.exit_code == 0, calibrated.output
    assert "calibrated L4: time x3.00 from 1 observed result(s)" in calibrated.output
    plain = runner.invoke(app, ["plan", "--gpus", "L4", "--calibrate-from", str(tmp_path / "empty")])
    assert plain.exit_code == 2 and "not a folder of results" in plain.output


CHEAP_H100_ON_DEMAND = PriceTable("test", "2026-01-01", (
    Offer("gcp", "g2-standard-4", "L4", 1, 4, price=0.70, spot_price=0.22, region="r"),
    Offer("gcp", "g2-standard-16", "L4", 1, 16, price=1.15, spot_price=0.36, region="r"),
    Offer("gcp", "a3-highgpu-1g", "H100", 1, 26, price=11.06, spot_price=2.95, region="r"),
    Offer("lambda", "gpu_1x_h100_pcie", "H100", 1, 26, price=2.49, spot_price=None, region="r"),
))


def plan_on(prices, pairs, models, **options):
    return plan.plan_shards(pairs, models=models, datasets=DATASETS, gpus=GPUS, prices=prices, options=PlanOptions(**options))


def test_decode_bound_pairs_rent_more_vcpus_and_compute_bound_ones_do_not():
    from openclip_benchmark.backends.skypilot import sized_manifest
    from openclip_benchmark.core.manifest import RunSettings
    from openclip_benchmark.pipeline.launch import shard_job

    models = ModelIndex([spec("Small", image_gflops=1.0), spec("Big", params=400e6, image_gflops=300.0)])
    small = plan_on(CHEAP_H100_ON_DEMAND, pairs_for([("Small", "x")]), models, gpus=("L4",))
    big = plan_on(CHEAP_H100_ON_DEMAND, pairs_for([("Big", "x")]), models, gpus=("L4",))
    assert {s.offer.instance_type for s in small.shards} == {"g2-standard-16"}
    assert {s.offer.instance_type for s in big.shards} == {"g2-standard-4"}
    # the job decodes with as many loader workers as the instance it was priced on has vCPUs
    assert sized_manifest(shard_job(small.shards[0], "s3://b/p", RunSettings(), spot=True)).settings.num_workers == 16


def test_a_spot_plan_runs_a_shard_on_demand_where_that_is_cheaper_and_prices_it_so():
    models = ModelIndex([spec("Big", params=1.0e9, image_gflops=300.0, text_gflops=40.0), spec("Small", image_gflops=9.0)])
    pairs = pairs_for([("Big", "x")])
    result = plan_on(CHEAP_H100_ON_DEMAND, pairs, models, gpus=("H100",))
    assert result.shards and all(not s.spot and s.offer.cloud == "lambda" for s in result.shards)
    for s in result.shards:
        assert s.cost(True) == s.cost_spot == pytest.approx(2.49 * s.runtime_s / 3600) == s.cost_on_demand
    assert result.cost(True) == pytest.approx(sum(s.cost_on_demand for s in result.shards))
    # where spot is cheaper it stays spot; an on-demand plan never uses spot
    small = plan_on(CHEAP_H100_ON_DEMAND, pairs_for([("Small", "x")]), models)
    assert all(s.spot and s.gpu == "L4" for s in small.shards)
    assert all(not s.spot for s in plan_on(CHEAP_H100_ON_DEMAND, pairs, models, spot=False).shards)
    with pytest.raises(BenchmarkError, match="no spot price"):  # a spot plan with no spot offer at all was meant for --on-demand
        plan_on(CHEAP_H100_ON_DEMAND, pairs, models, clouds=("lambda",))


def test_no_shard_runs_past_the_target_with_its_dataset_downloads():
    result = make(pairs_for([("ViT-B-32", "openai"), ("ViT-L-14", "openai"), ("ViT-H-14", "laion2b_s32b_b79k")]))
    assert max(s.runtime_s for s in result.shards) <= DEFAULT_TARGET_S + 1e-6
    cost = CostModel()
    for s in result.shards:  # each dataset is downloaded once per job, and counted once
        downloads = sum(download_seconds(DATASETS[d].size, cost) for d in s.datasets)
        assert s.runtime_s == pytest.approx(
            cost.job_overhead_s + downloads + sum(load_seconds(MODELS.work(*m.split(":", 1)), cost) for m in s.models)
            + sum(s.pair_seconds.values()), rel=0.02)


def test_jobs_come_out_full_and_each_model_is_split_over_few_jobs():
    # three models of about 0.55 job each: balanced halves would need three jobs, filling them needs two
    models = ModelIndex([spec(f"M{i}", params=300e6, image_gflops=40.0) for i in range(3)])
    suite = [d for d in DATASETS.values() if "/clip-benchmark/" in d.url]  # the 43 the sizes above were chosen for
    result = plan_on(CHEAP_H100_ON_DEMAND, pairs_for([(f"M{i}", "x") for i in range(3)], suite), models, gpus=("L4",))
    cost = CostModel()
    capacity = DEFAULT_TARGET_S - cost.job_overhead_s
    assert len(result.shards) == math.ceil(sum(s.runtime_s - cost.job_overhead_s for s in result.shards) / capacity) == 2
    for i in range(3):
        assert sum(f"M{i}:x" in s.models for s in result.shards) <= 2


def test_on_demand_jobs_run_longer_by_default_because_nothing_preempts_them():
    models = ModelIndex([spec("Big", params=1.8e9, image_gflops=330.0, text_gflops=40.0)])
    pairs = pairs_for([("Big", "x")])
    spot, demand = make(pairs, models=models, gpus=("L4",)), make(pairs, models=models, spot=False, gpus=("A10",))
    assert PlanOptions().target == DEFAULT_TARGET_S < PlanOptions(spot=False).target
    assert max(s.runtime_s for s in spot.shards) <= DEFAULT_TARGET_S + 1e-6
    assert max(s.runtime_s for s in demand.shards) <= DEFAULT_ON_DEMAND_TARGET_S + 1e-6
    assert max(s.runtime_s for s in demand.shards) > DEFAULT_TARGET_S
    chosen = make(pairs, models=models, spot=False, gpus=("A10",), target_s=45 * 60)  # an explicit target wins
    assert chosen.options.target == 45 * 60 and max(s.runtime_s for s in chosen.shards) <= 45 * 60 + 1e-6


def test_wall_clock_packs_longest_first_onto_the_free_slot():
    from openclip_benchmark.planning.budget import estimate_wall_clock

    # by hand, 2 slots, longest first: A 7; B 3, 3 (free at 6), 2 (8); the last 2 on A, free at 7 -> 9
    assert estimate_wall_clock([3, 7, 2, 3, 2], 2) == 9
    assert estimate_wall_clock([3, 7, 2, 3, 2], 5) == estimate_wall_clock([3, 7, 2, 3, 2], 2000) == 7  # the longest job
    assert estimate_wall_clock([3, 7, 2, 3, 2], 1) == 17  # one at a time: the sum
    assert estimate_wall_clock([], 4) == 0
    with pytest.raises(BenchmarkError, match="at least 1"):
        estimate_wall_clock([1.0], 0)


def test_the_default_parallelism_is_skypilots_cap():
    from sky.utils import controller_utils

    assert SKYPILOT_MAX_RUNNING_JOBS == controller_utils.MAX_TOTAL_RUNNING_JOBS


def test_plan_prints_the_wall_clock(tmp_path):
    runner = CliRunner()
    tracker = str(tmp_path / "results.csv")
    assert runner.invoke(app, ["init", "-t", tracker, "-m", "ViT-B-32:openai,ViT-L-14:openai", "-d", "vtab"]).exit_code == 0
    default = runner.invoke(app, ["plan", "--tracker", tracker], env={"COLUMNS": "250"})
    one = runner.invoke(app, ["plan", "--tracker", tracker, "--max-parallel", "1"], env={"COLUMNS": "250"})
    assert default.exit_code == one.exit_code == 0, default.output
    assert "at most 2000 job(s) at once (SkyPilot's cap" in default.output and "at most 1 job(s) at once (--max-parallel)" in one.output
    gpu_h = re.search(r"([\d.]+) GPU-h in all", one.output).group(1)
    serial = re.search(r"wall clock ≈ ([\d.]+) (min|h)", one.output)
    assert float(serial.group(1)) == pytest.approx(float(gpu_h) * (60 if serial.group(2) == "min" else 1), rel=0.05)
