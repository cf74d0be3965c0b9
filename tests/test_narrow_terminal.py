"""Readable at 80 columns: every table fits the terminal it is printed in, figures (counts, dollars, hours, wall
clock) are never cut, and names are whole or broken at their joints, never hidden behind an ellipsis. Run on the
full catalog with COLUMNS=80, as an ordinary terminal prints them."""

from __future__ import annotations

import json
import re

import pytest
from rich.console import Console
from typer.testing import CliRunner

from openclip_benchmark.catalog import load_catalog
from openclip_benchmark.cli import app
from openclip_benchmark.cli.tables import FIGURE, TEXT, Column, FittedTable
from openclip_benchmark.collect import published
from openclip_benchmark.core.pair import Pair
from openclip_benchmark.core.project import SETTINGS
from openclip_benchmark.pipeline.launch import money
from openclip_benchmark.tracker import open_tracker

CATALOG = load_catalog()
WIDTH = 80


def narrow(*args, code: int = 0) -> str:
    out = CliRunner().invoke(app, [str(a) for a in args], env={"COLUMNS": str(WIDTH)})
    assert out.exit_code == code, out.output
    if "--json" in args:
        return out.stdout
    too_wide = [line for line in out.stdout.splitlines() if len(line) > WIDTH]
    assert not too_wide, "\n".join(too_wide)
    return out.stdout


def whole(names, output: str) -> list[str]:
    """The names that do not appear whole on some line of the output."""
    return [n for n in names if n not in output]


@pytest.fixture(scope="module")
def full_catalog(tmp_path_factory):
    """`benchmark init` of every model and dataset, with pairs in every status; failures on the longest names."""
    folder = tmp_path_factory.mktemp("catalog")
    with pytest.MonkeyPatch.context() as mp:
        for name in (v for s in SETTINGS.values() for v in s.env):
            mp.delenv(name, raising=False)
        mp.chdir(folder)
        narrow("init")
        longest = sorted(CATALOG.models, key=lambda m: -len(m.ref))[:12]
        failed = [Pair(m.arch, m.pretrained, "kitti_closest_vehicle_distance") for m in longest]
        with open_tracker(folder / "results.csv") as t:
            for i, pair in enumerate(failed):
                t.update(pair, status="failed", attempts=2, error=f"RuntimeError: CUDA out of memory ({i}) " + "x" * 90)
            rest = [e.pair for e in t.select(["pending"])][:60]
            for status, pairs in zip(("planned", "launched", "running", "succeeded", "skipped"),
                                     (rest[0:10], rest[10:20], rest[20:30], rest[30:40], rest[40:50])):
                for pair in pairs:
                    t.update(pair, status="launched" if status == "running" else status)
                    if status == "running":
                        t.update(pair, status="running")
        yield dict(folder=folder, failed=failed)


def _plan_totals(folder) -> tuple[dict, list[str]]:
    plan = json.loads((folder / ".benchmark" / "plan.json").read_text())
    figures = [money(plan["cost_spot"]), money(plan["cost_on_demand"]), f"{plan['runtime_s'] / 3600:.1f}"]
    return plan, figures


def _top_models(plan: dict, spot: bool = True) -> set[str]:
    key = "cost_spot" if spot else "cost_on_demand"
    top = sorted(plan["shards"], key=lambda s: -(s[key] or 0))[:5]
    return {p["model"] for s in top for p in s["pairs"]} | {p["pretrained"] for s in top for p in s["pairs"]}


def test_plan_prints_a_summary_whose_totals_and_names_are_whole(full_catalog, monkeypatch):
    monkeypatch.chdir(full_catalog["folder"])
    out = narrow("plan")
    plan, figures = _plan_totals(full_catalog["folder"])
    assert len(plan["shards"]) > 300 and len(out.splitlines()) < 60  # a summary, not one row per shard
    total = next(line for line in out.splitlines() if line.startswith("total"))
    assert all(f in total.split() for f in figures), (figures, total)
    assert f"{len(plan['shards'])} shard(s)" in out and "GPU-h" in out and "wall clock ≈" in out
    assert not whole(_top_models(plan), out)
    assert "…" not in out
    every = narrow("plan", "--shards")
    assert not whole([s["shard_id"] for s in plan["shards"]], every)
    assert all(f in every for f in figures)
    assert json.loads(narrow("plan", "--json")) == plan


def test_launch_dry_run_prints_the_same_summary(full_catalog, monkeypatch):
    monkeypatch.chdir(full_catalog["folder"])
    out = narrow("launch", "--dry-run", "--backend", "local", "--budget", "5")
    plan, figures = _plan_totals(full_catalog["folder"])
    total = next(line for line in out.splitlines() if line.startswith("total"))
    assert all(f in total.split() for f in figures)
    would = re.search(r"would launch (\d+) shard\(s\), estimated (\$[\d,.]+) \(spot\)", out)
    spent, fits = 0.0, 0  # the budget's rule, counted here: plan order, skipping a shard that would pass $5
    for shard in plan["shards"]:
        if spent + shard["cost_spot"] <= 5:
            spent, fits = spent + shard["cost_spot"], fits + 1
    assert would and int(would.group(1)) == fits > 0 and would.group(2) == money(spent) and "left for later" in out
    assert not whole(_top_models(plan), out) and "…" not in out


def test_status_keeps_every_count_and_failed_model_whole(full_catalog, monkeypatch):
    monkeypatch.chdir(full_catalog["folder"])
    out = narrow("status", "--no-queue")
    summary = json.loads(narrow("status", "--no-queue", "--json"))
    by_status = next(line for line in out.splitlines() if line.startswith("total"))
    assert by_status.split() == ["total", str(summary["total"])]
    for status, count in summary["by_status"].items():
        assert re.search(rf"^{status}\s+{count}$", out, re.M), status
    header = next(line for line in out.splitlines() if line.startswith("dataset "))
    assert header.split() == ["dataset", "pending", "planned", "launched", "running", "succeeded", "failed",
                              "skipped", "total"]
    datasets = out[out.index("by dataset"):out.index("by model family")]
    assert len(re.findall(r" \d+$", datasets, re.M)) == len(summary["by_dataset"])  # one row (and total) each
    failed = full_catalog["failed"]
    assert not whole({p.model for p in failed} | {p.pretrained for p in failed}, out)
    assert "of memory (11)" in out and "…" not in out  # the error wraps at its spaces


def test_compare_published_keeps_every_model_and_figure_whole(full_catalog, tmp_path):
    from test_published import _write

    table = published.load_published(CATALOG).values
    columns = set.intersection(*(set(row) for row in table.values()))
    tasks = [t for t in published.load_tasks(CATALOG) if t.dataset and t.column in columns]
    results = tmp_path / "results"
    flagged = 0
    for (model, pretrained), row in table.items():
        if CATALOG.find_model(model, pretrained) is None:
            continue
        for i, task in enumerate(tasks):
            value = row[task.column] + (0.02 if i == 0 else 0.0)  # one flagged dataset per model
            flagged += i == 0
            spec = CATALOG.datasets[task.dataset]
            metrics = ({"image_retrieval_recall@1": value, "text_retrieval_recall@1": value,
                        spec.metric: value}  # a result lacking its main metric is invalid
                       if task.metric == "mean_recall@1" else {"acc1": value, task.metric: value})
            _write(results, Pair(model, pretrained, task.dataset, task=spec.task), metrics)
    out = narrow("compare", "--published", "--results", results, "--out", tmp_path)
    written = {(m, p) for m, p in table if CATALOG.find_model(m, p)}
    compared = sum(1 for _ in results.rglob("*.json")) + len(written)  # and DataComp's average of each model
    assert f"{compared} compared, {flagged} flagged" in " ".join(out.split())
    models = {m for m, p in table if CATALOG.find_model(m, p)} | {p for m, p in table if CATALOG.find_model(m, p)}
    assert not whole(models, out) and "…" not in out
    for (model, pretrained), row in list(table.items())[:5]:
        if CATALOG.find_model(model, pretrained):
            assert f"{100 * row[tasks[1].column]:.2f}" in out


@pytest.mark.parametrize("width", [40, 60, 90, 120])
def test_the_table_helper_never_cuts_a_figure_and_keeps_names_whole_at_their_joints(width):
    names = ["convnext_base_w_320:laion_aesthetic_s13b_b82k_augreg", "ViT-B-32:openai",
             "xlm-roberta-large-ViT-H-14:frozen_laion5b_s13b_b90k"]
    figures = [["1,234,567", "$90,582.12", "282.4 GPU-h"], ["1", "$0.01", "0.1 GPU-h"], ["12", "$1.00", "1.0 GPU-h"]]
    table = FittedTable("t", [Column("model"), Column("pairs", FIGURE), Column("spot", FIGURE),
                              Column("runtime", FIGURE), Column("note", TEXT)],
                        [[n, *f, "a long explanation of what happened " * 3] for n, f in zip(names, figures)])
    console = Console(width=width, record=True)
    console.print(table)
    text = console.export_text()
    assert "…" not in text and all(len(line) <= width for line in text.splitlines())
    assert not whole([figure for row in figures for figure in row], text)  # at 40 columns too
    if width >= 90:  # room for the longest part (34) beside the figures (30) and the text (16): each part whole
        assert not whole([part for n in names for part in n.split(":")], text)
    if width >= 120:  # room for the longest name (52): each name whole
        assert not whole(names, text)


def test_models_prices_and_datasets_fit_with_every_name_and_figure_whole(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    models = narrow("models")
    assert not whole({m.arch for m in CATALOG.models} | {m.pretrained for m in CATALOG.models}, models)
    assert len(json.loads(narrow("models", "--json"))) == len(CATALOG.models) == 196
    prices = json.loads(narrow("prices", "--json"))
    table = narrow("prices")
    assert len(prices["offers"]) == 24 and prices["date"] in table
    assert not whole([f"{o['price']:.3f}" for o in prices["offers"]], table)
    assert not whole([o["accelerator"] for o in prices["offers"]], table)
    datasets = narrow("datasets")
    assert not whole([str(s.size) for s in CATALOG.datasets.values()], datasets) and "…" not in datasets
