"""A user's own dataset mapping, given once (`--dataset-mapping FILE` or `BENCHMARK_DATASETS=FILE`), reaches every
step: init, plan, launch on the local backend (the worker reads the dataset's spec from its manifest), sync, parse
and report.

The extra dataset is built so that no step can get it right from a process-wide default: its key (`acme_shapes`)
differs from its webdataset folder (`wds_acme_shapes_v2`), and its main metric is acc5, not the task's acc1.
"""

from __future__ import annotations

import csv
import json

import pytest
from typer.testing import CliRunner

from fixtures import make_classification_wds, make_tiny_model
from openclip_benchmark.catalog import mapping_path
from openclip_benchmark.cli import app
from openclip_benchmark.core.manifest import Manifest
from openclip_benchmark.storage.store import LocalStore
from openclip_benchmark.tracker import Tracker
from openclip_benchmark.worker import dataset_specs

CLASSES = ("circle", "square", "star", "cross", "ring", "arrow")
EXTRA = {
    "wds_name": "wds_acme_shapes_v2",
    "task": "zeroshot_classification",
    "size": 18,
    "num_classes": len(CLASSES),
    "metric": "acc5",
    "collections": ["acme"],
    "languages": ["en"],
    "templates": 1,
}
CLIP_BENCHMARK_RESULT = {  # what `clip_benchmark eval --dataset wds/acme_shapes_v2` writes for another model
    "dataset": "wds/acme_shapes_v2",
    "model": "ViT-B-32",
    "pretrained": "openai",
    "task": "zeroshot_classification",
    "metrics": {"acc1": 0.5, "acc5": 0.875, "mean_per_class_recall": 0.5},
    "language": "en",
}


@pytest.fixture()
def project(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("BENCHMARK_DATASETS", raising=False)
    mapping = json.loads(mapping_path().read_text())
    mapping["datasets"]["acme_shapes"] = EXTRA
    (tmp_path / "my_mapping.json").write_text(json.dumps(mapping))
    make_classification_wds(tmp_path / "data", name="acme_shapes_v2", n=EXTRA["size"], classes=CLASSES)
    model = make_tiny_model(tmp_path / "models")
    return tmp_path, model


@pytest.mark.parametrize("given", ["option", "env"])
def test_a_custom_mapping_reaches_every_step(project, given):
    root, model = project
    runner = CliRunner()
    mapping = str(root / "my_mapping.json")
    opt = ["--dataset-mapping", mapping] if given == "option" else []
    env = {"COLUMNS": "200", **({"BENCHMARK_DATASETS": mapping} if given == "env" else {})}

    def bench(*args: str, code: int = 0):
        out = runner.invoke(app, [*args, *opt], env=env)
        assert out.exit_code == code, out.output
        return out.output

    # without the mapping the dataset is unknown; with it, init tracks it
    unknown = runner.invoke(app, ["init", "-m", model, "-d", "acme_shapes"], env={"COLUMNS": "200"})
    assert unknown.exit_code == 2 and "acme_shapes" in unknown.output and not (root / "results.csv").exists()
    bench("init", "-m", model, "-d", "acme_shapes")
    assert [e.pair.dataset for e in Tracker.load(root / "results.csv")] == ["acme_shapes"]
    assert "acme_shapes" in bench("datasets", "acme")

    bench("plan", "--record", "--batch-size", "8")
    plan = json.loads((root / ".benchmark" / "plan.json").read_text())
    assert [p["dataset"] for s in plan["shards"] for p in s["pairs"]] == ["acme_shapes"]

    (root / "results").mkdir()
    bench("launch", "--backend", "local", "--store", "results", "--dataset-root", "data", "--precision", "fp32",
          "--batch-size", "8", "--yes")
    state = Tracker.load(root / "results.csv")
    assert [e.status for e in state] == ["succeeded"]
    store = LocalStore(root / "results")
    (manifest_key,) = [info.key for info in store.list("_manifests/")]
    carried = dataset_specs(Manifest.from_json(store.get(manifest_key)))["acme_shapes"]
    assert (carried.wds_name, carried.metric) == ("wds_acme_shapes_v2", "acc5")  # what the worker resolved it by

    # sync names clip_benchmark's `wds/acme_shapes_v2` as the mapping does, so the tracked pair moves
    bench("init", "-m", "ViT-B-32:openai", "-d", "acme_shapes")
    (root / "bucket").mkdir()
    (root / "bucket" / "vitb32.json").write_text(json.dumps(CLIP_BENCHMARK_RESULT))
    bench("sync", "--store", "bucket", "--results", "results")
    assert {e.pair.model: e.status for e in Tracker.load(root / "results.csv")} == {
        model: "succeeded", "ViT-B-32": "succeeded"}

    bench("parse", "--out", "metrics")
    with open(root / "metrics" / "classification_metrics.csv", newline="") as fh:
        rows = {r["model"]: r for r in csv.DictReader(fh)}
    with open(root / "metrics" / "leaderboard.csv", newline="") as fh:
        board = {r["model"]: r for r in csv.DictReader(fh)}
    assert set(rows) == set(board) == {model, "ViT-B-32"}
    assert all(rows[m]["dataset"] == "acme_shapes" for m in rows)
    for m in rows:  # the leaderboard's column is the mapping's main metric, acc5
        assert float(board[m]["acme_shapes"]) == float(rows[m]["acc5"])
    assert float(board["ViT-B-32"]["acme_shapes"]) == 0.875

    bench("report", "--metrics", "metrics", "--out", "report")
    page = (root / "report" / "index.html").read_text()
    assert "acme_shapes" in page and "ViT-B-32" in page
