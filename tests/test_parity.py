"""Same numbers as clip_benchmark: the real `clip_benchmark eval` CLI and our worker on the same models and data."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from fixtures import HANG_S, make_classification_wds, make_suite
from openclip_benchmark.core.manifest import Manifest, RunSettings
from openclip_benchmark.core.pair import Pair, Preprocess
from openclip_benchmark.core.records import read_record
from openclip_benchmark.storage.store import open_store
from openclip_benchmark.worker import run_shard
from openclip_benchmark.storage.layout import result_key

BATCH_SIZE = 16  # smaller than the datasets, so batching, and its order, is part of what is compared
EXACT = {"acc1", "acc5"} | {f"{side}_retrieval_recall@{k}" for side in ("image", "text") for k in (1, 5, 10)}


@pytest.fixture(scope="module")
def suite(tmp_path_factory):
    suite = make_suite(tmp_path_factory.mktemp("parity"))
    make_classification_wds(suite.root, "stl10", n=20, classes=("cat", "dog", "bird"), seed=3)  # < 5 classes: no acc5
    suite.tasks["stl10"] = "zeroshot_classification"
    return suite


def clip_benchmark_eval(suite, out: Path) -> dict[tuple[str, str], dict]:
    """One `clip_benchmark eval` process over every model and dataset, fp32 on CPU; metrics by (model, dataset)."""
    cb_tasks = {d: "zeroshot_retrieval" if t == "zeroshot_retrieval" else "zeroshot_classification"
                for d, t in suite.tasks.items()}
    for model in suite.models:  # its output template puts the model name (a path here) into the file path
        for dataset, task in cb_tasks.items():
            (out / f"{dataset}_{task}" / f"{model}.json").parent.mkdir(parents=True, exist_ok=True)
    cli = Path(sys.executable).parent / "clip_benchmark"
    subprocess.run(
        [str(cli), "eval", "--model_type", "open_clip",
         "--pretrained_model", *[f"{m}," for m in suite.models],
         "--dataset", *[f"wds/{d}" for d in suite.tasks],
         "--dataset_root", f"{suite.root}/wds_{{dataset}}", "--task", "auto",
         "--no_amp", "--num_workers", "0", "--batch_size", str(BATCH_SIZE), "--recall_k", "1", "5", "10",
         "--output", f"{out}/{{dataset}}_{{task}}/{{model}}.json", "--quiet"],
        check=True, capture_output=True, timeout=HANG_S,
    )
    return {(m, d): json.loads((out / f"{d}_{t}" / f"{m}.json").read_text())["metrics"]
            for m in suite.models for d, t in cb_tasks.items()}


def test_worker_metrics_equal_clip_benchmark_cli(suite, tmp_path):
    expected = clip_benchmark_eval(suite, tmp_path / "clip_benchmark")
    pairs = [Pair(m, "", d, task=t) for m in suite.models for d, t in suite.tasks.items()]
    settings = RunSettings(batch_size=BATCH_SIZE, num_workers=0, precision="fp32", dataset_root=str(suite.root))
    report = run_shard(Manifest(shard_id="parity", store=str(tmp_path / "ours"), pairs=tuple(pairs), settings=settings),
                       progress=False)
    assert report.exit_code == 0, report.failed
    store = open_store(tmp_path / "ours")
    for pair in pairs:
        ours = read_record(store.get(result_key(pair))).metrics
        theirs = expected[(pair.model, pair.dataset)]
        assert set(ours) == set(theirs), pair.label()
        for key, value in theirs.items():
            if value is None or math.isnan(value):
                assert ours[key] is None, (pair.label(), key)  # clip_benchmark's NaN, written as strict JSON
            elif key in EXACT:
                assert ours[key] == value, (pair.label(), key)
            else:
                assert ours[key] == pytest.approx(value, abs=1e-6), (pair.label(), key)
    assert {k for m in expected.values() for k in m} >= EXACT | {"mean_per_class_recall", "mean_average_precision"}


def test_amp_equals_clip_benchmark_default_autocast(suite, tmp_path):
    """clip_benchmark's default (`amp`: autocast, bf16 on CPU), called in-process with its own loader and dataset."""
    import torch
    from clip_benchmark.datasets.builder import build_dataset
    from clip_benchmark.metrics import zeroshot_classification, zeroshot_retrieval
    from clip_benchmark.models import load_clip

    model_name = suite.models[1]
    model, transform, tokenizer = load_clip("open_clip", model_name, "", None, device="cpu")
    model.eval()
    expected = {}
    for dataset, task in (("imagenet1k", "zeroshot_classification"), ("mscoco_captions", "zeroshot_retrieval")):
        ds = build_dataset(f"wds/{dataset}", root=str(suite.root / f"wds_{dataset}"), transform=transform,
                           split="test", task=task)
        loader = torch.utils.data.DataLoader(ds.batched(BATCH_SIZE), batch_size=None, num_workers=0)
        if task == "zeroshot_retrieval":
            expected[dataset] = zeroshot_retrieval.evaluate(model, loader, tokenizer, "cpu", amp=True,
                                                            recall_k_list=[1, 5, 10])
        else:
            expected[dataset] = zeroshot_classification.evaluate(model, loader, tokenizer, ds.classes, ds.templates,
                                                                 "cpu", amp=True)
    pairs = [Pair(model_name, "", d, task=t) for d, t in suite.tasks.items() if d in expected]
    settings = RunSettings(batch_size=BATCH_SIZE, num_workers=0, precision="amp", dataset_root=str(suite.root))
    report = run_shard(Manifest(shard_id="amp", store=str(tmp_path), pairs=tuple(pairs), settings=settings), progress=False)
    assert report.exit_code == 0, report.failed
    for record in report.records:
        assert record.run.precision == "amp"
        assert record.metrics == pytest.approx(expected[record.pair.dataset], abs=0), record.pair.label()


def test_image_size_override_equals_open_clip_forced_size(suite, tmp_path):
    """A sweep point is the model open_clip builds with force_image_size, evaluated as clip_benchmark would."""
    import open_clip
    import torch
    from clip_benchmark.datasets.builder import build_dataset
    from clip_benchmark.metrics import zeroshot_classification

    model_name = suite.models[0]
    model, _, transform = open_clip.create_model_and_transforms(model_name, force_image_size=48)
    model.eval()
    ds = build_dataset("wds/imagenet1k", root=str(suite.root / "wds_imagenet1k"), transform=transform, split="test")
    loader = torch.utils.data.DataLoader(ds.batched(BATCH_SIZE), batch_size=None, num_workers=0)
    expected = zeroshot_classification.evaluate(model, loader, open_clip.get_tokenizer(model_name), ds.classes,
                                                ds.templates, "cpu", amp=False)
    pair = Pair(model_name, "", "imagenet1k", preprocess=Preprocess(image_size=48))
    settings = RunSettings(batch_size=BATCH_SIZE, num_workers=0, dataset_root=str(suite.root))
    report = run_shard(Manifest(shard_id="sweep", store=str(tmp_path), pairs=(pair,), settings=settings), progress=False)
    assert report.records[0].metrics == pytest.approx(expected, abs=0)
