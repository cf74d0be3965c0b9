"""The worker and the `run` / `worker` commands, on tiny fixture models and datasets (real open_clip, real clip_benchmark)."""

from __future__ import annotations

import json
import socket
from dataclasses import replace
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fixtures import SUITE_CLASSES, TEMPLATES, make_classification_wds, make_retrieval_wds, make_suite
from loopback_hub import Hub
from openclip_benchmark.catalog import CatalogError, load_catalog
from openclip_benchmark.cli import app
from openclip_benchmark.core.errors import BenchmarkError
from openclip_benchmark.core.manifest import Manifest, RunSettings, dataset_entries
from openclip_benchmark.core.pair import Pair, Preprocess
from openclip_benchmark.core.records import Failure, read_record
from openclip_benchmark.storage.store import TRANSIENT_EXIT_CODE, open_store
from openclip_benchmark.tracker import Tracker, open_tracker
from openclip_benchmark.worker import EXIT_PAIRS_FAILED, dataset_specs, load_manifest, run_shard
from openclip_benchmark.storage.layout import failure_key, manifest_key, result_key, samples_key

CLASSIFICATION_KEYS = {"acc1", "acc5", "mean_per_class_recall"}
RETRIEVAL_KEYS = {f"{side}_retrieval_recall@{k}" for side in ("image", "text") for k in (1, 5, 10)}


@pytest.fixture(scope="module")
def suite(tmp_path_factory):
    return make_suite(tmp_path_factory.mktemp("suite"))


def suite_pairs(suite, preprocess=Preprocess()):
    return [Pair(m, "", d, task=t, preprocess=preprocess) for m in suite.models for d, t in suite.tasks.items()]


def shard(suite, store, pairs, shard_id="test-shard", **settings):
    settings = {"batch_size": 16, "num_workers": 0, "dataset_root": str(suite.root), **settings}
    return Manifest(shard_id=shard_id, store=str(store), pairs=tuple(pairs), settings=RunSettings(**settings))


def test_shard_writes_every_result_then_skips_them(suite, tmp_path):
    sweep = Pair(suite.models[0], "", "imagenet1k", preprocess=Preprocess(image_size=48))
    pairs = suite_pairs(suite) + [sweep]
    store = open_store(tmp_path / "results")
    report = run_shard(shard(suite, tmp_path / "results", pairs), progress=False)
    assert report.exit_code == 0 and report.failed == [] and set(report.succeeded) == set(pairs)

    for pair in pairs:
        raw = json.loads(store.get(result_key(pair)))
        assert {"dataset", "model", "pretrained", "task", "metrics", "language"} <= set(raw)  # clip_benchmark build
        record = read_record(json.dumps(raw))
        assert record.pair == pair
        expected = {"zeroshot_classification": CLASSIFICATION_KEYS, "multilabel": {"mean_average_precision"},
                    "zeroshot_retrieval": RETRIEVAL_KEYS}[pair.task]
        assert set(record.metrics) == expected and all(v is not None for v in record.metrics.values())
        run = record.run
        assert (run.device, run.precision, run.batch_size, run.num_samples) == ("cpu", "fp32", 16, 24)
        assert run.images_per_s > 0 and run.seconds > 0 and run.attempt == 1
        assert run.shard_id == "test-shard" and run.gpu_name == ""
        assert set(run.versions) == {"torch", "open_clip", "clip_benchmark", "openclip_benchmark", "python"}
    assert json.loads(store.get(result_key(sweep)))["preprocess"] == {"image_size": 48}
    base = read_record(store.get(result_key(pairs[0]))).metrics
    assert read_record(store.get(result_key(sweep))).metrics != base  # 48 px really ran at 48 px

    before = {info.key: info.etag for info in store.list()}
    again = run_shard(shard(suite, tmp_path / "results", pairs), progress=False)
    assert again.exit_code == 0 and again.records == [] and set(again.skipped) == set(pairs)
    assert {info.key: info.etag for info in store.list()} == before


def test_classifier_columns_equal_clip_benchmarks_and_are_reused(suite):
    import torch
    from clip_benchmark.metrics.zeroshot_classification import zero_shot_classifier

    from openclip_benchmark.evaluate import ClassifierCache, load_model

    loaded = load_model(suite.models[0], "", Preprocess(), "cpu", "fp32")
    classes, templates = list(SUITE_CLASSES), list(TEMPLATES)
    cache = ClassifierCache()
    full = cache.classifier(loaded, classes, templates)
    assert torch.equal(full, zero_shot_classifier(loaded.model, loaded.tokenizer, classes, templates, "cpu", amp=False))
    subset = classes[4:0:-1]  # like imagenet-r's 200 of imagenet's 1000 classes
    assert torch.equal(cache.classifier(loaded, subset, templates),
                       zero_shot_classifier(loaded.model, loaded.tokenizer, subset, templates, "cpu", amp=False))
    assert (cache.misses, cache.hits) == (len(classes), len(subset))
    amp = replace(loaded, precision="amp")  # clip_benchmark's default autocast (bf16 on CPU) gets its own columns
    assert torch.equal(cache.classifier(amp, classes, templates),
                       zero_shot_classifier(loaded.model, loaded.tokenizer, classes, templates, "cpu", amp=True))
    assert cache.misses == 2 * len(classes)


def test_datasets_with_the_same_classes_share_one_classifier(suite, tmp_path):
    make_classification_wds(suite.root, "imagenetv2", n=12, classes=SUITE_CLASSES, seed=7)
    make_classification_wds(suite.root, "imagenet-r", n=12, classes=SUITE_CLASSES[1:4], seed=8)
    datasets = ["imagenet1k", "imagenetv2", "imagenet-r"]
    report = run_shard(shard(suite, tmp_path, [Pair(suite.models[1], "", d) for d in datasets]), progress=False)
    assert report.exit_code == 0
    assert [r.pair.dataset for r in report.records] == datasets
    assert [r.run.classifier_cached for r in report.records] == [False, True, True]
    assert [r.run.num_samples for r in report.records] == [24, 12, 12]


def test_failures_are_recorded_and_the_shard_moves_on(suite, tmp_path):
    model = suite.models[0]
    broken = [
        Pair(f"local-dir:{tmp_path / 'missing-model'}", "", "imagenet1k"),  # cannot load
        Pair(model, "", "no_such_dataset"),  # no folder under the dataset root
        Pair(model, "", "imagenet1k", task="zeroshot_retrieval"),  # the folder holds classification data
    ]
    good = Pair(model, "", "voc2007_multilabel", task="multilabel")
    store = open_store(tmp_path)
    report = run_shard(shard(suite, tmp_path, broken + [good]), progress=False)
    assert report.exit_code == EXIT_PAIRS_FAILED
    assert report.succeeded == [good] and [p for p, _ in report.failed] == broken
    stages = [json.loads(store.get(failure_key(p)))["stage"] for p in broken]
    assert stages == ["load_model", "dataset", "dataset"]
    for pair in broken:
        record = read_record(store.get(failure_key(pair)))
        assert isinstance(record, Failure) and record.pair == pair and record.attempt == 1
        assert not store.exists(result_key(pair))
    assert "holds classification data" in read_record(store.get(failure_key(broken[2]))).error.message

    again = run_shard(shard(suite, tmp_path, broken + [good]), progress=False)
    assert again.skipped == [good]
    assert [read_record(store.get(failure_key(p))).attempt for p in broken] == [2, 2, 2]


def test_worker_command_runs_a_manifest_from_the_bucket(suite, s3_bucket, monkeypatch):
    pair = Pair(suite.models[1], "", "voc2007_multilabel", task="multilabel")
    manifest = shard(suite, f"s3://{s3_bucket}/results", [pair], shard_id="s3-shard")
    open_store(f"s3://{s3_bucket}/results").put(manifest_key(manifest.shard_id), manifest.to_json().encode())
    monkeypatch.setenv("MANIFEST_URL", f"s3://{s3_bucket}/results/{manifest_key(manifest.shard_id)}")
    result = CliRunner().invoke(app, ["worker", "--no-progress"])
    assert result.exit_code == 0, result.output
    record = read_record(open_store(f"s3://{s3_bucket}/results").get(result_key(pair)))
    assert record.pair == pair and record.run.shard_id == "s3-shard"


def test_unreachable_store_ends_the_shard_with_the_transient_code(suite, tmp_path, s3_env):
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    path = tmp_path / "manifest.json"
    path.write_text(shard(suite, "unused", [Pair(suite.models[0], "", "imagenet1k")]).to_json())
    result = CliRunner().invoke(app, ["worker", "--manifest", str(path), "--store", "s3://bucket/results",
                                      "--endpoint-url", f"http://127.0.0.1:{port}", "--no-progress"])
    assert result.exit_code == TRANSIENT_EXIT_CODE, result.output


def test_run_command_sweeps_image_sizes_and_updates_the_tracker(suite, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with open_tracker("results.csv", create=True):
        pass
    args = ["run", "--models", suite.models[0], "--datasets", "imagenet1k,voc2007_multilabel",
            "--dataset-root", str(suite.root), "--image-size", "32,48", "--batch-size", "16", "--num-workers", "2"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "4 succeeded, 0 failed" in result.output
    entries = list(Tracker.load("results.csv"))
    assert len(entries) == 4 and {e.status for e in entries} == {"succeeded"}
    assert {e.pair.preprocess.image_size for e in entries} == {32, 48}
    assert {e.pair.task for e in entries} == {"zeroshot_classification", "multilabel"}
    assert all(open_store("results").exists(result_key(e.pair)) for e in entries)

    rerun = CliRunner().invoke(app, args)
    assert rerun.exit_code == 0 and "0 succeeded, 0 failed, 4 already done" in rerun.output


def test_run_selects_local_datasets_with_the_task_their_folder_holds(suite):
    from openclip_benchmark.cli.run import preprocess_variants
    from openclip_benchmark.pipeline.run import select_pairs

    make_retrieval_wds(suite.root, "my_captions", n=12)
    sweep = preprocess_variants("160,224", "0.5,0.5,0.5", None, "bilinear", None)
    pairs = select_pairs(load_catalog(), [suite.models[0]], ["my_captions", "imagenet1k"], ["en"], sweep, str(suite.root), None, "unused")
    assert {(p.dataset, p.task, p.preprocess.image_size) for p in pairs} == {
        ("my_captions", "zeroshot_retrieval", 160), ("my_captions", "zeroshot_retrieval", 224),
        ("imagenet1k", "zeroshot_classification", 160), ("imagenet1k", "zeroshot_classification", 224)}
    assert {(p.preprocess.mean, p.preprocess.interpolation) for p in pairs} == {((0.5, 0.5, 0.5), "bilinear")}
    forced = select_pairs(load_catalog(), [suite.models[0]], ["my_captions"], ["en"], [Preprocess()], str(suite.root), "multilabel", "x")
    assert [p.task for p in forced] == ["multilabel"]  # --task names the task of datasets the catalog lacks


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--datasets", "imagenet1q"], "unknown dataset"),
        (["--datasets", "imagenet1k", "--mean", "0.5,0.5"], "mean needs three numbers"),
        (["--datasets", "imagenet1k", "--image-size", "224,big"], "--image-size must be comma-separated numbers"),
        (["--datasets", "imagenet1k", "--precision", "fp8"], "precision must be one of"),
        (["--datasets", "imagenet1k", "--interpolation", "nearest"], "interpolation must be one of"),
    ],
)
def test_run_command_rejects_bad_input_in_one_line(tmp_path, extra, message):
    result = CliRunner().invoke(app, ["run", "--models", "ViT-B-32:openai", "--store", str(tmp_path), *extra])
    assert result.exit_code == 2 and message in result.output, result.output
    assert "Traceback" not in result.output and list(tmp_path.iterdir()) == []


def test_load_manifest_refuses_what_it_cannot_read(tmp_path):
    with pytest.raises(BenchmarkError, match="cannot read manifest"):
        load_manifest(str(tmp_path / "absent.json"))
    with pytest.raises(BenchmarkError, match="s3://bucket/key"):
        load_manifest("s3://only-a-bucket")
    (tmp_path / "bad.json").write_text('{"schema": "something else"}')
    with pytest.raises(BenchmarkError, match="invalid manifest"):
        load_manifest(str(tmp_path / "bad.json"))


def test_clip_benchmark_accuracy_runs_with_the_installed_numpy():
    """clip_benchmark 1.6.2's accuracy() calls float() on a 1-element array, which numpy >= 2.4 refuses."""
    import torch
    from clip_benchmark.metrics.zeroshot_classification import accuracy

    logits = torch.tensor([[0.1, 0.9, 0.0], [0.8, 0.2, 0.0], [0.0, 0.3, 0.7]])
    assert accuracy(logits, torch.tensor([1, 1, 2]), topk=(1, 2)) == [2 / 3, 1.0]


def test_a_shard_writes_one_bundle_of_its_records_and_sync_needs_only_that_get(suite, s3_bucket, tmp_path):
    from openclip_benchmark.storage.bundle import read_bundle
    from openclip_benchmark.storage.layout import BUNDLE_PREFIX
    from openclip_benchmark.storage.store import LocalStore, StoreError
    from openclip_benchmark.storage.sync import open_source, sync_results

    model = suite.models[0]
    good = [Pair(model, "", "imagenet1k"), Pair(model, "", "voc2007_multilabel", task="multilabel")]
    broken = Pair(model, "", "no_such_dataset")
    url = f"s3://{s3_bucket}/results"
    report = run_shard(shard(suite, url, good + [broken]), progress=False)
    assert report.exit_code == EXIT_PAIRS_FAILED
    store = open_source(url, workers=4)
    bundles = [info.key for info in store.list(BUNDLE_PREFIX)]
    assert bundles == [report.bundle_key]
    offered = read_bundle(store.get(report.bundle_key))
    samples = {samples_key(result_key(p)) for p in good}  # every result has its per-sample outcomes beside it
    assert set(offered) == {result_key(p) for p in good} | {failure_key(broken)} | samples
    assert all(list(versions.values()) == [store.get(key)] for key, versions in offered.items())

    gets = []
    store.client.meta.events.register("provide-client-params.s3.GetObject", lambda params, **_: gets.append(params["Key"]))
    synced = sync_results(store, tmp_path / "mirror", workers=4)
    assert gets == [f"results/{report.bundle_key}"] and synced.from_bundles == 5 and synced.failures == 1
    assert synced.samples == 2
    assert all((tmp_path / "mirror" / key).read_bytes() == store.get(key) for key in offered)

    class NoBundles(LocalStore):  # a store that takes results but refuses the bundle
        def put(self, key, data):
            if key.startswith(BUNDLE_PREFIX):
                raise StoreError("bundle put refused")
            super().put(key, data)

    local = NoBundles(tmp_path / "local")
    again = run_shard(shard(suite, tmp_path / "local", good[:1]), store=local, progress=False)
    assert again.exit_code == 0 and again.bundle_key == "" and again.succeeded == good[:1]
    assert local.exists(result_key(good[0])) and not (tmp_path / "local" / "_bundles").exists()


def test_other_languages_take_clip_benchmarks_own_class_names_and_templates():
    """A webdataset only carries English prompts: a `jp` pair must not be scored with them under a `jp` label."""
    import clip_benchmark.datasets

    from openclip_benchmark.evaluate import EncodedDataset
    from openclip_benchmark.tasks.zeroshot_classification import class_prompts

    folder = Path(clip_benchmark.datasets.__file__).parent
    jp_names = json.loads((folder / "jp_classnames.json").read_text("utf-8"))["imagenet1k"]
    jp_templates = json.loads((folder / "jp_zeroshot_classification_templates.json").read_text("utf-8"))["imagenet1k"]
    encoded = EncodedDataset("classification", [f"class {i}" for i in range(1000)], ["a photo of a {c}."])
    assert class_prompts(Pair("m", "", "imagenet1k"), encoded) == (encoded.classnames, encoded.templates)
    assert class_prompts(Pair("m", "", "imagenet1k", language="jp"), encoded) == (jp_names, jp_templates)
    with pytest.raises(BenchmarkError, match="no 'jp' class names"):
        class_prompts(Pair("m", "", "cifar10", language="jp"), encoded)
    with pytest.raises(BenchmarkError, match="1000"):
        class_prompts(Pair("m", "", "imagenet1k", language="jp"), EncodedDataset("classification", ["a", "b"], ["{c}"]))


def test_manifest_carries_dataset_specs(tmp_path):
    """A job without the user's mapping file still knows its datasets: the specs travel in the manifest, validated
    on the way back; a manifest that carries none falls back to no process-wide mapping."""
    cat = load_catalog()
    spec = replace(cat.datasets["cifar10"], name="my_set", wds_name="wds_my_set", size=7)
    pairs = (Pair("A", "t", "my_set", task=spec.task),)
    back = Manifest.from_json(Manifest(shard_id="s", store=str(tmp_path), pairs=pairs,
                                       datasets=dataset_entries({"my_set": spec})).to_json())
    assert dataset_specs(back) == {"my_set": spec}
    old = json.loads(Manifest(shard_id="s", store=str(tmp_path), pairs=pairs).to_json())
    del old["datasets"]
    assert dataset_specs(Manifest.from_json(json.dumps(old))) == {}
    old["datasets"] = {"my_set": {"wds_name": "wds_my_set", "task": "nonsense", "size": 1, "metric": "acc1"}}
    with pytest.raises(CatalogError, match="unknown task"):
        dataset_specs(Manifest.from_json(json.dumps(old)))


def test_a_weights_download_the_hub_fails_ends_the_shard_with_the_transient_code(suite, tmp_path, monkeypatch):
    """An `hf-hub:` model from a loopback Hub that answers 503, then 429, then is gone (a closed port): each run exits
    with the transient code (SkyPilot's recovery runs it again) and its failure record says why, never a result of
    random weights (open_clip's own fallback); once the Hub is back the same manifest succeeds."""
    from huggingface_hub import constants

    folder = Path(suite.models[0].removeprefix("local-dir:"))
    pair = Pair("hf-hub:org/tiny", "", "imagenet1k")
    path = tmp_path / "manifest.json"
    path.write_text(shard(suite, tmp_path / "results", [pair], cache_dir=str(tmp_path / "cache")).to_json())
    store = open_store(tmp_path / "results")

    def worker(endpoint: str):  # what HF_ENDPOINT sets when huggingface_hub is imported
        monkeypatch.setattr(constants, "ENDPOINT", endpoint)
        monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE", endpoint + "/{repo_id}/resolve/{revision}/{filename}")
        return CliRunner().invoke(app, ["worker", "--manifest", str(path), "--no-progress"])

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        gone = f"http://127.0.0.1:{s.getsockname()[1]}"
    with Hub({p.name: p.read_bytes() for p in folder.iterdir()}, "org/tiny", repo_type="model") as hub:
        for endpoint, status, why in ((hub.endpoint(), "503", "HTTP 503"), (hub.endpoint(), "429", "HTTP 429"),
                                      (gone, None, "connection")):
            hub.faults = {"open_clip_pytorch_model.bin": [status] * 10} if status else {}
            result = worker(endpoint)
            assert result.exit_code == TRANSIENT_EXIT_CODE, result.output
            record = read_record(store.get(failure_key(pair)))
            assert record.error.type == "TransientDownloadError" and why in record.error.message, record.error
            assert not store.exists(result_key(pair))
        hub.faults = {}
        assert worker(hub.endpoint()).exit_code == 0
        assert "/org/tiny/resolve/main/open_clip_pytorch_model.bin" in [p for m, p, _ in hub.requests if m == "GET"]
    assert read_record(store.get(result_key(pair))).pair == pair
