"""Resume: a worker killed mid-shard loses nothing it finished, and the re-run runs only what is missing."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from fixtures import HANG_S, make_classification_wds, make_suite
from openclip_benchmark.core.manifest import Manifest, RunSettings
from openclip_benchmark.core.pair import Pair
from openclip_benchmark.core.records import read_record
from openclip_benchmark.core.samples import read_samples, result_digest
from openclip_benchmark.storage.store import open_store
from openclip_benchmark.worker import run_shard
from openclip_benchmark.storage.layout import FAILURE_SUFFIX, is_record_key, result_key, samples_key



def _results(store) -> dict[str, os.stat_result]:
    """Result files only: not failure records, per-sample outcomes, or the shard bundle a finished run adds."""
    return {info.key: os.stat(store.root / info.key) for info in store.list()
            if is_record_key(info.key) and not info.key.endswith(FAILURE_SUFFIX)}


def test_killed_worker_keeps_finished_results_and_rerun_runs_only_the_rest(tmp_path):
    suite = make_suite(tmp_path / "data")
    # after the first, quick pair comes a long one, so that the kill lands mid-shard
    make_classification_wds(suite.root, "sun397", n=300, classes=("a", "b", "c", "d", "e"), shards=2, seed=4)
    model_a, model_b = suite.models
    pairs = [Pair(model_a, "", "voc2007_multilabel", task="multilabel"), Pair(model_a, "", "sun397"),
             Pair(model_a, "", "imagenet1k"), Pair(model_b, "", "imagenet1k")]
    settings = RunSettings(batch_size=16, num_workers=0, dataset_root=str(suite.root))
    manifest = Manifest(shard_id="resume", store=str(tmp_path / "results"), pairs=tuple(pairs), settings=settings)
    path = tmp_path / "manifest.json"
    path.write_text(manifest.to_json())
    store = open_store(tmp_path / "results")

    worker = subprocess.Popen([str(Path(sys.executable).parent / "benchmark"), "worker", "--manifest", str(path),
                               "--no-progress"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + HANG_S  # it imports open_clip first: minutes on a busy machine
        while not _results(store) and worker.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        os.kill(worker.pid, signal.SIGKILL)
    finally:
        worker.kill()
        _, stderr = worker.communicate(timeout=30)
    assert worker.returncode == -signal.SIGKILL, stderr.decode()[-2000:]

    finished = _results(store)
    assert 1 <= len(finished) < len(pairs), "the kill must land mid-shard"
    done_pairs = {read_record(store.get(key)).pair for key in finished}  # whole, valid JSON: writes are atomic

    report = run_shard(manifest, progress=False)
    assert report.exit_code == 0
    assert set(report.skipped) == done_pairs
    assert set(report.succeeded) == set(pairs) - done_pairs  # each pair ran exactly once over the two runs
    after = _results(store)
    assert set(after) == {result_key(p) for p in pairs}
    for key, st in finished.items():  # untouched: same inode, size and modification time
        assert (after[key].st_ino, after[key].st_mtime_ns, after[key].st_size) == (st.st_ino, st.st_mtime_ns, st.st_size)
    for pair in pairs[1:]:  # classification: samples of exactly the stored result, even where a kill left older ones
        digest, _ = read_samples(store.get(samples_key(result_key(pair))))
        assert digest == result_digest(store.get(result_key(pair)))
