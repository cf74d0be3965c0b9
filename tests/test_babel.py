"""Babel-ImageNet: each language's classes and templates on ImageNet's validation webdataset (encoded once for every
language) give clip_benchmark's numbers (its `babel_imagenet` dataset on torchvision's ImageNet folder, its zero-shot
classification), to the bit in fp32."""

from __future__ import annotations

import pytest

from family_fixtures import make_imagenet_val
from fixtures import make_tiny_model
from openclip_benchmark import evaluate
from openclip_benchmark.core.manifest import Manifest, RunSettings
from openclip_benchmark.core.pair import Pair
from openclip_benchmark.core.records import read_record
from openclip_benchmark.planning.plan import ModelIndex, pair_work
from openclip_benchmark.storage.layout import result_key
from openclip_benchmark.storage.store import open_store
from openclip_benchmark.tasks import babel_imagenet, canonical_task
from openclip_benchmark.worker import run_shard

BATCH_SIZE = 64
LANGUAGES = ("om", "xh")  # the two with the fewest classes (18, 35): their classifiers are quick to build


@pytest.fixture(scope="module")
def imagenet(tmp_path_factory):
    root = tmp_path_factory.mktemp("babel")
    val, wds = make_imagenet_val(root / "imagenet", root / "wds")
    (root / "wds" / "wds_babel_imagenet").symlink_to(wds, target_is_directory=True)  # the catalog's folder name
    return val, root / "wds", make_tiny_model(root, "tiny", seed=2)


def _oracle(model_name, language, val):
    import torch
    from clip_benchmark.datasets.builder import build_dataset
    from clip_benchmark.metrics import zeroshot_classification
    from clip_benchmark.models import load_clip

    model, transform, tokenizer = load_clip("open_clip", model_name, "", None, device="cpu")
    model.eval()
    ds = build_dataset("babel_imagenet", root=str(val), transform=transform, split="test", language=language)
    loader = torch.utils.data.DataLoader(ds, batch_size=BATCH_SIZE, shuffle=False, num_workers=0)
    return zeroshot_classification.evaluate(model, loader, tokenizer, ds.classes, ds.templates, "cpu", amp=False)


def test_babel_equals_clip_benchmark(imagenet, tmp_path, monkeypatch):
    val, wds, model = imagenet
    passes = []
    real = evaluate.encode_dataset
    monkeypatch.setattr(evaluate, "encode_dataset", lambda *a, **k: passes.append(a[1]) or real(*a, **k))
    pairs = [Pair(model, "", "babel_imagenet", language=lang, task="babel_zeroshot_classification")
             for lang in LANGUAGES]
    settings = RunSettings(batch_size=BATCH_SIZE, num_workers=0, precision="fp32", dataset_root=str(wds))
    report = run_shard(Manifest(shard_id="babel", store=str(tmp_path), pairs=tuple(pairs), settings=settings), progress=False)
    assert report.exit_code == 0, report.failed
    assert len(passes) == 1  # the images once, for every language
    store = open_store(tmp_path)
    for pair in pairs:
        record = read_record(store.get(result_key(pair)))
        theirs = _oracle(model, pair.language, val)
        assert record.metrics == {k: pytest.approx(v, abs=0, nan_ok=True) for k, v in theirs.items()}, pair.label()
    assert [babel_imagenet.babel_classes(lang)[0][:2] for lang in LANGUAGES] != [[0, 1]] * 2


def test_babel_languages_and_prompts():
    assert len(babel_imagenet.languages()) == 90 and {"en", "de", "om", "zh"} <= set(babel_imagenet.languages())
    idxs, names, templates = babel_imagenet.babel_classes("om")
    assert (len(idxs), len(names), len(templates)) == (18, 18, 80) and all("{c}" in t for t in templates)
    work = pair_work(Pair("ViT-B-32", "openai", "babel_imagenet", language="om", task="babel_zeroshot_classification"),
                     ModelIndex([]).work("ViT-B-32", "openai"), {})
    assert work.prompts == 18 * 80 and work.classifier is None  # its own lists: no classifier shared with another pair
    # what clip_benchmark writes for it reads back as this task
    assert canonical_task("zeroshot_classification", "babel_zeroshot_classification") == "babel_zeroshot_classification"
