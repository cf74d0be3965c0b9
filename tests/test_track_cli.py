"""init, status, models, datasets through the real Typer app (in-process), plus a few real processes for exit
codes, tracebacks and start-up imports."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fixtures import HANG_S
from openclip_benchmark import catalog
from openclip_benchmark.cli import app
from openclip_benchmark.core.errors import BenchmarkError
from openclip_benchmark.core.pair import Pair
from openclip_benchmark.tracker import COLUMNS, Tracker, open_tracker

ROOT = Path(__file__).resolve().parents[1]
BENCHMARK = [sys.executable, "-c", "from openclip_benchmark.cli import app; app()"]
runner = CliRunner()


def invoke(*args: str, input: str | None = None):
    return runner.invoke(app, [str(a) for a in args], input=input)


def test_committed_results_csv_is_what_init_writes(tmp_path):
    """The top-level results.csv goes stale when the catalog changes: regenerate it with `benchmark init`."""
    out = tmp_path / "results.csv"
    result = invoke("init", "--tracker", out)
    assert result.exit_code == 0, result.output
    assert out.read_bytes() == (ROOT / "results.csv").read_bytes()
    header = out.read_text().splitlines()[0].split(",")
    assert header == COLUMNS
    tracker = Tracker.load(out)
    assert len(tracker) == 196 * (51 + 12)  # 43 of clip_benchmark's suite, 8 more of DataComp's, 12 more families
    assert {e.pair.language for e in tracker} == {"en"} and {e.status for e in tracker} == {"pending"}


def test_init_filters_and_merge_keeps_statuses(tmp_path):
    path = tmp_path / "r.csv"
    assert invoke("init", "-t", path, "-m", "ViT-B-32:openai", "-d", "cifar10,vtab/pets").exit_code == 0
    pair = Pair("ViT-B-32", "openai", "cifar10")
    with open_tracker(path) as t:
        t.update(pair, status="failed", error="CUDA out of memory", attempts=2)
    result = invoke("init", "-t", path, "-m", "ViT-B-32:openai", "-m", "RN50:openai", "-d", "cifar10", "-d", "imagenet1k", "-l", "en,jp")
    assert result.exit_code == 0, result.output
    t = Tracker.load(path)
    assert t.get(pair).status == "failed" and t.get(pair).attempts == 2
    assert t.get(Pair("ViT-B-32", "openai", "imagenet1k", language="jp")).status == "pending"
    assert t.get(Pair("RN50", "openai", "cifar10", language="jp")) is None  # cifar10 has English class names only
    assert len(t) == 1 + 2 + 2 * 2  # the earlier pets pair kept, cifar10 x 2 models, imagenet1k x 2 models x 2 languages
    assert "new pairs" in result.output


def test_init_explicit_references_and_other_mapping(tmp_path):
    mapping = tmp_path / "fixtures.json"
    mapping.write_text(json.dumps({"datasets": {
        "fixture_cls": {"wds_name": "wds_fixture_cls", "task": "zeroshot_classification", "size": 24, "num_classes": 3, "metric": "acc1"},
        "fixture_ret": {"wds_name": "wds_fixture_ret", "task": "zeroshot_retrieval", "size": 8, "captions_per_image": 2, "metric": "image_retrieval_recall@5"},
    }}))
    path = tmp_path / "r.csv"
    result = invoke("init", "-t", path, "--dataset-mapping", mapping, "-m", "local-dir:/models/tiny", "-m", "ViT-B-32:/ckpt/e32.pt")
    assert result.exit_code == 0, result.output
    pairs = {(e.pair.model, e.pair.pretrained, e.pair.dataset, e.pair.task) for e in Tracker.load(path)}
    assert pairs == {
        ("local-dir:/models/tiny", "", "fixture_cls", "zeroshot_classification"),
        ("local-dir:/models/tiny", "", "fixture_ret", "zeroshot_retrieval"),
        ("ViT-B-32", "/ckpt/e32.pt", "fixture_cls", "zeroshot_classification"),
        ("ViT-B-32", "/ckpt/e32.pt", "fixture_ret", "zeroshot_retrieval"),
    }


def test_reset_asks_first(tmp_path):
    path = tmp_path / "r.csv"
    invoke("init", "-t", path, "-m", "ViT-B-32:openai", "-d", "cifar10,cars")
    with open_tracker(path) as t:
        t.update(Pair("ViT-B-32", "openai", "cars"), status="succeeded")
    before = path.read_bytes()
    refused = invoke("init", "-t", path, "-m", "RN50:openai", "-d", "cifar10", "--reset", input="n\n")
    assert refused.exit_code != 0 and path.read_bytes() == before
    done = invoke("init", "-t", path, "-m", "RN50:openai", "-d", "cifar10", "--reset", "--yes")
    assert done.exit_code == 0, done.output
    assert [(e.pair.model, e.status) for e in Tracker.load(path)] == [("RN50", "pending")]


@pytest.mark.parametrize(
    "args, message",
    [
        (["-m", "ViT-B-33"], "unknown model 'ViT-B-33'; did you mean ViT-B-32"),
        (["-d", "cifar11"], "did you mean cifar10"),
        (["-l", "klingon"], "unknown language 'klingon'"),
        (["-d", "cifar10", "-l", "jp"], "no pair matches"),
        (["--dataset-mapping", "/nonexistent/map.json"], "does not exist"),
    ],
)
def test_init_bad_input_is_one_line_and_changes_nothing(tmp_path, args, message):
    path = tmp_path / "r.csv"
    invoke("init", "-t", path, "-m", "RN50:openai", "-d", "cars")
    before = path.read_bytes()
    result = invoke("init", "-t", path, *args)
    assert result.exit_code == 2
    assert message in result.output and result.output.startswith("error: ") and result.output.count("\n") == 1
    assert path.read_bytes() == before


def test_malformed_tracker_names_the_line_and_is_left_alone(tmp_path):
    path = tmp_path / "r.csv"
    invoke("init", "-t", path, "-m", "RN50:openai", "-d", "cars,cifar10")
    lines = path.read_text().splitlines(keepends=True)
    lines[2] = lines[2].replace(",pending,", ",exploded,")
    path.write_text("".join(lines))
    before = path.read_bytes()
    for command in (["init", "-t", path], ["status", "-t", path]):
        result = invoke(*command)
        assert result.exit_code == 2
        assert "line 3" in result.output and "exploded" in result.output
        assert path.read_bytes() == before


def _tracker_with_states(path: Path) -> None:
    invoke("init", "-t", path, "-m", "ViT-B-32:openai,RN50:openai,convnext_base_w:laion2b_s13b_b82k", "-d", "cifar10,cars")
    with open_tracker(path) as t:
        t.update(Pair("ViT-B-32", "openai", "cifar10"), status="succeeded", observed_runtime_s=12.5)
        t.update(Pair("RN50", "openai", "cars"), status="failed", error="RuntimeError: [bold]CUDA out of memory", attempts=1)
        t.update(Pair("RN50", "openai", "cifar10"), status="launched", job_id="7", est_cost_usd=0.25)


def test_status_json_counts_and_failures(tmp_path, monkeypatch):
    path = tmp_path / "r.csv"
    _tracker_with_states(path)
    result = invoke("status", "-t", path, "--json", "--no-queue")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert summary["total"] == 6
    assert summary["by_status"] == {"pending": 3, "planned": 0, "launched": 1, "running": 0, "succeeded": 1, "failed": 1, "skipped": 0}
    assert summary["by_dataset"]["cifar10"] == {"launched": 1, "pending": 1, "succeeded": 1}
    assert summary["by_family"] == {"ConvNeXt": {"pending": 2}, "ResNet": {"failed": 1, "launched": 1}, "ViT-B": {"pending": 1, "succeeded": 1}}
    assert [(f["model"], f["dataset"], f["error"]) for f in summary["failed"]] == [("RN50", "cars", "RuntimeError: [bold]CUDA out of memory")]
    assert summary["est_cost_usd_open"] == 0.25 and summary["observed_runtime_s"] == 12.5


def test_status_table_shows_reasons_verbatim(tmp_path, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    path = tmp_path / "r.csv"
    _tracker_with_states(path)
    result = invoke("status", "-t", path, "--no-queue")
    assert result.exit_code == 0, result.output
    for text in ("by dataset", "by model family", "ConvNeXt", "failed pairs", "[bold]CUDA out of memory"):
        assert text in result.output


def test_status_merges_the_job_queue_first(tmp_path, monkeypatch):
    from openclip_benchmark.backends.skypilot import SkyPilotBackend
    from openclip_benchmark.tracker import JobState

    path = tmp_path / "r.csv"
    _tracker_with_states(path)
    calls = []

    def fake_poll(self, job_ids):
        calls.append(job_ids)
        return [JobState("skypilot", "7", "running")]

    monkeypatch.setattr(SkyPilotBackend, "poll", fake_poll)
    assert json.loads(invoke("status", "-t", path, "--json", "--no-queue").output)["by_status"]["launched"] == 1
    assert calls == []
    summary = json.loads(invoke("status", "-t", path, "--json").output)
    assert calls == [["7"]] and summary["queue_moved"] == {"running": 1} and summary["by_status"]["running"] == 1
    assert Tracker.load(path).get(Pair("RN50", "openai", "cifar10")).status == "running"  # saved under the lock

    def unreachable(self, job_ids):
        raise BenchmarkError("cannot read the SkyPilot job queue: connection refused")

    monkeypatch.setattr(SkyPilotBackend, "poll", unreachable)
    result = invoke("status", "-t", path)
    assert result.exit_code == 0
    assert "warning: job queue not read (cannot read the SkyPilot job queue: connection refused)" in result.output
    assert "by dataset" in result.output


def test_status_without_tracker(tmp_path):
    result = invoke("status", "-t", tmp_path / "none.csv")
    assert result.exit_code == 2 and "run `benchmark init` first" in result.output


def test_models_and_datasets_listings():
    models = json.loads(invoke("models", "ViT-L-14*", "openai", "--json").output)
    refs = {f"{m['arch']}:{m['pretrained']}" for m in models}
    assert "ViT-L-14:openai" in refs and "RN50:openai" in refs and "ViT-L-14-336:openai" in refs
    assert all(m["image_gflops"] > 0 and m["family"] for m in models)
    table = invoke("models", "ViT-B-32:openai")
    assert table.exit_code == 0 and "8.82" in table.output and "5.96" in table.output
    assert invoke("models", "local-dir:/m").exit_code == 2
    unknown = invoke("models", "ViT-Q-14")
    assert unknown.exit_code == 2 and "unknown model" in unknown.output

    retrieval = json.loads(invoke("datasets", "retrieval", "--json").output)
    assert [d["name"] for d in retrieval] == ["mscoco_captions", "mscoco_captions2017", "flickr30k", "flickr8k"]
    assert retrieval[0]["wds_name"] == "wds_mscoco_captions" and retrieval[0]["task"] == "zeroshot_retrieval"
    assert len(json.loads(invoke("datasets", "--json").output)) == 51 + 14  # + clip_benchmark's other families
    table = invoke("datasets", "imagenet1k")
    assert table.exit_code == 0 and "50000" in table.output and "jp" in table.output


def test_models_refresh_writes_a_new_snapshot(tmp_path, monkeypatch):
    target = tmp_path / "models.json"
    from openclip_benchmark.catalog import snapshot

    real_build = snapshot.build_model_catalog
    monkeypatch.setattr(catalog, "MODELS_PATH", target)
    monkeypatch.setattr(snapshot, "build_model_catalog", lambda progress=None: real_build(["RN50"], progress=progress))
    result = invoke("models", "--refresh", "--json")
    assert result.exit_code == 0, result.output
    written = json.loads(target.read_text())
    assert [m["pretrained"] for m in written["models"]] == ["openai", "yfcc15m", "cc12m"]
    assert catalog.load_models(target)[0] == catalog.load_models(catalog.PACKAGE_DIR / "data" / "models.json")[0]


def _run(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "COLUMNS": "200"}
    env.pop("BENCHMARK_DEBUG", None)
    return subprocess.run([*BENCHMARK, *args], capture_output=True, text=True, timeout=HANG_S, cwd=ROOT, env=env)


def test_help_lists_every_command_and_imports_nothing_heavy():
    """`benchmark --help` stays fast: no torch, open_clip, pandas, SkyPilot, boto3 or rich tables at start-up."""
    probe = (
        "import sys; from openclip_benchmark.cli import app\n"
        "heavy = [m for m in ('torch', 'open_clip', 'pandas', 'sky', 'boto3', 'rich.table', 'rich.progress', 'matplotlib', 'numpy',"
        " 'pydantic')"
        " if m in sys.modules]\n"
        "print(heavy)\n"
        "try:\n    app(['--help'])\nexcept SystemExit as e:\n    print('exit', e.code)\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=HANG_S, cwd=ROOT,
                         env={**os.environ, "COLUMNS": "200"})
    lines = out.stdout.splitlines()
    assert lines[0] == "[]", out.stdout + out.stderr
    assert lines[-1] == "exit 0"
    for command in ("init", "status", "models", "datasets", "plan", "launch", "sync", "parse", "report", "run", "worker"):
        assert f" {command} " in out.stdout, command


def test_real_process_errors_are_one_line_without_traceback(tmp_path):
    bad = _run("init", "--tracker", str(tmp_path / "r.csv"), "--models", "ViT-B-33")
    assert bad.returncode == 2
    assert bad.stderr.strip() == "error: unknown model 'ViT-B-33'; did you mean ViT-B-32, ViT-B, ViT-B-16?"
    assert "Traceback" not in bad.stderr + bad.stdout and not (tmp_path / "r.csv").exists()
