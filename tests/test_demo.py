"""`benchmark demo` end to end, offline: synthetic data, tiny models, init -> plan -> local run -> parse -> report."""

from __future__ import annotations

import csv
import json
import math
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from test_report import embedded_data

from openclip_benchmark.demo import DEMO_DATASETS, DEMO_MODELS, MARKER, DemoLayout, prepare_workdir
from openclip_benchmark.core.errors import BenchmarkError
from openclip_benchmark.core.records import Result, read_record
from openclip_benchmark.tracker import Tracker
from openclip_benchmark.storage.layout import result_key


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    """`benchmark demo --images 16` run once in an empty folder: (the folder, what it printed)."""
    from typer.testing import CliRunner

    from openclip_benchmark.cli import app

    folder = tmp_path_factory.mktemp("demo_run")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(folder)
        result = CliRunner().invoke(app, ["demo", "--workdir", "demo", "--images", "16"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return folder, result.output


@pytest.mark.slow
def test_demo_end_to_end(demo_run):
    tmp_path, out = demo_run
    for name, *_ in DEMO_MODELS:
        assert name in out
    for ds in DEMO_DATASETS:
        assert ds.name in out and ds.metric in out
    assert "benchmark status --tracker demo/results.csv" in out
    n_pairs = len(DEMO_MODELS) * len(DEMO_DATASETS)
    assert f"init: {n_pairs} pairs" in out and "plan: 1 shard(s)" in out

    w = DemoLayout(tmp_path / "demo")
    entries = list(Tracker.load(w.tracker))
    assert len(entries) == n_pairs and {e.status for e in entries} == {"succeeded"}
    assert all(e.shard_id and e.est_gpu for e in entries)  # planned before it ran
    assert list((w.results / "_manifests").glob("*.json"))
    records = [read_record((w.results / result_key(e.pair)).read_bytes()) for e in entries]
    assert all(isinstance(r, Result) for r in records) and {r.pair for r in records} == {e.pair for e in entries}
    for record in records:
        main = next(d.metric for d in DEMO_DATASETS if d.name == record.pair.dataset)
        assert record.metrics[main] is not None
        for value in record.metrics.values():
            assert value is None or (0.0 <= value <= 1.0 and math.isfinite(value))
    for table in ("classification_metrics", "retrieval_metrics", "leaderboard"):
        with open(w.workdir / f"{table}.csv", newline="") as fh:
            assert list(csv.DictReader(fh)), table
    assert (w.report / "index.html").is_file()
    # local-dir models are in no catalog: the worker counted their size, so the compute plot has points
    assert all(r.run.model_profile.image_gflops > 0 for r in records)
    with open(w.workdir / "leaderboard.csv", newline="") as fh:
        board = list(csv.DictReader(fh))
    assert all(float(row["image_gflops"]) > 0 and float(row["text_gflops"]) > 0 and int(row["params"]) > 0 for row in board)
    # so the report draws every chart: compute, and seconds labelled "no GPU price" for these CPU runs
    data = embedded_data((w.report / "index.html").read_text())
    assert data["cost"]["column"] == "seconds" and data["cost"]["note"].startswith("no GPU price")
    assert len(data["rows"]) == len(DEMO_MODELS) and all(r[data["columns"].index("seconds")] > 0 for r in data["rows"])
    # the printed values are the stored ones
    for record in records:
        main = next(d.metric for d in DEMO_DATASETS if d.name == record.pair.dataset)
        assert f"{record.metrics[main]:.4f}" in out


@pytest.mark.slow
def test_the_printed_clip_benchmark_line_runs_as_printed_and_gives_the_same_acc1(demo_run):
    """The demo's proof of parity is a shell line: run exactly as printed, clip_benchmark gives the demo's acc1."""
    folder, out = demo_run
    (line,) = [line.strip() for line in out.splitlines() if line.strip().startswith("clip_benchmark eval")]
    argv = shlex.split(line, comments=True)
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    done = subprocess.run(argv, cwd=folder, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    theirs = json.loads((folder / "demo" / "cb.json").read_text())["metrics"]["acc1"]
    shapes = DEMO_DATASETS[0].name
    w = DemoLayout(folder / "demo")
    ours = next(read_record((w.results / result_key(e.pair)).read_bytes()) for e in Tracker.load(w.tracker)
                if e.pair.dataset == shapes and e.pair.model.endswith(DEMO_MODELS[0][0]))
    assert theirs == ours.metrics["acc1"]


def test_workdir_is_only_reused_when_the_demo_made_it(tmp_path):
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "thesis.tex").write_text("precious")
    with pytest.raises(BenchmarkError, match="not made by `benchmark demo`"):
        prepare_workdir(DemoLayout(foreign))
    assert (foreign / "thesis.tex").read_text() == "precious"

    layout = DemoLayout(tmp_path / "demo")
    prepare_workdir(layout)  # a fresh folder
    (layout.workdir / "results.csv").write_text("old run")
    prepare_workdir(layout)  # a previous demo's folder starts over
    assert sorted(p.name for p in layout.workdir.iterdir()) == [MARKER]


def test_clean_removes_only_demo_folders(tmp_path):
    from openclip_benchmark.demo import remove_workdir

    layout = DemoLayout(tmp_path / "demo")
    prepare_workdir(layout)
    remove_workdir(layout)
    assert not layout.workdir.exists()
    other = DemoLayout(tmp_path / "other")
    other.workdir.mkdir()
    remove_workdir(other)
    assert other.workdir.exists()


def test_cli_refusals_are_one_line_errors(tmp_path):
    from typer.testing import CliRunner

    from openclip_benchmark.cli import app

    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    for args, message in (
        (["--workdir", str(foreign)], "not made by `benchmark demo`"),
        (["--workdir", str(tmp_path / "new"), "--images", "5"], "--images must be at least 10"),
    ):
        result = CliRunner().invoke(app, ["demo", *args])
        assert result.exit_code == 2 and message in result.output, result.output
        assert "Traceback" not in result.output and result.output.count("\n") == 1
    assert (foreign / "notes.txt").read_text() == "keep me"
