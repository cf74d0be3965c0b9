"""CuPL prompts as a templates choice for zero-shot classification: clip_benchmark's own zero-shot evaluation with
`--custom_template_file cupl_prompts.json` as the oracle (fp32, CPU), and a pair, a result and a leaderboard column
of their own beside the dataset's own templates."""

from __future__ import annotations

import csv
import json
from dataclasses import replace
from pathlib import Path

import pytest

from fixtures import make_classification_wds, make_tiny_model
from openclip_benchmark.catalog import load_catalog, load_models
from openclip_benchmark.collect.parse import parse_results
from openclip_benchmark.core.manifest import Manifest, RunSettings, dataset_entries
from openclip_benchmark.core.pair import Pair
from openclip_benchmark.core.records import read_record
from openclip_benchmark.planning import plan
from openclip_benchmark.storage.layout import result_key
from openclip_benchmark.storage.store import open_store
from openclip_benchmark.tasks.zeroshot_classification import CUPL_FILE, CUPL_PROMPTS_PER_CLASS
from openclip_benchmark.worker import run_shard

BATCH = 8
CLASSES = ("tench", "goldfish", "great white shark", "tiger shark", "hammerhead shark", "electric ray")  # ImageNet's


@pytest.fixture(scope="module")
def suite(tmp_path_factory):
    root = tmp_path_factory.mktemp("cupl")
    make_classification_wds(root, "imagenet1k", n=20, classes=CLASSES, seed=7)
    return root, make_tiny_model(root, "tiny", seed=2)


def test_cupl_equals_clip_benchmark_with_its_cupl_prompt_file(suite, tmp_path):
    import torch
    from clip_benchmark.datasets.builder import build_dataset
    from clip_benchmark.metrics import zeroshot_classification
    from clip_benchmark.models import load_clip

    root, model_name = suite
    model, transform, tokenizer = load_clip("open_clip", model_name, "", None, device="cpu")
    model.eval()
    ds = build_dataset("wds/imagenet1k", root=str(root / "wds_imagenet1k"), transform=transform, split="test",
                       task="zeroshot_classification", custom_template_file=CUPL_FILE)
    assert isinstance(ds.templates, dict)  # class-specific prompts
    loader = torch.utils.data.DataLoader(ds.batched(BATCH), batch_size=None, num_workers=0)
    expected = zeroshot_classification.evaluate(model, loader, tokenizer, ds.classes, ds.templates, "cpu", amp=False)

    cupl, plain = Pair(model_name, "", "imagenet1k", task="zeroshot_classification_cupl"), Pair(model_name, "", "imagenet1k")
    spec = replace(load_catalog().datasets["imagenet1k"], size=20, num_classes=len(CLASSES))
    settings = RunSettings(batch_size=BATCH, num_workers=0, precision="fp32", dataset_root=str(root))
    store = tmp_path / "store"
    report = run_shard(Manifest(shard_id="cupl", store=str(store), pairs=(plain, cupl), settings=settings,
                                datasets=dataset_entries({"imagenet1k": spec})),
                       progress=False)
    assert report.exit_code == 0, report.failed
    results = open_store(store)
    ours = read_record(results.get(result_key(cupl)))
    assert ours.metrics == pytest.approx(expected, abs=0)
    assert result_key(cupl) != result_key(plain)  # two pairs, two results
    assert read_record(results.get(result_key(plain))).metrics != ours.metrics

    parse_results(store, tmp_path / "out", catalog=load_catalog())
    with open(tmp_path / "out" / "classification_metrics.csv", newline="") as fh:
        assert sorted(r["task"] for r in csv.DictReader(fh)) == ["zeroshot_classification", "zeroshot_classification_cupl"]
    with open(tmp_path / "out" / "leaderboard.csv", newline="") as fh:
        (board,) = list(csv.DictReader(fh))
    assert float(board["imagenet1k (cupl)"]) == float(board["avg_cupl"]) == ours.metrics["acc1"]
    assert board["datasets"] == "1"  # the zero-shot average keeps to the dataset's own templates


def test_the_plan_counts_cupls_prompts():
    import clip_benchmark.datasets

    prompts = json.loads((Path(clip_benchmark.datasets.__file__).parent / CUPL_FILE).read_text())["imagenet1k"]
    assert round(sum(map(len, prompts.values())) / len(prompts)) == CUPL_PROMPTS_PER_CLASS
    catalog = load_catalog()
    model = plan.ModelIndex(load_models()).work("ViT-B-32", "openai")
    work = plan.pair_work(Pair("ViT-B-32", "openai", "imagenet-a", task="zeroshot_classification_cupl"), model,
                          catalog.datasets)
    assert (work.prompts, work.classifier) == (200 * CUPL_PROMPTS_PER_CLASS, "imagenet1k|en|cupl")
