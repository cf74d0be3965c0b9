"""`benchmark compare --published`: our results against open_clip's published table, with DataComp's main metric per
column. Results equal to the published values (within 0.1 points) pass; 2 points off is flagged."""

from __future__ import annotations

import csv
import json

import pytest
from typer.testing import CliRunner

from openclip_benchmark.catalog import load_catalog
from openclip_benchmark.cli import app
from openclip_benchmark.collect import published
from openclip_benchmark.core.errors import BenchmarkError
from openclip_benchmark.core.pair import Pair, Preprocess
from openclip_benchmark.core.records import make_result
from openclip_benchmark.storage.layout import result_key

CATALOG = load_catalog()
RETRIEVAL = published.PUBLISHED / "openclip_retrieval_results.csv"


def _published_row(model: str, pretrained: str) -> dict[str, float]:
    return published.load_published(CATALOG).values[(model, pretrained)]


def _write(results, pair: Pair, metrics: dict) -> None:
    path = results / result_key(pair)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(make_result(pair, metrics, {"finished": "2026-12-02T00:00:00Z"})))


def test_every_datacomp_column_is_matched_to_the_catalog_or_listed():
    tasks = published.load_tasks(CATALOG)
    table = published.load_published(CATALOG)
    assert len(table.values) == 121 and not table.missing_columns
    matched = {t.column: t.dataset for t in tasks if t.dataset}
    assert matched["Flickr"] == "flickr30k" and matched["MSCOCO"] == "mscoco_captions"
    assert matched["Caltech-101"] == "caltech101" and matched["Oxford-IIIT Pet"] == "pets"
    assert {t.column for t in tasks if t.dataset is None} == set()  # issue 18: DataComp's whole suite is in the catalog
    assert matched["WinoGAViL"] == "winogavil" and matched["iWildCam"] == "iwildcam" and matched["FMoW"] == "fmow"
    metric = {t.column: t.metric for t in tasks}
    assert [c for c, m in metric.items() if m == "mean_per_class_recall"] == [
        "Caltech-101", "FGVC Aircraft", "Oxford Flowers-102", "Oxford-IIIT Pet"]
    assert metric["Flickr"] == metric["MSCOCO"] == "mean_recall@1" and metric["ImageNet 1k"] == "acc1"


def test_flickr_and_mscoco_columns_are_the_mean_of_image_and_text_recall_at_1():
    """Checked against the published retrieval table for every row both tables have."""
    with open(RETRIEVAL, newline="") as fh:
        retrieval = {(r["name"], r["pretrained"]): r for r in csv.DictReader(fh)}
    table = published.load_published(CATALOG)
    checked = 0
    for key, row in table.values.items():
        if key not in retrieval:
            continue
        for column in ("Flickr", "MSCOCO"):
            metrics = {"image_retrieval_recall@1": float(retrieval[key][f"{column} image retr. R@1"]),
                       "text_retrieval_recall@1": float(retrieval[key][f"{column} text retr. R@1"])}
            assert published.main_value(metrics, "mean_recall@1") == pytest.approx(row[column], abs=6e-5)
            checked += 1
    assert checked > 150


def test_compare_flags_two_points_and_passes_a_tenth(tmp_path):
    results = tmp_path / "results"
    pub = _published_row("ViT-B-32", "openai")
    # within 0.1 points
    _write(results, Pair("ViT-B-32", "openai", "cifar10"), {"acc1": pub["CIFAR-10"] + 0.0009, "acc5": 0.99})
    # acc1 equal to the published value, but the column is mean per-class recall: 2 points off -> flagged
    _write(results, Pair("ViT-B-32", "openai", "caltech101"),
           {"acc1": pub["Caltech-101"], "mean_per_class_recall": pub["Caltech-101"] - 0.02})
    # Flickr: (0.5878 + 0.7890) / 2 = 0.6884, the published value
    _write(results, Pair("ViT-B-32", "openai", "flickr30k", task="zeroshot_retrieval"),
           {"image_retrieval_recall@1": 0.5878, "text_retrieval_recall@1": 0.7890, "image_retrieval_recall@5": 0.8})
    # not compared: another resolution, another language, a model the table lacks, a dataset DataComp lacks
    _write(results, Pair("ViT-B-32", "openai", "cifar10", preprocess=Preprocess(image_size=160)), {"acc1": 0.1})
    _write(results, Pair("local-dir:/m", "", "cifar10"), {"acc1": 0.5})
    _write(results, Pair("ViT-B-32", "openai", "fer2013"), {"acc1": 0.4})

    out = CliRunner().invoke(app, ["compare", "--published", "--results", str(results), "--out", str(tmp_path)],
                             env={"COLUMNS": "200"})
    assert out.exit_code == 0, out.output
    assert "3 compared, 1 flagged" in out.output and "no published row for local-dir:/m" in out.output
    assert "DataComp's average of ViT-B-32:openai not compared: 3/38 of its tasks" in out.output
    with open(tmp_path / "published_comparison.csv", newline="") as fh:
        rows = {r["dataset"]: r for r in csv.DictReader(fh)}
    assert set(rows) == {"cifar10", "caltech101", "flickr30k"}
    assert rows["caltech101"]["metric"] == "mean_per_class_recall" and rows["caltech101"]["flagged"] == "true"
    assert float(rows["caltech101"]["difference_points"]) == pytest.approx(-2.0, abs=0.01)
    assert rows["cifar10"]["flagged"] == "false" and abs(float(rows["cifar10"]["difference_points"])) < 0.1
    assert rows["flickr30k"]["metric"] == "mean_recall@1" and float(rows["flickr30k"]["ours"]) == pytest.approx(0.6884)
    assert rows["flickr30k"]["flagged"] == "false"

    tighter = CliRunner().invoke(app, ["compare", "--published", "--results", str(results), "--out", str(tmp_path),
                                       "--tolerance", "0.05"], env={"COLUMNS": "200"})
    assert "3 compared, 2 flagged" in tighter.output

    report = CliRunner().invoke(app, ["report", "--results", str(results), "--metrics", str(tmp_path / "m"),
                                      "--out", str(tmp_path / "report")])
    assert report.exit_code == 0, report.output
    page = (tmp_path / "report" / "index.html").read_text()
    section = page[page.index('id="published"'):page.index("<h2>Plots</h2>")]
    assert "3 compared, 1 more than 0.5 points apart" in section
    assert '<tr class="flag"><td>ViT-B-32</td><td>openai</td><td>caltech101</td><td>mean_per_class_recall</td>' in section


def test_bad_published_tables(tmp_path):
    text = (published.PUBLISHED / published.TABLE_NAME).read_text()
    renamed_identity = tmp_path / "a.csv"
    renamed_identity.write_text(text.replace("pretrained", "weights", 1))
    with pytest.raises(BenchmarkError, match="lacks the column"):
        published.load_published(CATALOG, renamed_identity)
    renamed_task = tmp_path / "b.csv"
    renamed_task.write_text(text.replace("CIFAR-10,", "CIFAR10,", 1))
    assert published.load_published(CATALOG, renamed_task).missing_columns == ("CIFAR-10",)
    bad_cell = tmp_path / "c.csv"
    bad_cell.write_text(text.replace("ViT-B-32,openai,151.28,14.78,0.5245,0.6332,", "ViT-B-32,openai,151.28,14.78,0.5245,high,"))
    with pytest.raises(BenchmarkError, match="line 84: ImageNet 1k is 'high'"):
        published.load_published(CATALOG, bad_cell)

    runner = CliRunner()
    (tmp_path / "results").mkdir()
    for args, message in [
        (["compare"], "needs two models A B, or --published"),
        (["compare", "--published", "--table", str(renamed_identity), "--results", str(tmp_path / "results")], "lacks"),
        (["compare", "--published", "--results", str(tmp_path / "none")], "does not exist"),
        (["compare", "--published", "--tasks", str(bad_cell), "--results", str(tmp_path / "results")], "task list"),
    ]:
        out = runner.invoke(app, args, env={"COLUMNS": "200"})
        assert out.exit_code == 2 and message in out.output and "Traceback" not in out.output, (args, out.output)
    assert not (tmp_path / "published_comparison.csv").exists()
