"""Image-caption selection (SugarCrepe, Winoground): the original files converted by `benchmark dataset convert` and
scored by the worker give clip_benchmark's own numbers (its dataset classes on the same files, its
`image_caption_selection.evaluate`), to the bit in fp32; per-sample outcomes give each metric and its interval."""

from __future__ import annotations

import functools
import tarfile

import pytest

from family_fixtures import make_sugar_crepe, make_winoground, winoground_rows
from fixtures import make_tiny_model
from openclip_benchmark.collect.intervals import intervals, metric_outcomes
from openclip_benchmark.core.manifest import Manifest, RunSettings
from openclip_benchmark.core.pair import Pair
from openclip_benchmark.core.records import read_record
from openclip_benchmark.core.samples import read_samples
from openclip_benchmark.datasets.convert import convert, convert_sugar_crepe
from openclip_benchmark.storage.layout import result_key, samples_key
from openclip_benchmark.storage.store import open_store
from openclip_benchmark.worker import run_shard

BATCH_SIZE = 4  # smaller than the sets: batches, and the last short one, are part of what is compared
SPLITS = ("add_att", "swap_obj")


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    root = tmp_path_factory.mktemp("selection")
    sugar = make_sugar_crepe(root / "sugar_crepe", SPLITS)
    wino = make_winoground(root / "winoground")
    wds = root / "wds"
    converted = convert_sugar_crepe(sugar, wds, splits=SPLITS, shard_size=3) + convert("winoground", wino, wds)
    models = (make_tiny_model(root, "tiny_a", seed=0), make_tiny_model(root, "tiny_b", seed=1))
    return root, sugar, wino, wds, converted, models


@functools.lru_cache(maxsize=None)
def _load(model_name):
    from clip_benchmark.models import load_clip

    model, transform, tokenizer = load_clip("open_clip", model_name, "", None, device="cpu")
    return model.eval(), transform, tokenizer


def _oracle(model_name, dataset_name, sugar, wino):
    """clip_benchmark in-process: its loader, its dataset classes on the original files, its metric."""
    import torch
    from clip_benchmark.datasets.builder import build_dataset, get_dataset_collate_fn
    from clip_benchmark.datasets.winoground import WinoGround
    from clip_benchmark.metrics import image_caption_selection

    model, transform, tokenizer = _load(model_name)
    if dataset_name == "winoground":
        ds = WinoGround.__new__(WinoGround)  # its __init__ is `datasets.load_dataset("facebook/winoground")`: the Hub
        ds.ds, ds.transform = winoground_rows(wino), transform
    else:
        ds = build_dataset(dataset_name.replace("-", "/"), root=str(sugar), transform=transform, split="test",
                           task="image_caption_selection")
    loader = torch.utils.data.DataLoader(ds, batch_size=BATCH_SIZE, shuffle=False, num_workers=0,
                                         collate_fn=get_dataset_collate_fn(dataset_name.replace("-", "/")))
    return image_caption_selection.evaluate(model, loader, tokenizer, "cpu", amp=False)


def test_converted_layout(sources):
    _, sugar, _, wds, converted, _ = sources
    assert [(c.name, c.samples) for c in converted] == [("sugar_crepe-add_att", 10), ("sugar_crepe-swap_obj", 10),
                                                        ("winoground", 10)]
    folder = wds / "wds_sugar_crepe-add_att"
    assert (folder / "dataset_type.txt").read_text() == "image_caption_selection\n"
    assert (folder / "test" / "nshards.txt").read_text() == "4\n"
    with tarfile.open(folder / "test" / "0.tar") as tar:
        names = tar.getnames()
        first = tar.extractfile(names[0]).read()
    assert names[:3] == ["s0000000.0.jpg", "s0000000.txt", "s0000000.json"]
    import json

    ann = json.loads((sugar / "add_att.json").read_text())
    entry = next(iter(ann.values()))
    assert first == (sugar / "val2017" / entry["filename"]).read_bytes()  # the source's bytes, not re-encoded
    with tarfile.open(wds / "wds_winoground" / "test" / "0.tar") as tar:
        assert sorted(tar.getnames())[:4] == ["s0000000.0.png", "s0000000.1.png", "s0000000.json", "s0000000.txt"]


def test_selection_equals_clip_benchmark(sources, tmp_path):
    _, sugar, wino, wds, converted, models = sources
    datasets = [c.name for c in converted]
    pairs = [Pair(m, "", d, task="image_caption_selection") for m in models for d in datasets]
    settings = RunSettings(batch_size=BATCH_SIZE, num_workers=0, precision="fp32", dataset_root=str(wds))
    report = run_shard(Manifest(shard_id="selection", store=str(tmp_path), pairs=tuple(pairs), settings=settings), progress=False)
    assert report.exit_code == 0, report.failed
    store = open_store(tmp_path)
    seen = set()
    for pair in pairs:
        ours = read_record(store.get(result_key(pair))).metrics
        theirs = _oracle(pair.model, pair.dataset, sugar, wino)
        assert ours == theirs, pair.label()  # equal, not close
        seen |= {(pair.dataset, k, v) for k, v in ours.items()}
        _, samples = read_samples(store.get(samples_key(result_key(pair))))
        for metric in ("acc", "text_acc", "image_acc"):
            outcome = metric_outcomes(samples, metric)
            assert outcome.value == pytest.approx(ours[metric], abs=1e-7) and outcome.n == 10
        interval = intervals([metric_outcomes(samples, "acc")])[0]
        assert interval.method == "binomial" and interval.low <= ours["acc"] <= interval.high
    assert ("sugar_crepe-add_att", "image_acc", 1.0) in seen  # one image per sample: its caption always finds it
    assert len({v for d, k, v in seen if k == "acc"}) > 2  # the metric discriminates between models and sets
    # parse: the selection table, each row's main metric (`acc`) with its interval from these samples
    import csv

    from openclip_benchmark.catalog import load_catalog
    from openclip_benchmark.collect.parse import parse_results

    parse_results(tmp_path, tmp_path / "out", catalog=load_catalog())
    with open(tmp_path / "out" / "selection_metrics.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == len(pairs) and all(r["ci_metric"] == "acc" and r["ci_method"] == "binomial" for r in rows)
    assert all(float(r["ci_low"]) <= float(r["acc"]) <= float(r["ci_high"]) for r in rows)
