"""The catalog: the dataset mapping is complete and unique, the model snapshot matches open_clip and its FLOPs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from openclip_benchmark import catalog
from openclip_benchmark.catalog import snapshot
from openclip_benchmark.catalog import Catalog, CatalogError, load_datasets, load_models
from openclip_benchmark.core.errors import UnknownNameError
from openclip_benchmark.tasks import task_names

ROOT = Path(__file__).resolve().parents[1]

# clip_benchmark's webdataset benchmark list (LAION-AI/CLIP_benchmark, benchmark/wds_datasets.txt) plus
# voc2007_multilabel (benchmark/dataset_type.csv); the issue adds food101 and mscoco_captions2017.
CLIP_BENCHMARK_SUITE = """
wds/mscoco_captions wds/flickr8k wds/flickr30k wds/imagenet1k wds/imagenetv2 wds/imagenet_sketch wds/imagenet-a
wds/imagenet-r wds/imagenet-o wds/objectnet wds/fer2013 wds/voc2007 wds/sun397 wds/cars wds/fgvc_aircraft wds/mnist
wds/stl10 wds/gtsrb wds/country211 wds/renderedsst2 wds/vtab/caltech101 wds/vtab/cifar10 wds/vtab/cifar100
wds/vtab/clevr_count_all wds/vtab/clevr_closest_object_distance wds/vtab/diabetic_retinopathy wds/vtab/dmlab
wds/vtab/dsprites_label_orientation wds/vtab/dsprites_label_x_position wds/vtab/dsprites_label_y_position
wds/vtab/dtd wds/vtab/eurosat wds/vtab/kitti_closest_vehicle_distance wds/vtab/flowers wds/vtab/pets wds/vtab/pcam
wds/vtab/resisc45 wds/vtab/smallnorb_label_azimuth wds/vtab/smallnorb_label_elevation wds/vtab/svhn
voc2007_multilabel food101 mscoco_captions2017
""".split()
# issue 18: the sets of DataComp's suite that clip_benchmark's lacks, from DataComp's own repos (tests/test_datacomp.py)
DATACOMP_ADDITIONS = ("winogavil", "iwildcam", "camelyon17", "fmow", "dollar_street", "geode", "fairface", "utkface")

# Published per-sample GFLOPs (image, text) from open_clip's docs/model_profile.csv (mlfoundations/open_clip).
PUBLISHED_GFLOPS = {
    "RN50": (12.22, 5.96),
    "RN50x64": (529.11, 23.55),
    "ViT-B-32": (8.82, 5.96),
    "ViT-B-16": (35.13, 5.96),
    "ViT-L-14": (162.03, 13.3),
    "ViT-L-14-336": (381.92, 13.3),
    "ViT-H-14": (334.59, 47.09),
    "ViT-bigG-14": (967.5, 97.86),
    "convnext_base_w": (40.11, 9.27),
    "EVA02-L-14": (162.0, 13.3),
    "ViT-SO400M-14-SigLIP": (220.35, 13.19),
}


@pytest.fixture(scope="module")
def datasets():
    return load_datasets()


# clip_benchmark's task families beyond its webdataset suite (SugarCrepe's 7 splits, Winoground, the 5 multilingual
# retrieval sets, Babel-ImageNet): tests/test_families_catalog.py checks them
FAMILY_DATASETS = 14


def test_mapping_covers_the_suite_once(datasets):
    keys = [Catalog(datasets, ()).canonical_dataset(name) for name in CLIP_BENCHMARK_SUITE]
    assert len(set(keys)) == len(CLIP_BENCHMARK_SUITE) == len(datasets) - len(DATACOMP_ADDITIONS) - FAMILY_DATASETS == 43
    assert Catalog(datasets, ()).canonical_dataset("vtab/cifar10") == Catalog(datasets, ()).canonical_dataset("cifar10") == "cifar10"


def test_every_entry_is_complete_and_unique(datasets):
    assert len({s.wds_name for s in datasets.values()}) == len(datasets)
    aliases = {}
    for spec in datasets.values():
        for alias in (catalog._alias(spec.name), catalog._alias(spec.wds_name)):
            assert aliases.setdefault(alias, spec.name) == spec.name, f"{alias} names two datasets"
    suite = {Catalog(datasets, ()).canonical_dataset(name) for name in CLIP_BENCHMARK_SUITE}
    for spec in (datasets[name] for name in suite):
        assert spec.task in task_names() and spec.split == "test" and spec.size > 0
        assert spec.wds_name.startswith("wds_") and "/" not in spec.wds_name
        if spec.name in DATACOMP_ADDITIONS:
            continue  # DataComp's own sources and metrics: tests/test_datacomp.py
        assert spec.url == "https://huggingface.co/datasets/clip-benchmark/" + spec.wds_name
        assert "en" in spec.languages and spec.collections
        if spec.task == "zeroshot_retrieval":
            assert spec.captions_per_image and spec.num_classes is None
            assert spec.metric in ("image_retrieval_recall@5", "text_retrieval_recall@5")
        elif spec.task == "multilabel":
            assert spec.num_classes and spec.metric == "mean_average_precision"
        else:
            assert spec.num_classes and spec.metric in ("acc1", "mean_per_class_recall")


def test_tasks_metrics_and_sizes_match_the_standard(datasets):
    retrieval = {n for n, s in datasets.items() if s.task == "zeroshot_retrieval" and "multilingual" not in s.collections}
    assert retrieval == {"mscoco_captions", "mscoco_captions2017", "flickr30k", "flickr8k"}
    assert datasets["voc2007_multilabel"].task == "multilabel"
    per_class = {n for n, s in datasets.items() if s.metric == "mean_per_class_recall"}
    assert per_class == {"caltech101", "fgvc_aircraft", "flowers", "pets"}
    assert (datasets["imagenet1k"].size, datasets["imagenet1k"].num_classes) == (50000, 1000)
    assert (datasets["cifar100"].size, datasets["cifar100"].num_classes) == (10000, 100)
    assert json.loads((ROOT / "dataset_mapping.json").read_text())["source"]


def test_languages_are_the_ones_clip_benchmark_ships(datasets):
    import clip_benchmark.datasets as cbd

    folder = Path(cbd.__file__).parent
    for spec in (s for s in datasets.values() if s.task == "zeroshot_classification"):
        for lang in spec.languages:
            classnames = json.loads((folder / f"{lang}_classnames.json").read_text(encoding="utf-8"))
            templates = json.loads((folder / f"{lang}_zeroshot_classification_templates.json").read_text(encoding="utf-8"))
            if lang != "en":
                assert spec.name in classnames and spec.name in templates
    assert set(datasets["imagenet1k"].languages) > {"en"}
    assert "imagenet1k" in Catalog(datasets, ()).collections()["multilingual"]


@pytest.mark.parametrize(
    "spelling", ["wds/vtab/pets", "wds_vtab-pets", "vtab/pets", "vtab-pets", "wds/vtab-pets", "pets"]
)
def test_canonical_dataset_spellings(spelling):
    assert Catalog(load_datasets(), ()).canonical_dataset(spelling) == "pets"


def test_unknown_dataset_suggests_close_names():
    with pytest.raises(UnknownNameError, match="did you mean cifar10"):
        Catalog(load_datasets(), ()).canonical_dataset("cifar11")


def test_select_datasets_by_collection_glob_and_name(datasets):
    names = lambda sel: [s.name for s in Catalog(datasets, ()).select_datasets(sel)]  # noqa: E731
    assert len(names(["vtab"])) == 20
    assert set(names(["imagenet_robustness"])) == {"imagenetv2", "imagenet_sketch", "imagenet-a", "imagenet-r", "imagenet-o", "objectnet"}
    assert names(["retrieval", "flickr*"]) == ["mscoco_captions", "mscoco_captions2017", "flickr30k", "flickr8k",
                                               "flickr30k-200"]
    assert names(["wds/vtab/cifar10", "cifar10"]) == ["cifar10"]
    assert len(names(None)) == 43 + len(DATACOMP_ADDITIONS) + FAMILY_DATASETS
    with pytest.raises(CatalogError, match="no dataset matches"):
        names(["zzz*"])
    with pytest.raises(UnknownNameError, match="did you mean retrieval"):
        names(["retreival"])


def _write_mapping(tmp_path, datasets):
    path = tmp_path / "mapping.json"
    path.write_text(json.dumps({"datasets": datasets}))
    return path


@pytest.mark.parametrize(
    "entries, message",
    [
        ({"a": {"wds_name": "wds_a", "task": "zeroshot_classification", "metric": "acc1"}}, "lacks 'size'"),
        ({"a": {"wds_name": "wds_a", "task": "vqa", "size": 3, "metric": "acc1"}}, "unknown task"),
        ({"a": {"wds_name": "wds_a", "task": "multilabel", "size": 3, "metric": "m", "colour": 1}}, "unknown field"),
        (
            {
                "a": {"wds_name": "wds_x", "task": "multilabel", "size": 3, "metric": "m"},
                "b": {"wds_name": "wds_x", "task": "multilabel", "size": 3, "metric": "m"},
            },
            "same webdataset",
        ),
        ({}, "non-empty"),
    ],
)
def test_bad_mapping_files_are_refused(tmp_path, entries, message):
    with pytest.raises(CatalogError, match=message):
        load_datasets(_write_mapping(tmp_path, entries))


def test_mapping_defaults_and_unreadable_file(tmp_path):
    path = _write_mapping(tmp_path, {"fixture_cls": {"wds_name": "wds_fixture_cls", "task": "zeroshot_classification", "size": 24, "metric": "acc1"}})
    spec = load_datasets(path)["fixture_cls"]
    assert (spec.split, spec.languages, spec.url) == ("test", ("en",), catalog.HF_DATASETS_URL + "wds_fixture_cls")
    (tmp_path / "broken.json").write_text("{")
    with pytest.raises(CatalogError, match="not valid JSON"):
        load_datasets(tmp_path / "broken.json")
    with pytest.raises(CatalogError, match="does not exist"):
        load_datasets(tmp_path / "missing.json")


# ---------------------------------------------------------------- models


@pytest.fixture(scope="module")
def models():
    return load_models()


def test_snapshot_lists_every_open_clip_pretrained_model(models):
    import open_clip

    assert [(m.arch, m.pretrained) for m in models] == [tuple(p) for p in open_clip.list_pretrained()]
    assert len(models) == 196
    snapshot = json.loads(catalog.MODELS_PATH.read_text())
    assert snapshot["open_clip_version"] == open_clip.__version__


def test_snapshot_fields_are_filled(models):
    for m in models:
        assert m.image_gflops > 0 and m.image_params > 0 and m.image_size >= 64 and m.embed_dim > 0
        assert m.text_gflops > 0 and m.params == m.image_params + m.text_params and m.context_length > 0
        assert len(m.mean) == len(m.std) == 3 and m.interpolation in ("bicubic", "bilinear") and m.resize_mode
    siglip = catalog.load_catalog().find_model("ViT-SO400M-14-SigLIP-384", "webli")
    assert (siglip.mean, siglip.resize_mode, siglip.image_size, siglip.context_length) == ((0.5, 0.5, 0.5), "squash", 384, 64)


def test_gflops_match_open_clip_published_profile(models):
    index = {m.arch: m for m in models}
    assert len(PUBLISHED_GFLOPS) >= 10
    for arch, (image, text) in PUBLISHED_GFLOPS.items():
        m = index[arch]
        assert m.image_gflops == pytest.approx(image, rel=0.10), arch
        assert m.text_gflops == pytest.approx(text, rel=0.10), arch


def test_hugging_face_text_towers_match_published_parameter_counts(models):
    """Counted offline from HF_TEXT_CONFIGS; open_clip's profile gives total and text million parameters."""
    published = {
        "roberta-ViT-B-32": (212.72, 124.87),
        "xlm-roberta-base-ViT-B-32": (366.12, 278.27),
        "xlm-roberta-large-ViT-H-14": (1193.01, 560.94),
        "nllb-clip-base": (501.89, 414.04),
        "nllb-clip-large": (1399.22, 767.14),
    }
    index = {m.arch: m for m in models}
    for arch, (total, text) in published.items():
        assert index[arch].params / 1e6 == pytest.approx(total, abs=0.01), arch
        assert index[arch].text_params / 1e6 == pytest.approx(text, abs=0.01), arch


def test_build_reproduces_the_snapshot_for_small_architectures(models):
    archs = ("RN50", "ViT-B-32", "roberta-ViT-B-32")  # roberta: a Hugging Face text tower, counted on the CPU
    built = snapshot.build_model_catalog(archs=archs)
    expected = [m for m in models if m.arch in archs]
    assert built == expected
    with pytest.raises(UnknownNameError):
        snapshot.build_model_catalog(archs=["ViT-B-33"])


def test_find_model_and_families():
    assert catalog.load_catalog().find_model("ViT-B-32", "openai").image_size == 224
    assert catalog.load_catalog().find_model("local-dir:/x", "") is None
    families = {a: catalog.model_family(a) for a in ("ViT-B-32", "ViT-bigG-14-CLIPA", "RN50x4", "convnext_base_w", "EVA02-L-14", "coca_ViT-L-14", "local-dir:/m")}
    assert families == {
        "ViT-B-32": "ViT-B", "ViT-bigG-14-CLIPA": "ViT-bigG", "RN50x4": "ResNet", "convnext_base_w": "ConvNeXt",
        "EVA02-L-14": "EVA", "coca_ViT-L-14": "CoCa", "local-dir:/m": "custom",
    }


def test_select_models(models):
    select = lambda *p: Catalog({}, tuple(models)).select_models(list(p))  # noqa: E731
    assert select("ViT-B-32:openai") == [("ViT-B-32", "openai")]
    assert ("RN50", "openai") in select("openai") and all(t == "openai" for _, t in select("openai"))
    assert all(a.startswith("ViT-B-") for a, _ in select("ViT-B-*")) and len(select("ViT-B-*")) > 20
    assert {a for a, _ in select("ViT-L")} >= {"ViT-L-14", "ViT-L-14-336"}
    assert select("ViT-B-32") == [("ViT-B-32", t) for a, t in ((m.arch, m.pretrained) for m in models) if a == "ViT-B-32"]
    assert select("local-dir:/m", "hf-hub:org/repo", "ViT-B-16:/ckpt/epoch_32.pt") == [
        ("local-dir:/m", ""), ("hf-hub:org/repo", ""), ("ViT-B-16", "/ckpt/epoch_32.pt"),
    ]
    assert len(select()) == 196
    with pytest.raises(UnknownNameError, match="did you mean ViT-B-32"):
        select("ViT-B-33")
    with pytest.raises(CatalogError, match="no model matches"):
        select("nothing-*")


def test_enumerate_pairs_languages(datasets):
    chosen = [datasets["imagenet1k"], datasets["cifar10"], datasets["flickr30k"]]
    pairs = catalog.enumerate_pairs([("ViT-B-32", "openai")], chosen)
    assert [(p.dataset, p.language, p.task) for p in pairs] == [
        ("imagenet1k", "en", "zeroshot_classification"),
        ("cifar10", "en", "zeroshot_classification"),
        ("flickr30k", "en", "zeroshot_retrieval"),
    ]
    jp = catalog.enumerate_pairs([("ViT-B-32", "openai")], chosen, ["jp"])
    assert [(p.dataset, p.language) for p in jp] == [("imagenet1k", "jp")]


def test_installed_package_finds_its_packaged_mapping(tmp_path, monkeypatch):
    """In a wheel there is no repo root: the copy hatch force-includes next to the package is used."""
    package = tmp_path / "site-packages" / "openclip_benchmark"
    package.mkdir(parents=True)
    monkeypatch.setattr(catalog, "PACKAGE_DIR", package)
    with pytest.raises(CatalogError, match="not found"):
        catalog.mapping_path()
    (package / "dataset_mapping.json").write_bytes((ROOT / "dataset_mapping.json").read_bytes())
    assert catalog.mapping_path() == package / "dataset_mapping.json"
    assert len(load_datasets()) == 43 + len(DATACOMP_ADDITIONS) + FAMILY_DATASETS
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert '"dataset_mapping.json" = "openclip_benchmark/dataset_mapping.json"' in pyproject


def test_a_loaded_model_is_counted_as_the_catalog_counts_it():
    """What the worker records for models the catalog lacks equals the catalog's own count (ViT-B-32)."""
    import open_clip

    from openclip_benchmark.evaluate import LoadedModel, model_profile

    net = open_clip.create_model("ViT-B-32", pretrained=None)
    counted = model_profile(LoadedModel(("ViT-B-32", ""), net, None, None, "cpu", "fp32"))
    spec = catalog.load_catalog().find_model("ViT-B-32", "openai")
    assert (counted["image_gflops"], counted["text_gflops"]) == pytest.approx((spec.image_gflops, spec.text_gflops), abs=0.01)
    assert (counted["params"], counted["image_params"], counted["image_size"]) == (spec.params, spec.image_params, 224)
