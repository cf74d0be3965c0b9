"""parse: results by content -> metric CSVs, leaderboard, Parquet; clip_benchmark build is the oracle for the numbers."""

from __future__ import annotations

import ast
import csv
import json
import re
from argparse import Namespace
from pathlib import Path

import pytest
from test_sync import CLIP_BENCHMARK_JSON
from typer.testing import CliRunner

from fixtures import synthetic_pairs, synthetic_result
from openclip_benchmark.catalog import load_catalog

CATALOG = load_catalog()
from openclip_benchmark.cli import app
from openclip_benchmark.core.jsonio import atomic_write_json
from openclip_benchmark.core.pair import Pair
from openclip_benchmark.collect.parse import (
    CLASSIFICATION_METRICS,
    IDENTITY_COLUMNS,
    RETRIEVAL_METRICS,
    outputs_stale,
    parse_results,
)
from openclip_benchmark.core.records import make_failure, make_result
from openclip_benchmark.tasks import tables as task_tables
from openclip_benchmark.tracker import open_tracker
from openclip_benchmark.storage.layout import failure_key, result_key

SOURCE_NAME = "cifar10_openai_ViT-B-32_en_zeroshot_classification.json"  # the source project's naming


def write_results(root: Path, n: int = 130) -> list[Pair]:
    """n synthetic results in our layout plus what a real results folder also holds."""
    pairs = synthetic_pairs(n)
    for p in pairs:
        atomic_write_json(root / result_key(p), synthetic_result(p))
    # clip_benchmark's own JSON, under the source project's name, for a pair we have no other result for
    atomic_write_json(root / SOURCE_NAME, dict(CLIP_BENCHMARK_JSON, model="RN101"))
    # a duplicate of pairs[1] that finished later wins; one that finished earlier loses
    atomic_write_json(root / "rerun" / "late.json", synthetic_result(pairs[1], seed=30))
    atomic_write_json(root / "rerun" / "early.json", dict(synthetic_result(pairs[2], seed=0), run={"finished": "2000"}))
    try:
        raise ValueError("broken shard")
    except ValueError as exc:
        atomic_write_json(root / failure_key(Pair("RN101", "openai", "dtd")), make_failure(Pair("RN101", "openai", "dtd"), exc, 1))
    (root / "junk.json").write_text('{"model": "x"')
    for skipped in (".quarantine/q.json", "_manifests/shard-000.json", ".sync-index.json"):
        atomic_write_json(root / skipped, synthetic_result(pairs[3], seed=9))
    return pairs


def read_csv(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with open(path, newline="") as fh:
        reader = csv.DictReader(fh)
        return list(reader.fieldnames), list(reader)


@pytest.fixture(scope="module")
def parsed(tmp_path_factory):
    root = tmp_path_factory.mktemp("parse")
    pairs = write_results(root / "results")
    report = parse_results(root / "results", root / "out", catalog=CATALOG)
    return root, pairs, report


def test_parse_reads_by_content_and_skips_state(parsed):
    root, pairs, report = parsed
    assert report.files == len(pairs) + 5  # + source-named, 2 reruns, failure record, junk
    assert report.results == len(pairs) + 3 and report.failures == 1 and report.duplicates == 2
    assert [rel for rel, _ in report.invalid] == ["junk.json"]
    assert report.rows["classification_metrics"] + report.rows["retrieval_metrics"] == len(pairs) + 1
    assert sorted(p.name for p in (root / "out").iterdir()) == sorted(
        f"{name}.{ext}" for name in (*task_tables(), "leaderboard", "leaderboard_intervals", "resolution_sweep")
        for ext in ("csv", "parquet")
    )  # the synthetic pairs include image-size variants: a sweep table


def test_metric_csvs_columns_values_and_metadata(parsed):
    root, pairs, _ = parsed
    columns, rows = read_csv(root / "out" / "classification_metrics.csv")
    assert columns[:10] == IDENTITY_COLUMNS + CLASSIFICATION_METRICS
    assert columns[-3:] == ["attempt", "finished", "source"] and "params" in columns and "cost_usd" in columns
    by_source = {r["source"]: r for r in rows}
    p = pairs[0]
    row = by_source[result_key(p)]
    expected = synthetic_result(p)
    assert float(row["acc1"]) == expected["metrics"]["acc1"] and row["acc1"] == repr(expected["metrics"]["acc1"])
    spec = CATALOG.find_model(p.model, p.pretrained)
    assert int(row["params"]) == spec.params and float(row["image_gflops"]) == spec.image_gflops
    # cost = seconds at the A10G's cheapest on-demand hourly price of the shipped table
    from openclip_benchmark.planning.pricing import load_prices

    price = load_prices().offers_for("A10G", None, False)[0].price
    assert float(row["cost_usd"]) == pytest.approx(expected["run"]["seconds"] / 3600 * price, rel=1e-5)
    # clip_benchmark's JSON: canonical dataset name, no run data, parsed by content whatever its file name
    cb = by_source[SOURCE_NAME]
    assert (cb["model"], cb["dataset"], cb["acc1"], cb["seconds"]) == ("RN101", "cifar10", "0.8983", "")
    # duplicates: the later rerun replaced pairs[1], the earlier one did not replace pairs[2]
    assert result_key(pairs[1]) not in by_source and "rerun/late.json" in by_source
    assert result_key(pairs[2]) in by_source and "rerun/early.json" not in by_source
    # resolution sweeps: the override is part of the identity and sets image_size
    swept = next(r for r in rows if r["preprocess"])
    assert json.loads(swept["preprocess"])["image_size"] == int(swept["image_size"])

    columns, rows = read_csv(root / "out" / "retrieval_metrics.csv")
    assert columns[:12] == IDENTITY_COLUMNS + RETRIEVAL_METRICS
    assert rows and {r["task"] for r in rows} == {"zeroshot_retrieval"}


def test_leaderboard_main_metrics_and_averages(parsed):
    root, pairs, _ = parsed
    columns, rows = read_csv(root / "out" / "leaderboard.csv")
    assert columns[:8] == ["model", "pretrained", "preprocess", "params", "image_gflops", "text_gflops", "datasets", "average"]
    assert {"avg_imagenet_robustness", "avg_vtab", "avg_retrieval"} <= set(columns)
    keys = {(r["model"], r["pretrained"], r["preprocess"]) for r in rows}
    assert len(keys) == len(rows) == len({(p.model, p.pretrained, p.preprocess.canonical()) for p in pairs}) + 1
    ranks = [(-int(r["datasets"]), -float(r["average"])) for r in rows]
    assert ranks == sorted(ranks) and rows[-1]["model"] == "RN101"  # coverage first, then average
    row = next(r for r in rows if (r["model"], r["pretrained"], r["preprocess"]) == ("ViT-B-32", "openai", ""))
    mine = [p for p in pairs if (p.model, p.pretrained) == ("ViT-B-32", "openai") and not p.preprocess]
    main = {
        "pets": "mean_per_class_recall",
        "mscoco_captions": "image_retrieval_recall@5",
        "flickr30k": "image_retrieval_recall@5",
        "voc2007_multilabel": "mean_average_precision",
    }
    scores = {}
    for p in mine:
        result = synthetic_result(p, seed=30 if p == pairs[1] else 0)
        scores[p.dataset] = result["metrics"][main.get(p.dataset, "acc1")]
    assert {d: float(row[d]) for d in scores} == scores
    assert float(row["average"]) == pytest.approx(sum(scores.values()) / len(scores), rel=1e-12)
    assert int(row["datasets"]) == len(scores)
    assert float(row["avg_retrieval"]) == pytest.approx((scores["mscoco_captions"] + scores["flickr30k"]) / 2)
    # RN101 has only cifar10 (from clip_benchmark's JSON): no collection average that it cannot fill
    rn101 = next(r for r in rows if r["model"] == "RN101")
    assert rn101["datasets"] == "1" and rn101["avg_retrieval"] == "" and rn101["cifar10"] == "0.8983"
    assert rn101["seconds"] == rn101["cost_usd"] == ""  # no run data, not zero


def test_parquet_matches_csv(parsed):
    import pyarrow.parquet as pq

    root, _, _ = parsed
    for name in ("classification_metrics", "retrieval_metrics", "leaderboard"):
        columns, rows = read_csv(root / "out" / f"{name}.csv")
        table = pq.read_table(root / "out" / f"{name}.parquet")
        assert table.column_names == columns and table.num_rows == len(rows)
    table = pq.read_table(root / "out" / "classification_metrics.parquet").to_pylist()
    _, rows = read_csv(root / "out" / "classification_metrics.csv")
    assert [t["acc1"] for t in table] == [float(r["acc1"]) if r["acc1"] else None for r in rows]


def test_numbers_equal_clip_benchmark_build(parsed, tmp_path):
    """The oracle: clip_benchmark's own `build` over the same files gives the same metric values."""
    from clip_benchmark.cli import main_build

    root, _, _ = parsed
    files = [str(p) for p in sorted((root / "results").rglob("*.json")) if p.name[0] != "." and "." not in p.parent.name]
    files = [f for f in files if not f.endswith((".failure.json", "junk.json")) and "_manifests" not in f]
    main_build(Namespace(files=files, output=str(tmp_path / "build.csv")))
    _, built = read_csv(tmp_path / "build.csv")
    ours = {}
    for name, metrics in (("classification_metrics", CLASSIFICATION_METRICS), ("retrieval_metrics", RETRIEVAL_METRICS)):
        for r in read_csv(root / "out" / f"{name}.csv")[1]:
            ours[(r["model"], r["pretrained"], r["dataset"], r["preprocess"], r["finished"])] = {m: r[m] for m in metrics if r[m]}
    matched = 0
    for b in built:
        pre = ast.literal_eval(b["preprocess"]) if b.get("preprocess") else {}
        pre_text = json.dumps(pre, sort_keys=True, separators=(",", ":")) if pre else ""
        finished = ast.literal_eval(b["run"]).get("finished", "") if b.get("run") else ""
        key = (b["model"], b["pretrained"], CATALOG.canonical_dataset(b["dataset"]), pre_text, finished)
        if key in ours:  # the losing duplicate has no row of ours
            assert ours[key] == {m: b[m] for m in ours[key]}
            matched += 1
    assert matched == sum(1 for _ in ours) and matched > 100


def test_parse_cli_and_staleness(tmp_path):
    write_results(tmp_path / "results", n=20)
    runner = CliRunner()
    assert outputs_stale(tmp_path / "results", tmp_path)
    with open_tracker(tmp_path / "results.csv", create=True) as tracker:
        tracker.update(Pair("ViT-H-14", "laion2b_s32b_b79k", "cifar10"), status="succeeded")
    res = runner.invoke(
        app, ["parse", "--results", str(tmp_path / "results"), "--out", str(tmp_path), "--tracker", str(tmp_path / "results.csv")]
    )
    assert res.exit_code == 0, res.output
    text = " ".join(res.output.split())
    assert re.search(r"^leaderboard\.csv +3$", res.output, re.M) and "1 invalid" in text and "skipped 'junk.json'" in text
    assert "1 succeeded pairs have no local result" in text
    assert not outputs_stale(tmp_path / "results", tmp_path)
    res = runner.invoke(app, ["parse", "--results", str(tmp_path / "nowhere"), "--out", str(tmp_path)])
    assert res.exit_code == 2 and res.output.startswith("error: results folder") and len(res.output.splitlines()) == 1


def test_clip_benchmark_nan_acc5_parses_to_an_empty_cell(tmp_path):
    """clip_benchmark's json.dump writes a bare NaN for acc5 under 5 classes: the file parses, the cell is empty."""
    results = tmp_path / "results"
    results.mkdir()
    record = dict(CLIP_BENCHMARK_JSON, dataset="wds/renderedsst2",
                  metrics={"acc1": 0.5871, "acc5": float("nan"), "mean_per_class_recall": 0.5868})
    (results / "renderedsst2.json").write_text(json.dumps(record))  # Python's default: allow_nan=True
    assert "NaN" in (results / "renderedsst2.json").read_text()
    report = parse_results(results, tmp_path, catalog=CATALOG)
    assert not report.invalid and report.results == 1
    rows = list(csv.DictReader((tmp_path / "classification_metrics.csv").open()))
    assert [(r["dataset"], r["acc1"], r["acc5"]) for r in rows] == [("renderedsst2", "0.5871", "")]


def test_resolution_sweep_table_and_plot(tmp_path):
    """Seed 004's table: a row per model (and dataset, ImageNet first) run at several image sizes, a column per size
    (the native one included), each dataset's main metric; the report draws it. None when no model ran at two sizes."""
    from openclip_benchmark.collect.report import build_report
    from openclip_benchmark.core.pair import Preprocess

    results = tmp_path / "results"
    acc = {160: 0.60, 192: 0.62, None: 0.633, 256: 0.64}
    for size, value in acc.items():
        pair = Pair("ViT-B-32", "openai", "imagenet1k", preprocess=Preprocess(image_size=size))
        atomic_write_json(results / result_key(pair), make_result(pair, {"acc1": value, "acc5": 0.9}, {}))
    for size, value in ((160, 0.80), (None, 0.89)):
        pair = Pair("ViT-B-32", "openai", "caltech101", preprocess=Preprocess(image_size=size))
        atomic_write_json(results / result_key(pair), make_result(pair, {"acc1": 0.5, "mean_per_class_recall": value}, {}))
    single = Pair("ViT-B-16", "openai", "imagenet1k")
    atomic_write_json(results / result_key(single), make_result(single, {"acc1": 0.68}, {}))

    report = parse_results(results, tmp_path / "out", catalog=CATALOG)
    assert report.rows["resolution_sweep"] == 2
    with open(tmp_path / "out" / "resolution_sweep.csv", newline="") as fh:
        reader = csv.DictReader(fh)
        rows = list(reader)
    assert reader.fieldnames == ["model", "pretrained", "dataset", "language", "preprocess", "metric",
                                 "160", "192", "224", "256"]
    assert [(r["dataset"], r["metric"]) for r in rows] == [("imagenet1k", "acc1"), ("caltech101", "mean_per_class_recall")]
    assert [rows[0][s] for s in ("160", "192", "224", "256")] == ["0.6", "0.62", "0.633", "0.64"]
    assert (rows[1]["160"], rows[1]["192"], rows[1]["224"]) == ("0.8", "", "0.89")
    page = build_report(tmp_path / "out", tmp_path / "report")
    assert 'id="resolution_sweep"' in page.read_text() and (tmp_path / "report" / "resolution_sweep.png").stat().st_size > 1000

    for size in (160, 192, 256):  # back to native sizes only: the stale table goes
        (results / result_key(Pair("ViT-B-32", "openai", "imagenet1k", preprocess=Preprocess(image_size=size)))).unlink()
    (results / result_key(Pair("ViT-B-32", "openai", "caltech101", preprocess=Preprocess(image_size=160)))).unlink()
    assert "resolution_sweep" not in parse_results(results, tmp_path / "out", catalog=CATALOG).rows
    assert not (tmp_path / "out" / "resolution_sweep.csv").exists()


def test_gflops_follow_the_image_size_of_each_result(tmp_path):
    """A resolution sweep: each size of a catalog model has the catalog's GFLOPs scaled as `plan` scales them, each size
    of a counted model (local-dir:) what the worker counted at that size; in the metric rows, the leaderboard and
    every point of the accuracy-against-compute chart (its Vega-Lite spec's data)."""
    from openclip_benchmark.collect import charts
    from openclip_benchmark.collect.report import build_report
    from openclip_benchmark.core.pair import Preprocess
    from openclip_benchmark.planning.plan import ModelIndex, pair_work
    from test_report import embedded_data

    results, sizes = tmp_path / "results", (160, 192, 288)
    spec = CATALOG.find_model("ViT-B-32", "openai")
    counted = {160: 0.004, 192: 0.009, 288: 0.017}  # what the worker recorded for each size (the numbers)
    expected = {}
    for size in sizes:
        pair = Pair("ViT-B-32", "openai", "cifar10", preprocess=Preprocess(image_size=size))
        atomic_write_json(results / result_key(pair), make_result(pair, {"acc1": 0.5 + size / 1000}, {}))
        planned = pair_work(pair, ModelIndex(CATALOG.models).work("ViT-B-32", "openai"), CATALOG.datasets).image_gflops
        assert planned == pytest.approx(spec.image_gflops * (size / spec.image_size) ** 2)
        expected[("ViT-B-32", pair.preprocess.canonical())] = planned
        tiny = Pair("local-dir:/m/tiny", "", "cifar10", preprocess=Preprocess(image_size=size))
        profile = {"params": 1000, "image_gflops": counted[size], "text_gflops": 0.001, "image_size": size}
        atomic_write_json(results / result_key(tiny), make_result(tiny, {"acc1": 0.3}, {"model_profile": profile}))
        expected[("local-dir:/m/tiny", tiny.preprocess.canonical())] = counted[size]
    parsed = parse_results(results, tmp_path / "out", catalog=CATALOG)

    rows = parsed.tables["classification_metrics"].rows
    assert {(r["model"], r["preprocess"]): r["image_gflops"] for r in rows} == pytest.approx(expected)
    assert {(r["model"], r["preprocess"]): r["image_size"] for r in rows} == {k: json.loads(k[1])["image_size"] for k in expected}
    board = parsed.tables["leaderboard"].rows
    assert {(r["model"], r["preprocess"]): r["image_gflops"] for r in board} == pytest.approx(expected)
    assert len({r["image_gflops"] for r in board}) == 6  # no size takes the GFLOPs of another

    page = build_report(tmp_path / "out", tmp_path / "report", catalog=CATALOG, tables=parsed.tables)
    data = embedded_data(page.read_text())
    chart = next(c for c in data["charts"] if c["id"] == "accuracy_vs_gflops")
    assert chart["data"] == ["models", "scores"] and chart["spec"]["encoding"]["x"]["field"] == "gflops"
    points = {(data["rows"][m["m"]][0], data["rows"][m["m"]][2]): m["gflops"] for m in data["data"]["models"]}
    text = {(r["model"], r["preprocess"]): r["text_gflops"] for r in board}
    assert points == pytest.approx({k: v + text[k] for k, v in expected.items()}, rel=1e-5)  # image + text, 6 digits
    assert {(s["m"], s["c"]) for s in data["data"]["scores"]} >= {(m, "average") for m in range(6)}  # every point has a y
    assert charts.png(charts.scatter(charts.board_data(board, parsed.tables["leaderboard"].columns, ["cifar10"], {}),
                                     "gflops", "GFLOPs", "t", "none"))[:4] == b"\x89PNG"


def test_parse_hands_on_the_tables_it_wrote_and_reading_them_back_gives_the_same_rows(parsed):
    from openclip_benchmark.collect.parse import read_table

    root, _, report = parsed
    assert set(report.tables) == {*task_tables(), "leaderboard", "leaderboard_intervals", "resolution_sweep"}
    for name, table in report.tables.items():
        assert read_table(root / "out" / f"{name}.csv") == table, name  # types declared once, not guessed
    board = report.tables["leaderboard"].rows
    assert all(isinstance(r["params"], int) and isinstance(r["datasets"], int) for r in board if r["params"] is not None)
    assert {type(r["preprocess"]) for r in board} == {str}  # "" where nothing is overridden


def test_parse_reads_each_result_and_its_samples_once(tmp_path):
    """Counted by the interpreter's audit hook on `open`: the record, the interval's cache key and the samples'
    owner check all come from one read of each file; a second parse (intervals cached) reads each file once again."""
    import os
    import sys

    import numpy as np

    from openclip_benchmark.core.samples import make_samples
    from openclip_benchmark.storage.layout import samples_key

    results = tmp_path / "results"
    rng = np.random.default_rng(0)
    for pair in synthetic_pairs(12):
        key = result_key(pair)
        data = json.dumps(synthetic_result(pair)).encode()
        (results / key).parent.mkdir(parents=True, exist_ok=True)
        (results / key).write_bytes(data)
        if pair.task == "zeroshot_classification":
            target = rng.integers(0, 10, 50)
            predicted = np.where(rng.random(50) < 0.6, target, rng.integers(0, 10, 50))
            arrays = {"target": target, "predicted": predicted, "top1": predicted == target, "top5": rng.random(50) < 0.8}
            (results / samples_key(key)).write_bytes(make_samples(data, arrays))
    files = sorted(str(p) for p in results.rglob("*") if p.is_file())
    opened: list[str] = []
    listening = [True]  # an audit hook stays for the life of the interpreter: it listens during this test only
    sys.addaudithook(lambda event, args: opened.append(str(args[0])) if listening[0] and event == "open" else None)
    try:
        for _ in range(2):
            opened.clear()
            report = parse_results(results, tmp_path / "out", catalog=CATALOG)
            assert sorted(p for p in opened if p.startswith(str(results)) and os.path.exists(p)) == files
    finally:
        listening[0] = False
    assert report.rows["leaderboard_intervals"] and any(r["ci_low"] is not None
                                                         for r in report.tables["leaderboard_intervals"].rows)
