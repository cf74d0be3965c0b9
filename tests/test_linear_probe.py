"""The linear probe: clip_benchmark's own `linear_probe.evaluate` as the oracle (fp32, CPU), features kept in the
store and never encoded twice, the train split from catalog to plan, and the probe's table and leaderboard columns."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import pytest

from fixtures import make_classification_wds, make_tiny_model
from openclip_benchmark import evaluate
from openclip_benchmark.catalog import load_catalog
from openclip_benchmark.core.manifest import Manifest, RunSettings
from openclip_benchmark.core.pair import Pair
from openclip_benchmark.core.records import read_record
from openclip_benchmark.storage.features import get_features
from openclip_benchmark.storage.layout import FEATURES_PREFIX, features_key, result_key
from openclip_benchmark.storage.store import open_store
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
    return Manifest(shard_id, str(store), tuple(pairs), settings, datasets=specs or catalog_specs)


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
    assert ours.run["fit_samples"] == {"cifar10": 100, "dtd": 80}[dataset]
    assert ours.run["fit_steps"] == linear_probe.fit_steps(data[2][dataset]) and ours.run["features_cached"] == []


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
