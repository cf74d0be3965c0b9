"""The linear probe: clip_benchmark's own `linear_probe.evaluate` as the oracle (fp32, CPU), features kept in the
store and never encoded twice, the train split from catalog to plan, and the probe's table and leaderboard columns."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import pytest

from fixtures import make_classification_wds, make_retrieval_wds, make_tiny_model
from openclip_benchmark import evaluate
from openclip_benchmark.catalog import load_catalog
from openclip_benchmark.core.manifest import Manifest, RunSettings, dataset_entries
from openclip_benchmark.core.pair import Pair, Preprocess
from openclip_benchmark.core.records import read_record
from openclip_benchmark.storage.features import get_features
from openclip_benchmark.storage.layout import FEATURES_PREFIX, features_key, result_key
from openclip_benchmark.storage.store import open_store
from openclip_benchmark.storage.sync import sync_results
from openclip_benchmark.tasks import linear_probe
from openclip_benchmark.worker import run_shard

BATCH = 16  # the encoding passes' batch size (the probe's own is clip_benchmark's 64)
CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog")  # six: acc5 is reported
ENCODING = {"precision": "fp32", "device": "cpu", "batch_size": BATCH, "num_workers": 0}


def add_split(folder: Path, split: str, n: int, seed: int) -> None:
    """Another split in the same layout: a second dataset's shards moved under `folder/split`."""
    other = make_classification_wds(folder.parent / f"_{split}", folder.name.removeprefix("wds_"), n=n,
                                    classes=CLASSES, shards=2, seed=seed)
    (other / "test").rename(folder / split)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny steps gain nothing from intra-op threads, and lose much on a shared machine; both sides run alike."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """cifar10: train (2 batches of the probe's 64) and test; dtd: train, val and test."""
    root = tmp_path_factory.mktemp("probe")
    cifar = make_classification_wds(root, "vtab-cifar10", n=24, classes=CLASSES, shards=2, seed=1)
    add_split(cifar, "train", 100, seed=2)
    dtd = make_classification_wds(root, "vtab-dtd", n=24, classes=CLASSES, shards=1, seed=3)
    add_split(dtd, "train", 60, seed=4)
    add_split(dtd, "val", 20, seed=5)
    catalog = load_catalog()
    specs = {"cifar10": replace(catalog.datasets["cifar10"], size=24, splits={"train": 100}),
             "dtd": replace(catalog.datasets["dtd"], size=24, splits={"train": 60, "val": 20})}
    return root, make_tiny_model(root, "tiny", seed=0), specs


def shard(data, store: Path, pairs, specs=None, shard_id="probe") -> Manifest:
    root, _, catalog_specs = data
    settings = RunSettings(batch_size=BATCH, num_workers=0, precision="fp32", dataset_root=str(root))
    return Manifest(shard_id=shard_id, store=str(store), pairs=tuple(pairs), settings=settings,
                    datasets=dataset_entries(specs or catalog_specs))


@pytest.fixture
def cuda_on_cpu(monkeypatch):
    """clip_benchmark's probe asserts `device == "cuda"` and places everything there: its placement alone is
    redirected (`.cuda()` and `.to("cuda")` stay on the CPU), its arithmetic runs as written."""
    import torch

    to = torch.Tensor.to
    monkeypatch.setattr(torch.Tensor, "cuda", lambda self, *a, **k: self)
    monkeypatch.setattr(torch.nn.Module, "cuda", lambda self, *a, **k: self)
    monkeypatch.setattr(torch.Tensor, "to", lambda self, *a, **k: to(self, *("cpu" if x == "cuda" else x for x in a), **k))


def clip_benchmark_probe(data, dataset: str, wds: str, tmp_path: Path) -> tuple[dict, Path]:
    """clip_benchmark's `linear_probe.evaluate` as its CLI calls it (its loaders, its Featurizer), fp32 on the CPU.
    The first call encodes and caches the features; the second, after `torch.manual_seed(seed)`, is its
    `--skip_load` run, whose random draws do not depend on what loading a model consumed."""
    import torch
    from clip_benchmark.datasets.builder import build_dataset, get_dataset_collate_fn
    from clip_benchmark.metrics import linear_probe as cb_probe
    from clip_benchmark.models import load_clip

    root, model_name, _ = data
    model, transform, _ = load_clip("open_clip", model_name, "", None, device="cpu")
    model.eval()

    def loader(split, batched):
        ds = build_dataset(f"wds/{wds}", root=str(root / f"wds_{wds}"), transform=transform, split=split,
                           task="linear_probe")
        if batched:  # the evaluated split: as the CLI reads every wds dataset
            return torch.utils.data.DataLoader(ds.batched(BATCH), batch_size=None, shuffle=False, num_workers=0)
        return torch.utils.data.DataLoader(ds, batch_size=BATCH, shuffle=False, num_workers=0,
                                           collate_fn=get_dataset_collate_fn(f"wds/{wds}"))

    val = loader("val", False) if (root / f"wds_{wds}" / "val").is_dir() else None
    features = tmp_path / "features"
    tmp_path.mkdir(parents=True, exist_ok=True)
    args = dict(fewshot_k=-1, batch_size=64, num_workers=0, lr=0.1, epochs=10, model_id=dataset, seed=0,
                feature_root=str(features), device="cuda", val_dataloader=val, normalize=True, amp=False)
    cb_probe.evaluate(model, loader("train", False), loader("test", True), **args)
    torch.manual_seed(0)
    return cb_probe.evaluate(model, None, None, **args), features / dataset


def same(ours: dict, theirs: dict) -> None:
    assert set(theirs) - set(ours) == {"normalized"} and theirs["normalized"] is True
    for key in ours:
        expected = theirs[key]
        assert (ours[key] is None) if isinstance(expected, float) and math.isnan(expected) else ours[key] == expected, key


@pytest.mark.parametrize("dataset, wds", [("cifar10", "vtab-cifar10"), ("dtd", "vtab-dtd")])
def test_probe_equals_clip_benchmarks_linear_probe(data, dataset, wds, tmp_path, cuda_on_cpu):
    """cifar10: no validation set, weight decay 0; dtd: a `val` split, so the full weight-decay sweep runs."""
    import torch

    pair = Pair(data[1], "", dataset, task="linear_probe")
    report = run_shard(shard(data, tmp_path / "ours", [pair]), progress=False)
    assert report.exit_code == 0, report.failed
    store = open_store(tmp_path / "ours")
    ours = read_record(store.get(result_key(pair)))
    theirs, features = clip_benchmark_probe(data, dataset, wds, tmp_path / "cb")
    same(ours.metrics, theirs)
    assert (ours.metrics["weight_decay"] == 0) is (dataset == "cifar10")
    for split in ("train", "val", "test") if dataset == "dtd" else ("train", "test"):  # the features themselves
        cached = get_features(store, features_key(pair, split, ENCODING))
        assert torch.equal(cached[0], torch.load(features / f"features_{split}.pt"))
        assert torch.equal(cached[1], torch.load(features / f"targets_{split}.pt"))
    assert ours.run.fit_samples == {"cifar10": 100, "dtd": 80}[dataset]
    assert ours.run.fit_steps == linear_probe.fit_steps(data[2][dataset]) and ours.run.features_cached == []


def test_held_out_validation_equals_clip_benchmarks_sweep_on_the_same_split(data, tmp_path, cuda_on_cpu):
    """`val_proportion`: clip_benchmark's --val_proportion cannot split a webdataset (no length), so the oracle is its
    sweep on the same held-out features, handed to it as its feature cache."""
    import torch
    from clip_benchmark.metrics import linear_probe as cb_probe

    specs = {"cifar10": replace(data[2]["cifar10"], val_proportion=0.4)}
    pair = Pair(data[1], "", "cifar10", task="linear_probe")
    report = run_shard(shard(data, tmp_path / "ours", [pair], specs), progress=False)
    assert report.exit_code == 0, report.failed
    store = open_store(tmp_path / "ours")
    ours = read_record(store.get(result_key(pair))).metrics
    assert ours["weight_decay"] > 0  # swept

    train, targets = get_features(store, features_key(pair, "train", ENCODING))
    kept, held = torch.utils.data.random_split(range(100), [0.6, 0.4], generator=torch.Generator().manual_seed(0))
    folder = tmp_path / "cb" / "cifar10"
    folder.mkdir(parents=True)
    test = get_features(store, features_key(pair, "test", ENCODING))
    for split, (f, t) in {"train": (train[kept.indices], targets[kept.indices]),
                          "val": (train[held.indices], targets[held.indices]), "test": test}.items():
        torch.save(f, folder / f"features_{split}.pt")
        torch.save(t, folder / f"targets_{split}.pt")
    torch.manual_seed(0)
    theirs = cb_probe.evaluate(None, None, None, -1, 64, 0, 0.1, 10, "cifar10", 0, str(tmp_path / "cb"), "cuda",
                               val_dataloader=object(), normalize=True, amp=False)
    same(ours, theirs)


def test_each_split_is_encoded_once_and_a_rerun_reads_the_store(data, tmp_path, monkeypatch):
    """A shard with zero-shot and probe pairs on cifar10 and a sweeping probe on dtd: one pass per split (the test
    split shared), every image through the image tower once; a re-run of the probes encodes nothing and gives the
    same numbers from the store's features."""
    import open_clip

    calls = []
    real = open_clip.model.CLIP.encode_image
    monkeypatch.setattr(open_clip.model.CLIP, "encode_image", lambda self, x, **k: calls.append(len(x)) or real(self, x, **k))
    passes = []
    encode = evaluate.encode_dataset
    monkeypatch.setattr(evaluate, "encode_dataset", lambda *a, **k: passes.append((a[1].name, k["split"])) or encode(*a, **k))
    model = data[1]
    probes = [Pair(model, "", "cifar10", task="linear_probe"), Pair(model, "", "dtd", task="linear_probe")]
    store = tmp_path / "store"
    report = run_shard(shard(data, store, [Pair(model, "", "cifar10"), *probes]), progress=False)
    assert report.exit_code == 0 and len(report.succeeded) == 3, report.failed
    assert sorted(passes) == [("wds_vtab-cifar10", "test"), ("wds_vtab-cifar10", "train"),
                              ("wds_vtab-dtd", "test"), ("wds_vtab-dtd", "train"), ("wds_vtab-dtd", "val")]
    assert sum(calls) == 24 + 100 + 24 + 60 + 20  # each image once, whatever the sweep does
    keys = sorted(o.key for o in open_store(store).list(FEATURES_PREFIX))
    assert len(keys) == 5 and all(k.endswith(".safetensors") for k in keys)
    first = {p: read_record(open_store(store).get(result_key(p))) for p in probes}

    for pair in probes:  # the results gone (a new results store, a retry): the features are still there
        (store / result_key(pair)).unlink()
    calls.clear(), passes.clear()
    again = run_shard(shard(data, store, probes, shard_id="again"), progress=False)
    assert again.exit_code == 0 and calls == [] and passes == []
    for pair in probes:
        record = read_record(open_store(store).get(result_key(pair)))
        assert record.metrics == first[pair].metrics
        assert record.run.features_cached == sorted(("test", "train", "val") if pair.dataset == "dtd" else ("test", "train"))
    mirror = sync_results(open_store(store), tmp_path / "mirror")  # sync leaves the features where they are
    assert mirror.refused == [] and mirror.results == 3 and not (tmp_path / "mirror" / "_features").exists()


def test_outcomes_table_and_leaderboard_columns(data, tmp_path):
    """Per test image, in the split's order, the probe's prediction (its metrics follow from them); parse writes
    linear_probe_metrics.csv and labels the probe's leaderboard column, apart from the zero-shot average."""
    import csv

    import numpy as np
    from sklearn.metrics import balanced_accuracy_score

    from openclip_benchmark.collect.parse import parse_results
    from openclip_benchmark.core.samples import read_samples
    from openclip_benchmark.storage.layout import samples_key

    model = data[1]
    zero_shot, probe = Pair(model, "", "cifar10"), Pair(model, "", "cifar10", task="linear_probe")
    store = tmp_path / "store"
    assert run_shard(shard(data, store, [zero_shot, probe]), progress=False).exit_code == 0
    results = open_store(store)
    metrics = read_record(results.get(result_key(probe))).metrics
    _, samples = read_samples(results.get(samples_key(result_key(probe))))
    test_targets = get_features(results, features_key(probe, "test", ENCODING))[1].numpy()
    assert np.array_equal(samples["target"], test_targets)
    assert samples["top1"].mean() == metrics["lp_acc1"] and samples["top5"].mean() == metrics["lp_acc5"]
    assert balanced_accuracy_score(samples["target"], samples["predicted"]) == metrics["lp_mean_per_class_recall"]

    report = parse_results(store, tmp_path / "out", catalog=load_catalog())
    assert report.rows["linear_probe_metrics"] == 1 and report.rows["classification_metrics"] == 1
    with open(tmp_path / "out" / "linear_probe_metrics.csv", newline="") as fh:
        reader = csv.DictReader(fh)
        (row,) = list(reader)
    assert reader.fieldnames[6:13] == ["lp_acc1", "lp_acc5", "lp_mean_per_class_recall", "weight_decay", "epochs",
                                       "seed", "fewshot_k"]
    assert row["task"] == "linear_probe" and float(row["lp_acc1"]) == metrics["lp_acc1"]
    with open(tmp_path / "out" / "leaderboard.csv", newline="") as fh:
        (board,) = list(csv.DictReader(fh))
    zero_shot_acc1 = read_record(results.get(result_key(zero_shot))).metrics["acc1"]
    assert float(board["cifar10 (probe)"]) == float(board["avg_probe"]) == metrics["lp_acc1"]
    assert float(board["cifar10"]) == float(board["average"]) == zero_shot_acc1 and board["datasets"] == "1"


def test_clip_benchmarks_probe_result_reads_as_a_probe_pair():
    """Its `normalized` flag, a boolean among the metrics, is a setting, not a metric."""
    import json

    written = {"dataset": "wds/vtab/cifar10", "model": "ViT-B-32", "pretrained": "openai", "task": "linear_probe",
               "metrics": {"lp_acc1": 0.9, "lp_acc5": 0.99, "lp_mean_per_class_recall": 0.9, "weight_decay": 0,
                           "epochs": 10, "seed": 0, "fewshot_k": -1, "normalized": True}, "language": "en"}
    record = read_record(json.dumps(written), load_catalog())
    assert record.pair == Pair("ViT-B-32", "openai", "cifar10", task="linear_probe")
    assert set(record.metrics) == {"lp_acc1", "lp_acc5", "lp_mean_per_class_recall", *linear_probe.SETTINGS}


# ---------------------------------------------------------------- catalog, init, run and plan


def write_mapping(path: Path, datasets: dict) -> Path:
    import json

    path.write_text(json.dumps({"datasets": datasets}))
    return path


def test_catalog_lists_tasks_and_splits_and_reads_the_older_single_task(tmp_path):
    from openclip_benchmark.catalog import CatalogError, datasets_from_json, load_datasets
    from openclip_benchmark.core.manifest import dataset_entries

    datasets = load_catalog().datasets
    probed = [n for n, s in datasets.items() if "linear_probe" in s.tasks]
    assert len(probed) == 30 and all(datasets[n].splits["train"] > 0 for n in probed)
    assert datasets["cifar10"].splits == {"train": 45000, "test": 10000}  # VTAB's train split
    assert datasets["imagenet1k"].tasks == ("zeroshot_classification", "zeroshot_classification_cupl", "linear_probe")
    assert datasets["imagenet-a"].tasks == ("zeroshot_classification", "zeroshot_classification_cupl")
    assert all(s.task == s.tasks[0] for s in datasets.values())

    entry = {"wds_name": "wds_both", "tasks": ["zeroshot_classification", "linear_probe"], "size": 5,
             "splits": {"train": 9, "test": 5}, "metric": "acc1", "val_proportion": 0.2}
    specs = load_datasets(write_mapping(tmp_path / "m.json", {
        "old": {"wds_name": "wds_old", "task": "zeroshot_classification", "size": 5, "metric": "acc1"},
        "both": entry}))
    assert (specs["old"].tasks, specs["old"].splits) == (("zeroshot_classification",), {"test": 5})
    assert (specs["both"].task, specs["both"].splits, specs["both"].val_proportion) == ("zeroshot_classification", {"train": 9, "test": 5}, 0.2)
    assert datasets_from_json(dataset_entries({"both": specs["both"]}), "manifest") == {"both": specs["both"]}  # round trip
    for change, message in [({"splits": {"test": 5}}, "linear_probe learns from a train split and both has none"),
                            ({"task": "linear_probe"}, "is not the first of 'tasks'"),
                            ({"tasks": ["zeroshot_retrieval", "linear_probe"]}, "reads classification data"),
                            ({"splits": {"train": 9, "test": 6}}, "'size' says 5"),
                            ({"val_proportion": 1.5}, "between 0 and 1")]:
        with pytest.raises(CatalogError, match=message):
            load_datasets(write_mapping(tmp_path / "bad.json", {"both": {**entry, **change}}))


def test_tasks_at_init_and_a_probe_without_a_train_split_refused_before_any_shard(data, tmp_path):
    """init pairs each dataset with the chosen tasks it serves (default: its first, so the catalog's pair count is
    unchanged); a probe on a dataset without a train split is one line at init, run and plan."""
    from typer.testing import CliRunner

    from openclip_benchmark.catalog import enumerate_pairs
    from openclip_benchmark.cli import app
    from openclip_benchmark.core.errors import BenchmarkError
    from openclip_benchmark.pipeline.run import select_pairs
    from openclip_benchmark.tracker import Tracker, open_tracker

    catalog = load_catalog()
    chosen = catalog.select_datasets(["cifar10", "imagenet-a", "mscoco_captions"])
    tasks = ["zeroshot_classification", "linear_probe", "zeroshot_classification_cupl"]
    pairs = enumerate_pairs([("ViT-B-32", "openai")], chosen, ["en", "jp"], tasks)
    assert [(p.dataset, p.task) for p in pairs] == [
        ("cifar10", "zeroshot_classification"), ("cifar10", "linear_probe"),
        ("imagenet-a", "zeroshot_classification"), ("imagenet-a", "zeroshot_classification_cupl")]
    english = [s for s in catalog.datasets.values() if "en" in s.languages]  # (xtd200, flickr30k-200: eng_Latn)
    assert len(enumerate_pairs([("m", "")], catalog.datasets.values())) == len(english)

    runner = CliRunner()
    tracker = tmp_path / "results.csv"
    ok = runner.invoke(app, ["init", "-t", str(tracker), "-m", "ViT-B-32:openai", "-d", "vtab", "--tasks", "linear_probe"])
    assert ok.exit_code == 0, ok.output
    assert {e.pair.task for e in Tracker.load(tracker)} == {"linear_probe"} and len(Tracker.load(tracker)) == 20
    refused = runner.invoke(app, ["init", "-t", str(tracker), "-m", "ViT-B-32:openai", "-d", "imagenet-a",
                                  "--tasks", "linear_probe"])
    assert refused.exit_code == 2 and "Traceback" not in refused.output
    assert "imagenet-a has none" in refused.output and len(Tracker.load(tracker)) == 20  # nothing lost

    with open_tracker(tracker) as t:  # a tracker row no init would make (an older mapping, a hand edit)
        t.add([Pair("ViT-B-32", "openai", "imagenet-a", task="linear_probe")])
    planned = runner.invoke(app, ["plan", "--tracker", str(tracker)])
    assert planned.exit_code == 2 and "linear_probe on imagenet-a learns from a train split" in planned.output

    root, model, _ = data
    make_classification_wds(root, "local_set", n=8, classes=CLASSES)  # the catalog lacks it; a test split only
    with pytest.raises(BenchmarkError, match="train/nshards.txt is missing"):
        select_pairs(catalog, [model], ["local_set"], [], [Preprocess()], str(root), "linear_probe", "~/.cache")
    make_retrieval_wds(root, "local_captions", n=8)
    with pytest.raises(BenchmarkError, match=r"retrieval data, which linear_probe cannot read \(its tasks: zeroshot_retrieval"):
        select_pairs(catalog, [model], ["local_captions"], [], [Preprocess()], str(root), None, "~/.cache",
                     ["linear_probe"])
    chosen = select_pairs(catalog, [model], ["vtab-cifar10"], [], [Preprocess()], str(root), None, "~/.cache",
                          ["linear_probe"])
    assert [(p.dataset, p.task) for p in chosen] == [("cifar10", "linear_probe")]


def test_plan_prices_the_train_split_and_the_fitting(data):
    """A probe's train images go through the image tower, its sweep's steps at the calibrated seconds per step."""
    from openclip_benchmark.catalog import load_models
    from dataclasses import replace as changed

    from openclip_benchmark.core.records import Result
    from openclip_benchmark.planning import calibration, cost as costs, pricing

    catalog = load_catalog()
    models = costs.ModelIndex(load_models())
    model = models.work("ViT-B-32", "openai")
    zero_shot = costs.pair_work(Pair("ViT-B-32", "openai", "cifar10"), model, catalog.datasets)
    probe = costs.pair_work(Pair("ViT-B-32", "openai", "cifar10", task="linear_probe"), model, catalog.datasets)
    assert (zero_shot.images, zero_shot.fit_steps) == (10000, 0)
    assert (probe.images, probe.prompts, probe.classifier) == (10000 + 45000, 0, None)
    assert probe.fit_steps == 10 * math.ceil(45000 / 64)  # no validation set: one training
    swept = replace(catalog.datasets["cifar10"], val_proportion=0.1)
    assert linear_probe.fit_steps(swept) == 10 * (19 * math.ceil(40500 / 64) + math.ceil(45000 / 64))

    gpus = pricing.load_gpus()
    record = Result(pair=Pair("ViT-B-32", "openai", "cifar10", task="linear_probe"), metrics={"lp_acc1": 0.9},
                    run={"seconds": 30.0, "gpu_name": "NVIDIA A10G", "fit_seconds": 14.08, "fit_steps": 7040})
    cost, _ = calibration.calibrate([record], models=models, datasets=catalog.datasets, gpus=gpus)
    assert cost.fit_step_s == pytest.approx(0.002)
    a10g = gpus["A10G"]
    slow = changed(cost, fit_step_s=0.02)
    extra = costs.units([probe], a10g, 8, slow, 1e9)[0].seconds - costs.units([probe], a10g, 8, cost, 1e9)[0].seconds
    assert extra == pytest.approx(probe.fit_steps * 0.018)
