"""The tracker's state machine: one table of allowed moves, refused paths as one-line errors, and no update lost
to a concurrent writer (real processes racing on the committed full-catalog tracker)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fixtures import HANG_S
from openclip_benchmark.cli import app
from openclip_benchmark.core.pair import Pair
from openclip_benchmark.core.records import Failure, Result
from openclip_benchmark.tracker import STATUSES, TRANSITIONS, Tracker, TrackerError, allowed, open_tracker

ROOT = Path(__file__).resolve().parents[1]
BENCHMARK = [sys.executable, "-c", "from openclip_benchmark.cli import app; app()"]
PAIR = Pair("ViT-B-32", "openai", "cifar10")


def _at(tmp_path: Path, status: str) -> Tracker:
    """A tracker (in memory) whose one pair is in `status`, put there by legal moves."""
    route = {
        "pending": [], "planned": ["planned"], "launched": ["launched"], "running": ["launched", "running"],
        "succeeded": ["succeeded"], "failed": ["failed"], "skipped": ["skipped"],
    }[status]
    tracker = Tracker(tmp_path / "r.csv", {})
    tracker.add([PAIR])
    for step in route:
        tracker.update(PAIR, status=step)
    assert tracker.get(PAIR).status == status
    return tracker


def test_the_table_names_every_status_and_keeps_the_lifecycle(tmp_path):
    assert set(TRANSITIONS) == set(STATUSES)
    assert all(targets <= set(STATUSES) for targets in TRANSITIONS.values())
    lifecycle = ["pending", "planned", "launched", "running", "succeeded"]
    assert all(allowed(a, b) for a, b in zip(lifecycle, lifecycle[1:]))
    assert allowed("failed", "planned") and allowed("failed", "launched")  # a retry
    assert all(allowed(s, "succeeded") for s in STATUSES)  # a result is a fact
    assert not any(allowed("succeeded", s) for s in STATUSES if s != "succeeded")
    assert not allowed("launched", "planned") and not allowed("running", "launched") and not allowed("skipped", "planned")
    with pytest.raises(TrackerError, match="unknown status"):
        allowed("pending", "exploded")


@pytest.mark.parametrize("old", STATUSES)
def test_update_obeys_the_table_and_an_illegal_move_changes_nothing(tmp_path, old):
    for new in STATUSES:
        tracker = _at(tmp_path, old)
        before = tracker.get(PAIR)
        if allowed(old, new):
            assert tracker.update(PAIR, status=new, error="e").status == new
        else:
            with pytest.raises(TrackerError, match=f"cannot go from {old} to {new}"):
                tracker.update(PAIR, status=new)
            assert tracker.get(PAIR) == before


def test_records_move_pairs_and_a_stale_failure_never_hides_a_result(tmp_path):
    run = {"seconds": 4.0, "attempt": 1}
    result = Result(pair=PAIR, metrics={"acc1": 0.5}, run=run)
    failure = Failure(pair=PAIR, error={"type": "RuntimeError", "message": "boom"}, attempt=2)
    for status in STATUSES:
        tracker = _at(tmp_path, status)
        assert tracker.apply_record(result).status == "succeeded"
        assert tracker.apply_record(failure).status == "succeeded"
    assert _at(tmp_path, "launched").apply_record(failure).status == "failed"


def test_a_folder_in_the_trackers_place_is_one_line_naming_it(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "results.csv").mkdir()
    runner = CliRunner()
    for args in (["status", "--no-queue"], ["init", "-m", "RN50:openai", "-d", "cars"], ["plan"]):
        out = runner.invoke(app, args)
        assert out.exit_code == 2, (args, out.output)
        assert out.output == "error: the tracker results.csv is a folder, not a CSV file\n", out.output
    assert not (tmp_path / "results.csv.lock").exists()


def test_an_unreadable_tracker_is_one_line_naming_it(tmp_path, monkeypatch):
    """Root reads a mode-000 file, so as root the refusal is simulated where the tracker reads its file."""
    path = tmp_path / "r.csv"
    with open_tracker(path, create=True) as t:
        t.add([PAIR])
    path.chmod(0)
    if os.geteuid() == 0:
        real = Path.read_text

        def refuse(self, *args, **kwargs):
            if self == path:
                raise PermissionError(13, "Permission denied", str(self))
            return real(self, *args, **kwargs)

        monkeypatch.setattr(Path, "read_text", refuse)
    try:
        out = CliRunner().invoke(app, ["status", "--no-queue", "-t", str(path)])
    finally:
        path.chmod(0o644)
    assert out.exit_code == 2, out.output
    assert out.output == f"error: cannot read the tracker {path}: Permission denied\n"


def test_a_missing_tracker_leaves_no_lock_behind(tmp_path):
    path = tmp_path / "none.csv"
    with pytest.raises(TrackerError, match="does not exist"):
        with open_tracker(path):
            pass
    out = CliRunner().invoke(app, ["status", "--no-queue", "-t", str(path)])
    assert out.exit_code == 2 and "run `benchmark init` first" in out.output
    assert list(tmp_path.iterdir()) == []


# A sync-like writer: in its own process, under the tracker's lock, moves a few pending pairs to succeeded per save
# until the test says stop (or a bounded number of rounds), and logs every pair it saved as succeeded.
WRITER = r"""
import json, sys, time
from pathlib import Path
from openclip_benchmark.tracker import open_tracker
path, log, stop = sys.argv[1:4]
done = set()
with open(log, "w") as out:
    for _ in range(400):
        if Path(stop).exists():
            break
        with open_tracker(path) as t:
            batch = [e.pair for e in t.select(["pending", "planned"]) if e.pair.id not in done][:3]
            for pair in batch:
                t.update(pair, status="succeeded")
        done.update(p.id for p in batch)
        out.write(json.dumps({"t": time.time(), "ids": [p.id for p in batch]}) + "\n")
        out.flush()
        time.sleep(0.05)
"""


def test_no_update_is_lost_to_a_concurrent_writer(tmp_path):
    """`plan --record` reads, plans for seconds, then records; a sync that marked pairs succeeded in between
    must keep them succeeded (compare-and-set under the lock, the table refusing succeeded -> planned)."""
    env = {**os.environ, "COLUMNS": "120"}
    env.pop("BENCHMARK_DEBUG", None)
    raced = 0
    for round_ in range(3):  # until the writer has saved while the command ran; one round almost always does
        if raced:
            break
        folder = tmp_path / f"round{round_}"
        folder.mkdir()
        tracker = folder / "results.csv"
        shutil.copyfile(ROOT / "results.csv", tracker)
        log, stop = folder / "writer.jsonl", folder / "stop"
        writer = subprocess.Popen([sys.executable, "-c", WRITER, str(tracker), str(log), str(stop)], env=env)
        try:
            started = time.time()
            done = subprocess.run([*BENCHMARK, "plan", "--record"], cwd=folder, env=env, capture_output=True, text=True, timeout=HANG_S)
            ended = time.time()
        finally:
            stop.touch()
            writer.wait(timeout=HANG_S)
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr
        saves = [json.loads(line) for line in log.read_text().splitlines()]
        raced += sum(started < s["t"] < ended for s in saves)
        marked = {pid for s in saves for pid in s["ids"]}
        state = Tracker.load(tracker)
        lost = [state.entries[pid].pair.label() for pid in marked if state.entries[pid].status != "succeeded"]
        assert not lost, f"{len(lost)} succeeded pair(s) overwritten, e.g. {lost[:3]}"
        assert len(state) == len(Tracker.load(ROOT / "results.csv"))  # every pair of the committed tracker
    assert raced > 0  # the writer did save while the command ran


def test_recording_a_launch_keeps_what_moved_since_the_plan(tmp_path):
    """The launch's read-modify-write re-checks each row under the lock: a pair a sync marked succeeded after the
    plan was made stays succeeded, and is reported."""
    from test_launch_skypilot import small_plan

    from openclip_benchmark.pipeline.launch import estimates
    from openclip_benchmark.tracker import JobSubmitted, record_outcomes

    pairs, result = small_plan()
    path = tmp_path / "results.csv"
    with open_tracker(path, create=True) as t:
        t.add(pairs)
    shard = result.shards[0]
    synced = shard.pairs[0]
    with open_tracker(path) as t:
        t.update(synced, status="succeeded", observed_runtime_s=3.0)
    kept = record_outcomes(path, [JobSubmitted("skypilot", "101", estimates(shard, spot=True))]).kept
    state = Tracker.load(path)
    assert [e.pair for e in kept] == [synced] and state.get(synced).status == "succeeded"
    assert all(state.get(p).status == "launched" and state.get(p).job_id == "101" for p in shard.pairs[1:])
