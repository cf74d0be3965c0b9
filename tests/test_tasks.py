"""The task registry: built-in tasks, aliases across tools, a plan that reads only the spec, and a new task that plan,
worker and parse pick up with no other change."""

from __future__ import annotations

import ast
import csv
import importlib.util
import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from openclip_benchmark import catalog, tasks
from openclip_benchmark.catalog import DatasetSpec
from openclip_benchmark.collect.parse import parse_results
from openclip_benchmark.core.errors import BenchmarkError, UnknownNameError
from openclip_benchmark.core.jsonio import atomic_write_json
from openclip_benchmark.core.manifest import Manifest, RunSettings
from openclip_benchmark.core.pair import Pair
from openclip_benchmark.core.records import make_result, read_record
from openclip_benchmark.demo import make_classification_wds, make_tiny_model
from openclip_benchmark.planning import plan, pricing
from openclip_benchmark.planning.cost import ModelIndex, pair_work
from openclip_benchmark.storage.layout import result_key
from openclip_benchmark.storage.store import open_store
from openclip_benchmark.tasks import babel_imagenet
from openclip_benchmark.tasks.zeroshot_classification import DEFAULT_TEMPLATES, classifier_group
from openclip_benchmark.worker import run_shard

PACKAGE = Path(tasks.__file__).resolve().parents[1]


def read_csv(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with open(path, newline="") as fh:
        reader = csv.DictReader(fh)
        return list(reader.fieldnames), list(reader)


def test_builtin_tasks_and_lookups():
    assert tasks.task_names()[:8] == ("zeroshot_classification", "zeroshot_retrieval", "multilabel",
                                      "zeroshot_classification_cupl", "linear_probe", "image_caption_selection",
                                      "babel_zeroshot_classification", "captioning")
    assert tasks.task_names()[8:] == ("wilds_iwildcam", "wilds_camelyon17", "wilds_fmow", "fairness_dollar_street",
                                      "fairness_geode", "fairness_faces", "winogavil")  # DataComp's (issue 18)
    assert Pair("m", "", "d").task in tasks.task_names()  # core's default names a registered task
    assert tasks.task_for_dataset_type("retrieval").name == "zeroshot_retrieval"
    assert tasks.tables() == ("classification_metrics", "retrieval_metrics", "linear_probe_metrics",
                              "selection_metrics", "captioning_metrics", "wilds_metrics", "fairness_metrics",
                              "association_metrics")
    assert tasks.table_metrics("classification_metrics") == ["acc1", "acc5", "mean_per_class_recall", "mean_average_precision"]
    with pytest.raises(UnknownNameError, match="did you mean multilabel"):
        tasks.get_task("multilabl")
    with pytest.raises(tasks.DatasetTaskError, match="unknown dataset_type.txt value 'captions'"):
        tasks.task_for_dataset_type("captions")
    ours = tasks.get_task("multilabel")
    with pytest.raises(BenchmarkError, match="registered already"):
        tasks.register_task(ours)
    with pytest.raises(BenchmarkError, match="read by task 'multilabel'"):
        tasks.register_task(replace(ours, name="other"))
    assert tasks.task_names()[-1] == "winogavil"  # neither refusal registered anything


def test_alias_maps_to_the_datasets_task_only():
    assert tasks.canonical_task("zeroshot_classification", "multilabel") == "multilabel"
    assert tasks.canonical_task("zeroshot_classification", "zeroshot_classification") == "zeroshot_classification"
    assert tasks.canonical_task("zeroshot_retrieval", "multilabel") == "zeroshot_retrieval"  # no alias: kept as written
    assert tasks.canonical_task("multilabel", None) == "multilabel"
    with pytest.raises(UnknownNameError):
        tasks.canonical_task("vqa", None)


def test_registry_imports_no_torch():
    code = "import sys, openclip_benchmark.tasks, openclip_benchmark.catalog; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def _task_comparisons(tree: ast.AST) -> list[str]:
    """`x.task == "multilabel"`, `task in ("zeroshot_classification", ...)`: a task compared with a literal name."""
    names, found = set(tasks.task_names()), []
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare):
            sides = [node.left, *node.comparators]
            literals = {c.value for side in sides for c in ast.walk(side) if isinstance(c, ast.Constant)}
            if literals & names and any("task" in ast.unparse(side) for side in sides):
                found.append(ast.unparse(node))
    return found


def test_no_task_name_is_compared_outside_the_registry():
    assert _task_comparisons(ast.parse('if pair.task == "multilabel" or task in ("zeroshot_retrieval",): pass'))
    found = {}
    for path in PACKAGE.rglob("*.py"):
        rel = path.relative_to(PACKAGE).as_posix()
        if not rel.startswith("tasks/") and (hits := _task_comparisons(ast.parse(path.read_text()))):
            found[rel] = hits
    assert found == {}


# ---------------------------------------------------------------- the plan reads only the spec


def test_template_counts_in_the_mapping_are_clip_benchmarks():
    """dataset_mapping.json's `templates` are the counts of clip_benchmark's English template set (18 where it has
    none, as the plan assumed before the counts were written down)."""
    spec = importlib.util.find_spec("clip_benchmark")
    path = Path(next(iter(spec.submodule_search_locations))) / "datasets" / "en_zeroshot_classification_templates.json"
    known = {k: len(v) for k, v in json.loads(path.read_text(encoding="utf-8")).items()}
    datasets = catalog.load_datasets()
    for name, ds in datasets.items():
        if ds.task == "babel_zeroshot_classification":  # its own template set per language, 80 each
            assert ds.templates == len(babel_imagenet.babel_classes("en")[2]) == 80
        elif tasks.get_task(ds.task).classifier(Pair("m", "", name)) is None:
            assert ds.templates is None
        else:
            assert ds.templates == (known.get(name) or known.get(classifier_group(name)) or DEFAULT_TEMPLATES), name
    assert datasets["imagenet1k"].templates == 80 and datasets["imagenet-r"].templates == 80


def _plan(pairs):
    return plan.plan_shards(pairs, models=ModelIndex(catalog.load_models()), datasets=catalog.load_datasets(),
                            gpus=pricing.load_gpus(), prices=pricing.load_prices())


def test_plan_is_the_same_without_clip_benchmark(monkeypatch):
    datasets = list(catalog.load_datasets().values())
    pairs = [Pair(m, p, d.name, task=d.task) for m, p in (("ViT-B-32", "openai"), ("ViT-L-14", "openai")) for d in datasets]
    pairs.append(Pair("ViT-B-32", "openai", "imagenet_mine"))  # not in the catalog; clip_benchmark knows an imagenet
    before = _plan(pairs)
    work = pair_work(Pair("ViT-B-32", "openai", "imagenet-a"), ModelIndex([]).work("x", "y"), catalog.load_datasets())
    assert (work.prompts, work.classifier) == (200 * 80, "imagenet1k|en")

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name.split(".")[0] == "clip_benchmark" else real_find_spec(name, *a))
    for name in [m for m in sys.modules if m.split(".")[0] == "clip_benchmark"]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "clip_benchmark", None)  # `import clip_benchmark` now fails
    with pytest.raises(ImportError):
        import clip_benchmark  # noqa: F401
    after = _plan(pairs)
    assert after == before and after.runtime_s == before.runtime_s and after.cost() == before.cost()


# ---------------------------------------------------------------- one identity across the two tools


def test_clip_benchmark_multilabel_result_and_ours_are_one_row(tmp_path):
    """clip_benchmark writes voc2007_multilabel as `zeroshot_classification`; with ours for the same model, one row."""
    results = tmp_path / "results"
    ours = Pair("ViT-B-32", "openai", "voc2007_multilabel", task="multilabel")
    atomic_write_json(results / result_key(ours), make_result(ours, {"mean_average_precision": 0.61},
                                                              {"finished": "2026-01-01T00:00:00+00:00"}))
    theirs = {  # clip_benchmark/cli.py's dump for `clip_benchmark eval --dataset wds/voc2007_multilabel`
        "dataset": "wds/voc2007_multilabel", "model": "ViT-B-32", "pretrained": "openai",
        "task": "zeroshot_classification", "metrics": {"mean_average_precision": 0.6},
        "language": "en",
    }
    atomic_write_json(results / "wds-voc2007_multilabel_openai_ViT-B-32_en_zeroshot_classification.json", theirs)
    alone = dict(theirs, model="RN50")  # clip_benchmark's only: gets the catalog's identity too
    atomic_write_json(results / "wds-voc2007_multilabel_openai_RN50_en_zeroshot_classification.json", alone)
    cifar = dict(theirs, dataset="wds/cifar10", metrics={"acc1": 0.9})  # an alias only for the dataset's own task
    atomic_write_json(results / "wds-cifar10_openai_ViT-B-32_en_zeroshot_classification.json", cifar)
    atomic_write_json(results / "caption.json", dict(theirs, task="vqa"))  # a task nobody registered

    report = parse_results(results, tmp_path / "out", catalog=catalog.load_catalog())
    assert report.results == 4 and report.duplicates == 1
    assert report.invalid == [("caption.json", "unknown task 'vqa'")]
    _, rows = read_csv(tmp_path / "out" / "classification_metrics.csv")
    assert sorted((r["model"], r["dataset"], r["task"], r["mean_average_precision"] or r["acc1"]) for r in rows) == [
        ("RN50", "voc2007_multilabel", "multilabel", "0.6"),
        ("ViT-B-32", "cifar10", "zeroshot_classification", "0.9"),
        ("ViT-B-32", "voc2007_multilabel", "multilabel", "0.61"),  # ours finished later than clip_benchmark's
    ]


# ---------------------------------------------------------------- a new task, end to end

TOY = "toy_centroid"


def _centroid_accuracy(pair, loaded, encoded, cache):
    """Share of images whose nearest class centroid (of the image features themselves) is their own class."""
    import torch

    features, labels = torch.cat(encoded.image_features).float().cpu(), torch.cat(encoded.targets)
    centroids = torch.stack([features[labels == c].mean(dim=0) for c in range(len(encoded.classnames))])
    return {"centroid_acc": (torch.cdist(features, centroids).argmin(dim=1) == labels).float().mean().item()}


@pytest.fixture
def toy_task():
    task = tasks.register_task(tasks.Task(
        name=TOY, dataset_type="toy_centroid", metrics=("centroid_acc",), main_metric="centroid_acc",
        table="toy_metrics", prompts=lambda spec, images: 0, classifier=lambda pair: None,
        evaluate=_centroid_accuracy, files=("classnames.txt",),
    ))
    yield task
    tasks.unregister_task(TOY)
    assert TOY not in tasks.task_names()


def test_a_registered_task_is_planned_run_and_parsed(toy_task, tmp_path):
    folder = make_classification_wds(tmp_path / "data", "toyset", n=12, classes=("a", "b", "c"), shards=1)
    (folder / "dataset_type.txt").write_text("toy_centroid\n")
    model = make_tiny_model(tmp_path / "models", "tiny")
    pair = Pair(model, "", "toyset", task=TOY)

    spec = DatasetSpec("toyset", "wds_toyset", folder.as_uri(), TOY, "test", 12, 3, None, "centroid_acc", (), ("en",))
    shards = plan.plan_shards([pair], models=ModelIndex([]), datasets={"toyset": spec},
                              gpus=pricing.load_gpus(), prices=pricing.load_prices()).shards
    assert [s.pairs for s in shards] == [(pair,)]
    work = pair_work(pair, ModelIndex([]).work(model, ""), {"toyset": spec})
    assert (work.images, work.prompts, work.classifier) == (12, 0, None)  # no text tower, no classifier

    store = tmp_path / "results"
    settings = RunSettings(batch_size=5, num_workers=0, dataset_root=str(tmp_path / "data"))
    report = run_shard(Manifest(shard_id=shards[0].shard_id, store=str(store), pairs=shards[0].pairs, settings=settings),
                       progress=False)
    assert report.exit_code == 0 and report.succeeded == [pair]
    record = read_record(open_store(store).get(result_key(pair)))
    value = record.metrics["centroid_acc"]
    assert set(record.metrics) == {"centroid_acc"} and 0.0 <= value <= 1.0
    assert record.run.num_samples == 12 and record.run.classifier_cached is False

    parsed = parse_results(store, tmp_path / "out", catalog=catalog.load_catalog())
    assert parsed.rows == {"classification_metrics": 0, "retrieval_metrics": 0, "linear_probe_metrics": 0,
                           "selection_metrics": 0, "captioning_metrics": 0, "wilds_metrics": 0, "fairness_metrics": 0,
                           "association_metrics": 0,
                           "toy_metrics": 1, "leaderboard": 1, "leaderboard_intervals": 1}
    columns, rows = read_csv(tmp_path / "out" / "toy_metrics.csv")
    assert columns[columns.index("preprocess") + 1] == "centroid_acc"
    assert [(r["task"], float(r["centroid_acc"])) for r in rows] == [(TOY, value)]
    _, board = read_csv(tmp_path / "out" / "leaderboard.csv")
    assert float(board[0]["toyset"]) == value  # the main metric of a dataset the catalog lacks: the task's
