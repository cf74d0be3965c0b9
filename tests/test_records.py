"""Typed records and their shipped JSON Schemas, a NaN main metric, and hostile JSON (too deep, too large).

The schemas are checked against what the models generate and against real records: a worker's output (result,
samples, failure, manifest), clip_benchmark's own result file with its bare NaN, and a plan file."""

from __future__ import annotations

import csv
import json
import sys

import jsonschema
import pytest
from typer.testing import CliRunner

from fixtures import make_classification_wds, make_tiny_model
from openclip_benchmark import schemas
from openclip_benchmark.catalog import CatalogError, load_catalog, load_datasets, load_models
from openclip_benchmark.cli import app
from openclip_benchmark.collect.parse import INTERVAL_CACHE, parse_results, read_interval_cache
from openclip_benchmark.core.errors import InvalidResultError
from openclip_benchmark.core.jsonio import MAX_DEPTH, atomic_write_json, dumps_strict, read_json
from openclip_benchmark.core.manifest import Manifest, RunSettings
from openclip_benchmark.core.pair import Pair
from openclip_benchmark.core.records import Result, read_record
from openclip_benchmark.core.samples import read_samples
from openclip_benchmark.planning import pricing
from openclip_benchmark.planning.cost import ModelIndex
from openclip_benchmark.planning.plan import plan_shards
from openclip_benchmark.planning.plan_file import PlanFile
from openclip_benchmark.storage.bundle import read_bundle
from openclip_benchmark.storage.layout import failure_key, result_key, samples_key
from openclip_benchmark.storage.store import open_store
from openclip_benchmark.pipeline.track import sync_and_track
from openclip_benchmark.storage.sync import QUARANTINE_DIR, open_source
from fixtures import synthetic_pairs, synthetic_result
from openclip_benchmark.worker import run_shard

CATALOG = load_catalog()
# 100,000 levels: Python's json gives up at its recursion limit (about 1,000), far below
DEEP = b'{"dataset": "cifar10", "model": "RN50", "metrics": {"acc1": ' + b"[" * 100_000 + b"]" * 100_000 + b"}}"


def validator(name: str) -> jsonschema.Draft202012Validator:
    schema = json.loads((schemas.FOLDER / f"{name}.json").read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


# ---------------------------------------------------------------- the shipped schemas


def test_shipped_schemas_are_what_the_models_generate():
    shipped = {p.name: p.read_text() for p in schemas.FOLDER.glob("*.json")}
    assert shipped == schemas.generate()


@pytest.fixture(scope="module")
def real_records(tmp_path_factory):
    """A worker's shard (a result with clip_benchmark's NaN acc5 written as null, its samples, a failure) and
    clip_benchmark's own result file for the same model and data, written by its `eval` in this process."""
    root = tmp_path_factory.mktemp("records")
    make_classification_wds(root, "stl10", n=12, classes=("cat", "dog", "bird"))  # 3 classes: no acc5
    model = make_tiny_model(root, "tiny")
    pairs = (Pair(model, "", "stl10"), Pair(model, "", "no_such_dataset"))
    settings = RunSettings(batch_size=8, num_workers=0, precision="fp32", dataset_root=str(root))
    manifest = Manifest(shard_id="schema-shard", store=str(root / "store"), pairs=pairs, settings=settings)
    report = run_shard(manifest, progress=False)
    assert [p.dataset for p in report.succeeded] == ["stl10"] and len(report.failed) == 1
    store = open_store(root / "store")
    from clip_benchmark.cli import get_parser_args, main_eval

    argv = ["clip_benchmark", "eval", "--model_type", "open_clip", "--pretrained_model", f"{model},",
            "--dataset", "wds/stl10", "--dataset_root", f"{root}/wds_{{dataset}}", "--task", "auto", "--no_amp",
            "--num_workers", "0", "--batch_size", "8", "--output", f"{root}/{{dataset}}.json", "--quiet"]
    saved, sys.argv = sys.argv, argv
    try:
        main_eval(get_parser_args()[1])
    finally:
        sys.argv = saved
    return {
        "result": store.get(result_key(pairs[0])),
        "samples": store.get(samples_key(result_key(pairs[0]))),
        "failure": store.get(failure_key(pairs[1])),
        "manifest": manifest.to_json().encode(),
        "bundle": store.get(report.bundle_key),
        "clip_benchmark": (root / "stl10.json").read_bytes(),
        "root": root,
    }


def test_real_records_validate_against_the_shipped_schemas(real_records):
    for name in ("result", "samples", "failure", "manifest"):
        validator(name).validate(json.loads(real_records[name]))
    ours = read_record(real_records["result"], CATALOG)
    assert isinstance(ours, Result) and ours.metrics["acc5"] is None and ours.run.num_samples == 12
    assert read_samples(real_records["samples"])[1]
    assert Manifest.from_json(real_records["manifest"]).pairs[0] == ours.pair
    assert set(read_bundle(real_records["bundle"])) >= {result_key(ours.pair)}
    plan = plan_shards([Pair("ViT-B-32", "openai", "cifar10"), Pair("RN50", "openai", "mscoco_captions",
                                                                    task="zeroshot_retrieval")],
                       models=ModelIndex(load_models()), datasets=load_datasets(), gpus=pricing.load_gpus(),
                       prices=pricing.load_prices())
    validator("plan").validate(json.loads(PlanFile.of(plan).to_json()))


def test_clip_benchmarks_own_file_with_bare_nan_validates_and_reads(real_records):
    text = real_records["clip_benchmark"]
    assert b'"acc5": NaN' in text  # json.dump()ed as clip_benchmark does
    validator("result").validate(json.loads(text))  # NaN is a JSON Schema number to Python
    theirs, ours = read_record(text, CATALOG), read_record(real_records["result"], CATALOG)
    assert theirs.pair == ours.pair and theirs.metrics == ours.metrics and theirs.run.seconds is None


def test_clip_benchmark_build_reads_our_result(real_records, tmp_path, monkeypatch):
    from clip_benchmark.cli import get_parser_args, main_build

    ours = tmp_path / "ours.json"
    ours.write_bytes(real_records["result"])
    monkeypatch.setattr(sys, "argv", ["clip_benchmark", "build", str(ours), "--output", str(tmp_path / "b.csv")])
    main_build(get_parser_args()[1])
    with open(tmp_path / "b.csv", newline="") as fh:
        (row,) = list(csv.DictReader(fh))
    assert float(row["acc1"]) == json.loads(real_records["result"])["metrics"]["acc1"] and row["dataset"] == "stl10"


def test_results_written_by_main_still_read():
    """The layout main wrote (key order, every run field, a null model profile) reads unchanged."""
    old = ('{"schema": "openclip-benchmark/result/1", "dataset": "cifar10", "model": "ViT-B-32", '
           '"pretrained": "openai", "task": "zeroshot_classification", "language": "en", '
           '"preprocess": {"image_size": 160}, "metrics": {"acc1": 0.5, "acc5": null, "mean_per_class_recall": 0.4}, '
           '"run": {"started": "2026-01-01T00:00:00+00:00", "finished": "2026-01-01T00:01:00+00:00", "seconds": 60.0, '
           '"images_per_s": 166.67, "num_samples": 10000, "device": "cuda", "gpu_name": "NVIDIA L4", '
           '"precision": "amp", "batch_size": 64, "num_workers": 4, "classifier_cached": false, "shard_id": "shard-1", '
           '"attempt": 1, "versions": {"torch": "2.9.0"}, "model_profile": null}}')
    record = read_record(old, CATALOG)
    assert record.pair.preprocess.image_size == 160 and record.run.gpu_name == "NVIDIA L4"
    rewritten = Result.model_validate(json.loads(old)).model_dump(exclude_unset=True)
    assert dumps_strict(rewritten) == dumps_strict(json.loads(old))  # same keys, same order
    future = json.loads(old)
    future["run"]["energy_joules"] = 12.5  # a field a later version adds: kept, read by no one yet
    assert read_record(json.dumps(future)).run.model_extra == {"energy_joules": 12.5}


def test_bad_settings_and_manifests_are_one_line_errors():
    with pytest.raises(InvalidResultError, match="^invalid run settings: batch_size: .*greater than or equal to 1$"):
        RunSettings(batch_size=0)
    with pytest.raises(InvalidResultError, match="^invalid run settings: precision must be one of auto, fp32, amp,"):
        RunSettings(precision="fp8")
    with pytest.raises(InvalidResultError, match="^invalid manifest: pairs: Field required$"):
        Manifest.from_json('{"schema": "openclip-benchmark/manifest/1", "shard_id": "s", "store": "x"}')


# ---------------------------------------------------------------- a NaN main metric (issue 20, fault 3)


def _nan_copy(pair: Pair) -> bytes:
    """The result with its main metric NaN and a later finish, as clip_benchmark's json.dump writes NaN."""
    good = synthetic_result(pair)
    bad = dict(good, metrics=dict(good["metrics"], acc1=float("nan")), run=dict(good["run"], finished="2099-01-01"))
    return json.dumps(bad).encode()


def test_a_nan_main_metric_is_invalid_but_clip_benchmarks_nan_acc5_is_not():
    pair = Pair("ViT-B-32", "openai", "cifar10")
    with pytest.raises(InvalidResultError, match="main metric 'acc1' is not a finite number"):
        read_record(_nan_copy(pair), CATALOG)
    nan_acc5 = json.dumps(dict(synthetic_result(pair), metrics={"acc1": 0.6, "acc5": float("nan")}))
    assert read_record(nan_acc5, CATALOG).metrics == {"acc1": 0.6, "acc5": None}
    # a dataset the catalog lacks: its task's main metric
    own = dict(synthetic_result(pair), dataset="my_own_set", metrics={"acc1": None, "acc5": 0.9})
    with pytest.raises(InvalidResultError, match="'acc1'"):
        read_record(json.dumps(own), CATALOG)


def test_parse_skips_a_nan_copy_with_a_warning_and_keeps_the_good_result(tmp_path, monkeypatch):
    pair = Pair("ViT-B-32", "openai", "cifar10")
    good = synthetic_result(pair)
    atomic_write_json(tmp_path / "results" / result_key(pair), good)
    (tmp_path / "results" / "copy" / "nan.json").parent.mkdir(parents=True)
    (tmp_path / "results" / "copy" / "nan.json").write_bytes(_nan_copy(pair))
    monkeypatch.chdir(tmp_path)
    out = CliRunner().invoke(app, ["parse", "--results", "results", "--out", "out"], env={"COLUMNS": "200"})
    assert out.exit_code == 0, out.output
    warning = "warning: skipped 'copy/nan.json': invalid result: metrics: the main metric 'acc1' is not a finite"
    assert warning in out.stderr
    with open(tmp_path / "out" / "classification_metrics.csv", newline="") as fh:
        (row,) = list(csv.DictReader(fh))
    assert float(row["acc1"]) == good["metrics"]["acc1"] and row["source"] == result_key(pair)
    with open(tmp_path / "out" / "leaderboard.csv", newline="") as fh:
        (board,) = list(csv.DictReader(fh))
    assert float(board["cifar10"]) == good["metrics"]["acc1"] and board["datasets"] == "1"


def test_sync_quarantines_a_nan_copy_and_a_deeply_nested_object(s3_bucket, s3_env, tmp_path):
    store = open_source(f"s3://{s3_bucket}/runs", workers=4)
    pairs = synthetic_pairs(3)
    for p in pairs:
        store.put(result_key(p), dumps_strict(synthetic_result(p)).encode())
    store.put("copy/nan.json", _nan_copy(pairs[0]))
    store.put("deep/nested.json", DEEP)
    report = sync_and_track(store, tmp_path / "results", tmp_path / "results.csv", workers=4, catalog=CATALOG)
    assert report.exit_code == 0 and report.results == len(pairs) and report.errors == []
    reasons = dict(report.quarantined)
    assert sorted(reasons) == ["copy/nan.json", "deep/nested.json"]
    assert "main metric 'acc1'" in reasons["copy/nan.json"] and "nested deeper than" in reasons["deep/nested.json"]
    assert sorted(p.name for p in (tmp_path / "results" / QUARANTINE_DIR).iterdir() if p.name.endswith(".reason.json"))
    assert not (tmp_path / "results" / "copy").exists() and not (tmp_path / "results" / "deep").exists()
    again = sync_and_track(store, tmp_path / "results", tmp_path / "results.csv", workers=4, catalog=CATALOG)
    assert again.known_bad == 2 and again.exit_code == 0  # never blocks a later sync


# ---------------------------------------------------------------- hostile JSON (issue 20, fault 4)


def test_read_json_bounds_depth_and_size():
    nested = "[" * MAX_DEPTH + "]" * MAX_DEPTH
    assert read_json(nested, "x") == json.loads(nested)
    for deep in ("[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1), DEEP):
        with pytest.raises(InvalidResultError, match=f"x is nested deeper than {MAX_DEPTH} levels"):
            read_json(deep, "x")
    with pytest.raises(InvalidResultError, match="x is larger than 1 MiB"):
        read_json(b" " * 2**20 + b"{}", "x", max_bytes=2**20)
    with pytest.raises(InvalidResultError, match="record is larger than 4 MiB"):
        read_record(b'{"a": "' + b"x" * (4 * 2**20) + b'"}')


def test_every_outside_reader_refuses_deep_nesting(tmp_path):
    for reader in (read_record, Manifest.from_json, read_samples, read_bundle):
        with pytest.raises(InvalidResultError, match="nested deeper than"):
            reader(DEEP)
    (tmp_path / "mapping.json").write_bytes(b'{"datasets": ' + b"[" * 5000 + b"]" * 5000 + b"}")
    with pytest.raises(CatalogError, match="nested deeper than"):
        load_datasets(tmp_path / "mapping.json")
    (tmp_path / INTERVAL_CACHE).write_bytes(DEEP)
    assert read_interval_cache(tmp_path) == {}  # a damaged cache is recomputed


def test_parse_skips_a_deeply_nested_file(tmp_path):
    pair = Pair("ViT-B-32", "openai", "cifar10")
    atomic_write_json(tmp_path / "results" / result_key(pair), synthetic_result(pair))
    (tmp_path / "results" / "deep.json").write_bytes(DEEP)
    report = parse_results(tmp_path / "results", tmp_path / "out", catalog=CATALOG)
    assert report.results == 1 and report.rows["classification_metrics"] == 1
    assert [(rel, "nested deeper than" in why) for rel, why in report.invalid] == [("deep.json", True)]
