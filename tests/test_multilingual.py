"""Multilingual retrieval (XTD10, Crossmodal-3600): the original files converted by `benchmark dataset convert`, every
language of a set scored in one pass over its images, equal to clip_benchmark's own dataset classes and
`zeroshot_retrieval.evaluate` run once per language on the same files, to the bit in fp32."""

from __future__ import annotations

import functools
import json
import tarfile

import pytest

from family_fixtures import make_crossmodal3600, make_xtd10, xtd10_lines
from fixtures import make_tiny_model
from openclip_benchmark import evaluate
from openclip_benchmark.core.manifest import Manifest, RunSettings
from openclip_benchmark.core.pair import Pair
from openclip_benchmark.core.records import read_record
from openclip_benchmark.datasets.convert import convert
from openclip_benchmark.storage.layout import result_key
from openclip_benchmark.storage.store import open_store
from openclip_benchmark.worker import run_shard

BATCH_SIZE = 4
XTD_LANGUAGES = ("en", "de", "fr", "jp", "it")
XM_LANGUAGES = ("en", "de", "ja", "sw")


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    root = tmp_path_factory.mktemp("multilingual")
    cb_root = root / "clip_benchmark"  # clip_benchmark's --dataset_root: xtd10/ and xm3600/ under it
    make_xtd10(cb_root / "xtd10", XTD_LANGUAGES)
    make_crossmodal3600(cb_root / "xm3600", XM_LANGUAGES)
    wds = root / "wds"
    converted = convert("xtd10", cb_root / "xtd10", wds) + convert("crossmodal3600", cb_root / "xm3600", wds, 5)
    models = (make_tiny_model(root, "tiny_a", seed=0), make_tiny_model(root, "tiny_b", seed=1))
    return cb_root, wds, converted, models


@functools.lru_cache(maxsize=None)
def _load(model_name):
    from clip_benchmark.models import load_clip

    model, transform, tokenizer = load_clip("open_clip", model_name, "", None, device="cpu")
    return model.eval(), transform, tokenizer


def _oracle(model_name, dataset, language, cb_root, monkeypatch):
    """clip_benchmark in-process: its annotation file (GitHub's caption files answered from the fixture), its
    dataset class, loader and metric, for one language."""
    import torch
    from clip_benchmark.datasets import xtd10
    from clip_benchmark.datasets.builder import build_dataset, get_dataset_collate_fn
    from clip_benchmark.metrics import zeroshot_retrieval

    monkeypatch.setattr(xtd10, "_get_lines", xtd10_lines(cb_root / "xtd10"))
    model, transform, tokenizer = _load(model_name)
    ds = build_dataset(dataset, root=str(cb_root), transform=transform, split="test", language=language,
                       task="zeroshot_retrieval")
    loader = torch.utils.data.DataLoader(ds, batch_size=BATCH_SIZE, shuffle=False, num_workers=0,
                                         collate_fn=get_dataset_collate_fn(dataset))
    return zeroshot_retrieval.evaluate(model, loader, tokenizer, "cpu", amp=False, recall_k_list=[1, 5, 10])


def test_converted_layout(sources):
    cb_root, wds, converted, _ = sources
    assert [(c.name, c.samples, c.languages, c.missing_images) for c in converted] == [
        ("xtd10", 13, ("de", "en", "fr", "it", "jp"), 1), ("crossmodal3600", 13, ("de", "en", "ja", "sw"), 1)]
    assert (wds / "wds_xtd10" / "dataset_type.txt").read_text() == "retrieval\n"
    with tarfile.open(wds / "wds_crossmodal3600" / "test" / "0.tar") as tar:
        members = {m.name: tar.extractfile(m).read() for m in tar.getmembers()}
    first = json.loads((cb_root / "xm3600" / "captions.jsonl").read_text("utf-8").splitlines()[0])
    assert members["s0000000.txt"].decode() == first["en"]["caption"][0]  # clip_benchmark takes the first caption
    assert members["s0000000.ja.txt"].decode() == first["ja"]["caption"][0]
    assert members["s0000000.jpg"] == (cb_root / "xm3600" / "images" / f"{first['image/key']}.jpg").read_bytes()
    assert len([n for n in members if n.endswith(".jpg")]) == 5


def test_every_language_equals_clip_benchmark_in_one_pass(sources, tmp_path, monkeypatch):
    cb_root, wds, _, models = sources
    reads = []
    real_read = evaluate.read_multilingual
    monkeypatch.setattr(evaluate, "read_multilingual", lambda *a, **k: reads.append(a[0].name) or real_read(*a, **k))
    pairs = [Pair(m, "", d, language=lang, task="zeroshot_retrieval") for m in models
             for d, langs in (("xtd10", XTD_LANGUAGES), ("crossmodal3600", XM_LANGUAGES)) for lang in langs]
    settings = RunSettings(batch_size=BATCH_SIZE, num_workers=0, precision="fp32", dataset_root=str(wds))
    report = run_shard(Manifest(shard_id="multilingual", store=str(tmp_path), pairs=tuple(pairs), settings=settings), progress=False)
    assert report.exit_code == 0, report.failed
    assert sorted(reads) == sorted(["wds_xtd10", "wds_crossmodal3600"] * len(models))  # one read per set and model
    store = open_store(tmp_path)
    values = set()
    for pair in pairs:
        ours = read_record(store.get(result_key(pair))).metrics
        theirs = _oracle(pair.model, pair.dataset, pair.language, cb_root, monkeypatch)
        assert ours == theirs, pair.label()  # equal, not close
        values.add(tuple(ours.values()))
    assert len(values) > len(pairs) // 2  # languages differ: each pair scored its own captions


def test_a_language_the_folder_lacks_fails_the_pass_with_its_name(sources, tmp_path):
    _, wds, _, models = sources
    pair = Pair(models[0], "", "xtd10", language="ko", task="zeroshot_retrieval")
    settings = RunSettings(batch_size=BATCH_SIZE, num_workers=0, dataset_root=str(wds))
    report = run_shard(Manifest(shard_id="missing", store=str(tmp_path), pairs=(pair,), settings=settings), progress=False)
    assert len(report.failed) == 1 and "has no ko captions (ko.txt)" in report.failed[0][1]
