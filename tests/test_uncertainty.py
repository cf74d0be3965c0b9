"""Per-sample outcomes, confidence intervals and paired tests: the statistics against scipy and hand counts, and the
whole flow on tiny real models (worker -> store and bundle -> sync from S3 on loopback -> parse -> compare A B)."""

from __future__ import annotations

import csv
import time

import numpy as np
import pytest
from scipy import stats
from sklearn.metrics import balanced_accuracy_score
from typer.testing import CliRunner

import torch
from clip_benchmark.metrics.zeroshot_classification import average_precision_per_class

from fixtures import make_classification_wds, make_multilabel_wds, make_retrieval_wds, make_tiny_model, synthetic_result
from openclip_benchmark.cli import app
from openclip_benchmark.collect.compare import Cell, compare_cells, mcnemar_p
from openclip_benchmark.collect.intervals import (Outcomes, clopper_pearson, intervals, mean_average_precision,
                                                  metric_outcomes)
from openclip_benchmark.collect.parse import iter_result_files
from openclip_benchmark.core.errors import InvalidResultError
from openclip_benchmark.core.jsonio import atomic_write_json
from openclip_benchmark.core.manifest import Manifest, RunSettings
from openclip_benchmark.core.pair import Pair
from openclip_benchmark.core.records import read_record
from openclip_benchmark.core.samples import make_samples, read_samples, result_digest
from openclip_benchmark.storage.bundle import read_bundle
from openclip_benchmark.storage.layout import is_bundle, is_record_key, result_key, samples_key
from openclip_benchmark.storage.store import open_store
from openclip_benchmark.storage.sync import open_source, sync_results
from openclip_benchmark.worker import run_shard

CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog")


def test_clopper_pearson_equals_scipys_exact_interval():
    cases = [(0, 10), (10, 10), (3, 10), (1, 2), (7321, 10000), (49000, 50000), (17, 5000)]
    lows, highs = clopper_pearson([k for k, _ in cases], [n for _, n in cases])
    for (k, n), low, high in zip(cases, lows, highs):
        ci = stats.binomtest(k, n).proportion_ci(confidence_level=0.95, method="exact")
        assert low == pytest.approx(ci.low, rel=1e-9, abs=1e-12) and high == pytest.approx(ci.high, rel=1e-9, abs=1e-12)


def test_share_metrics_get_the_binomial_interval_and_the_others_a_seeded_fast_bootstrap():
    rng = np.random.default_rng(1)
    n, k = 10_000, 100
    target = rng.integers(0, k, n)
    predicted = np.where(rng.random(n) < 0.7, target, rng.integers(0, k, n))
    samples = {"target": target, "predicted": predicted, "top1": predicted == target,
               "top5": (predicted == target) | (rng.random(n) < 0.5)}
    acc1, recall = metric_outcomes(samples, "acc1"), metric_outcomes(samples, "mean_per_class_recall")
    assert acc1.value == np.mean(predicted == target)
    assert recall.value == pytest.approx(balanced_accuracy_score(target, predicted), abs=1e-12)
    start = time.perf_counter()
    first = intervals([acc1, recall, None])
    took = time.perf_counter() - start
    assert took < 1.0, took  # 1000 resamples over 10k images
    ci = stats.binomtest(int((predicted == target).sum()), n).proportion_ci(method="exact")
    assert (first[0].method, first[0].n) == ("binomial", n) and first[0].low == pytest.approx(ci.low, rel=1e-9)
    assert first[1].method == "bootstrap" and first[1].low < recall.value < first[1].high and first[2] is None
    assert 0.005 < first[1].high - first[1].low < 0.03  # about 2 x 1.96 x sqrt(.21 / 10k)
    assert intervals([recall]) == first[1:2]  # seeded: the same interval every time, alone or with others


def test_retrieval_outcomes_by_hand():
    # 3 images, 2 captions each; caption ranks of their image, and per image the best rank of its captions
    samples = {"caption_image": np.array([0, 0, 1, 1, 2, 2]), "image_retrieval_rank": np.array([1, 3, 2, 2, 1, 9]),
               "text_retrieval_rank": np.array([1, 4, 2])}
    image5, text1 = metric_outcomes(samples, "image_retrieval_recall@1"), metric_outcomes(samples, "text_retrieval_recall@1")
    assert image5.kind == "ratio" and image5.value == 2 / 6 and list(image5.hits) == [1, 0, 1]
    assert text1.kind == "share" and text1.value == 1 / 3
    assert metric_outcomes(samples, "image_retrieval_recall@5").value == 5 / 6
    assert metric_outcomes(samples, "mean_average_precision") is None


def test_mcnemar_and_paired_bootstrap_against_hand_counts():
    # 40 images: both right on 20, only A on 12, only B on 3, both wrong on 5
    a = np.array([1] * 20 + [1] * 12 + [0] * 3 + [0] * 5, dtype=float)
    b = np.array([1] * 20 + [0] * 12 + [1] * 3 + [0] * 5, dtype=float)
    units = np.arange(40) % 4
    oa, ob = Outcomes("acc1", "share", a, units), Outcomes("acc1", "share", b, units)
    assert mcnemar_p(oa, ob) == pytest.approx(stats.binomtest(3, 15, 0.5).pvalue, rel=1e-9)
    assert mcnemar_p(oa, oa) == 1.0
    side_a, side_b = ("A", "", ""), ("B", "", "")
    cells_a = {"x": Cell("acc1", a.mean(), oa), "y": Cell("acc1", 0.5, None)}
    cells_b = {"x": Cell("acc1", b.mean(), ob), "y": Cell("acc1", 0.25, None), "z": Cell("acc1", 0.1, None)}
    out = compare_cells(side_a, side_b, cells_a, cells_b)
    x, y = out.rows
    assert (x.test, x.n) == ("mcnemar_exact", 40) and x.points == pytest.approx(100 * 9 / 40)
    assert x.low < 9 / 40 < x.high and x.p_value == pytest.approx(stats.binomtest(3, 15).pvalue)
    assert y.test == "" and y.points == 25.0 and "no per-sample outcomes" in y.note and out.untested == ["y"]
    assert out.average.p_value is None and out.average.points == pytest.approx(100 * (9 / 40 + 0.25) / 2)

    recall_a = Outcomes("mean_per_class_recall", "class_mean", a, units, classes=units)
    recall_b = Outcomes("mean_per_class_recall", "class_mean", b, units, classes=units)
    both = compare_cells(side_a, side_b, {"x": Cell("acc1", a.mean(), oa), "w": Cell("m", recall_a.value, recall_a)},
                         {"x": Cell("acc1", b.mean(), ob), "w": Cell("m", recall_b.value, recall_b)})
    w = both.rows[0]
    assert w.test == "paired_bootstrap" and w.low > 0 and w.p_value < 0.05
    assert both.average.test == "paired_bootstrap" and both.average.low > 0 and both.average.n == 80
    assert both.average == compare_cells(side_a, side_b, {"x": Cell("acc1", a.mean(), oa), "w": Cell("m", recall_a.value, recall_a)},
                                         {"x": Cell("acc1", b.mean(), ob), "w": Cell("m", recall_b.value, recall_b)}).average


def test_mean_average_precision_of_a_resample_is_clip_benchmarks_on_the_resampled_images():
    """The weighted pass over the fixed ranking equals clip_benchmark's average precision computed on the images
    drawn (copies and all), for the full set and for literal resamples; a class with no positive counts 0, as there."""
    rng = np.random.default_rng(3)
    n, classes = 300, 7
    scores = rng.normal(size=(n, classes)).astype(np.float32)  # continuous: no ties between distinct images
    labels = (rng.random((n, classes)) < 0.15) | ((scores > 1.2) & (rng.random((n, classes)) < 0.6))
    labels[:, 6] = False
    ranking = np.stack([torch.sort(torch.from_numpy(scores[:, k]), 0, True)[1].numpy() for k in range(classes)])
    samples = {"labels": labels.ravel(), "ranking": ranking.ravel(), "classes": np.array([classes])}
    outcomes = metric_outcomes(samples, "mean_average_precision")
    reference = average_precision_per_class(torch.from_numpy(scores), torch.from_numpy(labels.astype(np.int64)))
    assert outcomes.value == pytest.approx(reference.mean().item(), abs=1e-6)
    idx = rng.integers(0, n, size=(5, n))
    for row, drawn in zip(outcomes.resampled(idx), idx):
        literal = average_precision_per_class(torch.from_numpy(scores[drawn]), torch.from_numpy(labels[drawn].astype(np.int64)))
        assert row == pytest.approx(literal.mean().item(), abs=1e-6)
    counts = np.full((n, 1), 0, np.uint8)
    assert mean_average_precision(labels, ranking, counts)[0] == 0.0  # nothing drawn: no precision anywhere
    assert metric_outcomes({**samples, "ranking": ranking.ravel()[::-1].copy()[:-1]}, "mean_average_precision") is None
    started = time.perf_counter()  # VOC2007's size: 4952 images, 20 classes, 1000 resamples
    big = rng.random((4952, 20)) < 0.07
    order = np.argsort(-rng.random((20, 4952)), axis=1)
    [interval] = intervals([Outcomes("mean_average_precision", "average_precision", big, big, ranking=order)])
    assert interval.method == "bootstrap" and interval.low <= interval.value <= interval.high
    assert time.perf_counter() - started < 10  # about 0.6 s here


def test_samples_document_round_trips_and_names_its_result():
    arrays = {"top1": np.array([True, False, True]), "target": np.array([0, 70000, 3])}
    data = make_samples(b"result bytes", arrays)
    digest, back = read_samples(data)
    assert digest == result_digest(b"result bytes") and list(back["top1"]) == [True, False, True]
    assert list(back["target"]) == [0, 70000, 3]
    assert not is_record_key(samples_key("m/p/d/en-x.json"))
    with pytest.raises(InvalidResultError):
        read_samples(b'{"schema": "something else"}')


@pytest.fixture(scope="module")
def flow(tmp_path_factory):
    """Two tiny models x (imagenet1k, mscoco_captions, voc2007_multilabel) run by the real worker into a local store."""
    root = tmp_path_factory.mktemp("unc")
    make_classification_wds(root, "imagenet1k", n=40, classes=CLASSES)
    make_retrieval_wds(root, "mscoco_captions", n=24)
    make_multilabel_wds(root, "voc2007_multilabel", n=30)
    models = (make_tiny_model(root, "tiny_a", seed=0), make_tiny_model(root, "tiny_b", seed=1))
    pairs = [Pair(m, "", d, task=t) for m in models
             for d, t in (("imagenet1k", "zeroshot_classification"), ("mscoco_captions", "zeroshot_retrieval"),
                          ("voc2007_multilabel", "multilabel"))]
    settings = RunSettings(batch_size=16, num_workers=0, dataset_root=str(root))
    report = run_shard(Manifest(shard_id="unc-shard", store=str(root / "store"), pairs=tuple(pairs), settings=settings),
                       progress=False)
    assert report.exit_code == 0 and report.bundle_key
    return root, models, pairs


def test_worker_stores_samples_beside_results_and_in_the_bundle(flow):
    root, _, pairs = flow
    store = open_store(root / "store")
    bundle = read_bundle(store.get(next(o.key for o in store.list() if is_bundle(o.key))))
    for pair in pairs:
        result = store.get(result_key(pair))
        digest, samples = read_samples(store.get(samples_key(result_key(pair))))
        assert digest == result_digest(result) and samples_key(result_key(pair)) in bundle
        metrics = read_record(result).metrics
        for name, value in metrics.items():  # every metric follows from the samples, equal to clip_benchmark's
            if value is not None:
                assert metric_outcomes(samples, name).value == pytest.approx(value, abs=1e-7), name  # float32 means
    assert sorted(rel for _, rel in iter_result_files(root / "store")) == sorted(result_key(p) for p in pairs)


def test_sync_parse_and_compare_end_to_end(flow, s3_bucket, s3_env, tmp_path, monkeypatch):
    root, models, pairs = flow
    local = open_store(root / "store")
    remote = open_source(f"s3://{s3_bucket}")
    for obj in local.list():  # the worker's objects, byte for byte, in a bucket
        remote.put(obj.key, local.get(obj.key))
    results = tmp_path / "results"
    first = sync_results(remote, results, workers=4)
    assert first.results == 6 and first.samples == 6 and first.from_bundles == 12 and first.quarantined == []
    assert all((results / samples_key(result_key(p))).is_file() for p in pairs)
    again = sync_results(remote, results, workers=4)
    assert again.new == [] and again.changed == [] and again.unchanged == 12

    old = [Pair("ViT-B-32", "openai", "cifar10"), Pair("ViT-B-32", "laion2b_s34b_b79k", "cifar10")]
    for pair in old:  # results written before per-sample outcomes were recorded
        atomic_write_json(results / result_key(pair), synthetic_result(pair))
    runner, out = CliRunner(), tmp_path / "metrics"
    assert runner.invoke(app, ["parse", "--results", str(results), "--out", str(out)]).exit_code == 0
    tables = {name: (out / name).read_bytes() for name in ("classification_metrics.csv", "retrieval_metrics.csv")}
    with monkeypatch.context() as patched:  # a second parse takes every interval from the cache: no bootstrap runs
        patched.setattr("openclip_benchmark.collect.parse.intervals",
                        lambda found: pytest.fail("recomputed") if any(found) else [None] * len(found))
        assert runner.invoke(app, ["parse", "--results", str(results), "--out", str(out)]).exit_code == 0
    assert tables == {name: (out / name).read_bytes() for name in tables}
    cls = {(r["model"], r["dataset"]): r for r in csv.DictReader(open(out / "classification_metrics.csv"))}
    ret = {r["model"]: r for r in csv.DictReader(open(out / "retrieval_metrics.csv"))}
    for model in models:
        row = cls[(model, "imagenet1k")]
        assert (row["ci_metric"], row["ci_method"], row["n_samples"]) == ("acc1", "binomial", "40")
        k = round(float(row["acc1"]) * 40)
        exact = stats.binomtest(k, 40).proportion_ci(method="exact")
        assert float(row["ci_low"]) == pytest.approx(exact.low, rel=1e-9)
        assert float(row["ci_high"]) == pytest.approx(exact.high, rel=1e-9)
        r = ret[model]
        assert (r["ci_metric"], r["ci_method"], r["n_samples"]) == ("image_retrieval_recall@5", "bootstrap", "24")
        assert float(r["ci_low"]) <= float(r["image_retrieval_recall@5"]) <= float(r["ci_high"])
    assert (cls[("ViT-B-32", "cifar10")]["ci_low"], cls[("ViT-B-32", "cifar10")]["ci_method"]) == ("", "")
    cells = list(csv.DictReader(open(out / "leaderboard_intervals.csv")))
    assert list(cells[0]) == ["model", "pretrained", "preprocess", "dataset", "metric", "value", "ci_low", "ci_high",
                              "ci_method", "n_samples"]
    assert len(cells) == 8 and sum(c["ci_low"] != "" for c in cells) == 6
    for model in models:
        row = cls[(model, "voc2007_multilabel")]
        assert (row["ci_metric"], row["ci_method"], row["n_samples"]) == ("mean_average_precision", "bootstrap", "30")
        assert float(row["ci_low"]) <= float(row["mean_average_precision"]) <= float(row["ci_high"])

    done = runner.invoke(app, ["compare", models[0], models[1], "--results", str(results), "--out", str(out)])
    assert done.exit_code == 0, done.output
    written = list(out.glob("compare_*.csv"))
    assert len(written) == 1
    rows = {r["dataset"]: r for r in csv.DictReader(open(written[0]))}
    assert set(rows) == {"imagenet1k", "mscoco_captions", "voc2007_multilabel", "average"}
    assert rows["voc2007_multilabel"]["test"] == "paired_bootstrap"
    assert rows["imagenet1k"]["test"] == "mcnemar_exact" and rows["mscoco_captions"]["test"] == "paired_bootstrap"
    assert rows["average"]["test"] == "paired_bootstrap" and 0 < float(rows["average"]["p_value"]) <= 1
    assert float(rows["imagenet1k"]["ci_low_points"]) <= float(rows["imagenet1k"]["difference_points"])

    untested = runner.invoke(app, ["compare", "ViT-B-32/openai", "ViT-B-32:laion2b_s34b_b79k", "--results",
                                   str(results), "--out", str(out)])
    assert untested.exit_code == 0 and "no per-sample outcomes" in untested.output
    bad = {
        ("nosuch", models[0]): "unknown model",
        ("ViT-B-32", models[0]): "ambiguous",
        ("ViT-B-32/openai", models[0]): "no dataset in common",
        (models[0],): "two models",
        (models[0], models[0]): "the same model",
    }
    for args, words in bad.items():
        res = runner.invoke(app, ["compare", *args, "--results", str(results), "--out", str(out)])
        assert res.exit_code == 2 and res.output.startswith("error:") and words in res.output, (args, res.output)
        assert len(res.output.strip().splitlines()) == 1 and "Traceback" not in res.output


def test_compare_names_a_file_it_skips(tmp_path):
    """An empty (0-byte) or truncated file among the results is skipped with a warning that names it, as parse does."""
    results = tmp_path / "results"
    for pretrained in ("openai", "laion2b_s34b_b79k"):
        pair = Pair("ViT-B-32", pretrained, "cifar10")
        atomic_write_json(results / result_key(pair), synthetic_result(pair))
    (results / "empty.json").write_bytes(b"")
    done = CliRunner().invoke(app, ["compare", "ViT-B-32:openai", "ViT-B-32:laion2b_s34b_b79k", "--results",
                                    str(results), "--out", str(tmp_path)])
    assert done.exit_code == 0, done.output
    assert "warning: skipped 'empty.json'" in done.stderr
