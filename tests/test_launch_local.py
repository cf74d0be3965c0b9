"""Local backend end to end: a planned sweep on fixture data and a tiny model, run by the real worker in-process."""

from __future__ import annotations

import json
import uuid

from typer.testing import CliRunner

from fixtures import HANG_S, make_classification_wds, make_retrieval_wds, make_tiny_model
from openclip_benchmark.cli import app
from openclip_benchmark.core.manifest import Manifest
from openclip_benchmark.core.pair import Pair
from openclip_benchmark.core.records import read_record
from openclip_benchmark.storage.store import LocalStore
from openclip_benchmark.tracker import Tracker, open_tracker
from openclip_benchmark.storage.layout import result_key


def test_local_backend_runs_a_planned_sweep_and_updates_the_tracker(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    data = tmp_path / "data"
    make_classification_wds(data, name="fixture_cls", n=12)
    make_retrieval_wds(data, name="fixture_ret")
    model = make_tiny_model(tmp_path / "models")
    marker = tmp_path / f"pwned-{uuid.uuid4().hex}"
    good = [
        Pair(model, "", "fixture_cls", task="zeroshot_classification"),
        Pair(model, "", "fixture_ret", task="zeroshot_retrieval"),
    ]
    hostile = Pair(f"x$(touch {marker})", "openai", "fixture_cls")
    with open_tracker(tmp_path / "results.csv", create=True) as t:
        t.add([*good, hostile])

    runner = CliRunner()
    args = ["launch", "--backend", "local", "--store", str(tmp_path / "results"), "--dataset-root", str(data),
            "--precision", "fp32", "--batch-size", "8", "--calibrate-from", str(tmp_path / "results")]
    (tmp_path / "results").mkdir()
    out = runner.invoke(app, args + ["--yes"], env={"COLUMNS": "200"})
    assert out.exit_code == 3, out.output  # the hostile pair failed, the others ran
    assert "not in the catalog" in out.output  # fallback estimates are said, not hidden

    state = Tracker.load(tmp_path / "results.csv")
    store = LocalStore(tmp_path / "results")
    for pair in good:
        entry = state.get(pair)
        assert entry.status == "succeeded" and entry.job_id == "local" and entry.attempts == 1, entry
        assert entry.shard_id and entry.est_runtime_s > 0 and entry.observed_runtime_s > 0
        record = read_record(store.get(result_key(pair)))
        assert record.pair == pair and record.run.shard_id == entry.shard_id
        assert all(v is None or 0.0 <= v <= 1.0 for v in record.metrics.values())
    bad = state.get(hostile)
    assert bad.status == "failed" and bad.error
    assert not marker.exists()
    manifests = {info.key for info in store.list("_manifests/")}
    assert {f"_manifests/{e.shard_id}.json" for e in state} <= manifests
    for key in manifests:
        assert Manifest.from_json(store.get(key)).pairs

    # nothing pending: a second launch runs nothing; --retry-failed plans the failure again
    again = runner.invoke(app, args + ["--dry-run", "--retry-failed"], env={"COLUMNS": "200"})
    assert again.exit_code == 0 and "would launch 1 shard(s)" in again.output
    assert json.loads((tmp_path / ".benchmark" / "plan.json").read_text())["shards"][0]["pairs"][0]["model"] == hostile.model

    # a tracker that forgot them (as if re-created): the relaunch skips the stored results and marks them succeeded
    (tmp_path / "results.csv").unlink()  # succeeded -> pending is no legal move: re-create the tracker instead
    with open_tracker(tmp_path / "results.csv", create=True) as t:
        t.add(good)
    redo = runner.invoke(app, args + ["--yes"], env={"COLUMNS": "200"})
    assert redo.exit_code == 0, redo.output
    state = Tracker.load(tmp_path / "results.csv")
    assert [state.get(pair).status for pair in good] == ["succeeded", "succeeded"]


def test_bad_plan_input_is_one_line_and_a_non_zero_exit(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    exe = Path(sys.executable).with_name("benchmark")
    with open_tracker(tmp_path / "results.csv", create=True) as t:
        t.add([Pair("ViT-B-32", "openai", "cifar10")])
    before = (tmp_path / "results.csv").read_bytes()
    for args, message in (
        (["plan", "--gpus", "B300"], "error: unknown GPU(s) B300"),
        (["launch", "--backend", "local", "--pool", "p"], "error: --pool only applies to the skypilot backend"),
        (["launch", "--dry-run", "--clouds", "lambda"], "error: no spot price"),
        (["plan", "--tracker", "missing.csv"], "error: missing.csv does not exist"),
    ):
        done = subprocess.run([str(exe), *args], cwd=tmp_path, capture_output=True, text=True, timeout=HANG_S)
        assert done.returncode == 2, (args, done.stdout, done.stderr)
        assert done.stderr.startswith(message) and done.stderr.count("\n") == 1, done.stderr
        assert "Traceback" not in done.stdout + done.stderr
    assert (tmp_path / "results.csv").read_bytes() == before
