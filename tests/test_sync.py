"""sync against a real S3 server on loopback (moto's server mode): >1,000 objects, bad and malicious keys, incremental."""

from __future__ import annotations

import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import boto3
import pytest
from typer.testing import CliRunner

from fixtures import HANG_S, synthetic_pairs, synthetic_result
from openclip_benchmark.storage.bundle import write_bundle
from openclip_benchmark.cli import app
from openclip_benchmark.catalog import load_catalog
from openclip_benchmark.core.errors import BenchmarkError
from openclip_benchmark.core.jsonio import dumps_strict
from openclip_benchmark.core.pair import Pair
from openclip_benchmark.core.records import make_failure
from openclip_benchmark.storage.store import LocalStore
from openclip_benchmark.storage.sync import INDEX_NAME, QUARANTINE_DIR, open_source, quarantine_name, sync_results
from openclip_benchmark.pipeline.track import sync_and_track
from openclip_benchmark.tracker import Tracker, open_tracker
from openclip_benchmark.storage.layout import failure_key, result_key


def put_many(client, bucket: str, objects: dict[str, bytes], workers: int = 8) -> None:
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(lambda kv: client.put_object(Bucket=bucket, Key=kv[0], Body=kv[1]), objects.items()))


def raw_client(endpoint: str):
    return boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")


def count_gets(store) -> list[int]:
    calls = [0]

    def hook(**_):
        calls[0] += 1

    store.client.meta.events.register("before-call.s3.GetObject", hook)
    return calls


CLIP_BENCHMARK_JSON = {  # what `clip_benchmark eval --output ...` writes: no schema, no run block, wds/ name
    "dataset": "wds/cifar10",
    "model": "ViT-B-32",
    "pretrained": "openai",
    "task": "zeroshot_classification",
    "metrics": {"acc1": 0.8983, "acc5": 0.9958, "mean_per_class_recall": 0.8982},
    "language": "en",
}
BAD = {
    "bad/not-json.json": b"hello, not json",
    "bad/truncated.json": None,  # filled in below from a valid record
    "bad/nan.json": b'{"dataset": "cifar10", "model": "RN50", "pretrained": "openai", "metrics": {"acc1": NaN}}',
    "bad/types.json": b'{"dataset": "cifar10", "model": "RN50", "pretrained": "openai", "metrics": {"acc1": "high"}}',
    "bad/array.json": b"[1, 2, 3]",
    "bad/task.json": b'{"dataset": "cifar10", "model": "RN50", "pretrained": "x", "task": "rm -rf", "metrics": {"a": 1}}',
}
COLLIDING = ["c.json", "c.json/d.json"]  # S3 allows both; a folder cannot hold both: one is refused
REFUSED = ["a/../../evil.json", "/abs.json", "x/./y.json", "notes.txt", ".sync-index.json", "sub/.hidden.json", "a\\b.json"]


def test_sync_large_bucket_incremental_and_hostile(s3_bucket, s3_env, tmp_path):
    client = raw_client(s3_env)
    pairs = synthetic_pairs(1050)
    good = {result_key(p): dumps_strict(synthetic_result(p)).encode() for p in pairs}
    failed_pair = Pair("RN101", "openai", "cifar10")
    stale_pair = pairs[0]  # has a result and an old failure record: stays succeeded
    try:
        raise RuntimeError("CUDA out of memory")
    except RuntimeError as exc:
        failures = {
            failure_key(failed_pair): dumps_strict(make_failure(failed_pair, exc, attempt=2)).encode(),
            failure_key(stale_pair): dumps_strict(make_failure(stale_pair, exc, attempt=1)).encode(),
        }
    bad = dict(BAD, **{"bad/truncated.json": good[result_key(pairs[1])][:40]})
    source_name = "cifar10_openai_ViT-B-32_en_zeroshot_classification.json"
    objects = {**good, **failures, **bad, source_name: json.dumps(CLIP_BENCHMARK_JSON).encode()}
    objects["_manifests/shard-000.json"] = b'{"shard_id": "shard-000"}'
    for key in REFUSED:
        objects[key] = b'{"owned": true}'
    for key in COLLIDING:
        objects[key] = dumps_strict(synthetic_result(pairs[7])).encode()
    put_many(client, s3_bucket, {f"runs/{k}": v for k, v in objects.items()})
    assert len(objects) > 1000

    results, tracker_path = tmp_path / "results", tmp_path / "results.csv"
    with open_tracker(tracker_path, create=True) as tracker:
        tracker.add(pairs[:10] + [failed_pair])
        tracker.update(pairs[2], status="launched", shard_id="shard-x")

    store = open_source(f"s3://{s3_bucket}/runs", workers=8)
    gets = count_gets(store)
    report = sync_and_track(store, results, tracker_path, workers=8, catalog=load_catalog())

    valid = len(good) + len(failures) + 1 + 1  # + clip_benchmark's JSON + the colliding key that fits
    assert report.listed == len(objects)
    assert report.manifests == 1
    collided = [k for k, why in report.refused if "cannot be a local file" in why]
    assert len(collided) == 1 and collided[0] in COLLIDING
    assert sorted(k for k, _ in report.refused if k not in collided) == sorted(REFUSED)
    assert sorted(k for k, _ in report.quarantined) == sorted(bad)
    assert len(report.new) == valid + len(bad) + 1 and gets[0] == valid + len(bad) + 1
    assert report.results == len(good) + 2 and report.failures == len(failures)
    assert report.errors == [] and report.exit_code == 0
    # mirrored byte for byte at the store's key; nothing landed outside the results folder
    assert (results / result_key(pairs[5])).read_bytes() == good[result_key(pairs[5])]
    assert json.loads((results / source_name).read_text())["dataset"] == "wds/cifar10"
    assert not (tmp_path / "evil.json").exists() and not Path("/abs.json").exists()
    assert sorted(p.name for p in (tmp_path.iterdir())) == ["results", "results.csv", "results.csv.lock"]
    assert not (results / "notes.txt").exists() and not (results / "sub").exists()
    # bad objects are quarantined with their reason, never written where a result goes
    for key in bad:
        assert not (results / key).exists()
        why = json.loads((results / QUARANTINE_DIR / quarantine_name(key)).with_suffix(".reason.json").read_text())
        assert why["key"] == key and why["reason"]
    # the tracker: every result succeeded (new pairs added), the failure recorded with its reason
    tracker = Tracker.load(tracker_path)
    # + the failed pair; clip_benchmark's JSON is pairs[0] by content (wds/cifar10 is cifar10), whatever its name
    assert len(tracker) == len(good) + 1 and pairs[0] == Pair("ViT-B-32", "openai", "cifar10")
    assert tracker.get(pairs[2]).status == "succeeded" and tracker.get(pairs[2]).shard_id == "shard-x"
    assert tracker.get(stale_pair).status == "succeeded"
    entry = tracker.get(failed_pair)
    assert entry.status == "failed" and "CUDA out of memory" in entry.error and entry.attempts == 2
    assert report.tracker_updates == len(tracker)

    # a second sync transfers nothing: one listing, no GET
    before = tracker_path.read_bytes()
    gets[0] = 0
    again = sync_and_track(store, results, tracker_path, workers=8)
    assert gets[0] == 0 and again.new == [] and again.changed == [] and again.bytes == 0
    assert again.unchanged == valid and again.known_bad == len(bad) + 1
    assert tracker_path.read_bytes() == before

    # changed objects are fetched again; a bad new version never replaces a good local file
    changed_key, spoiled_key = result_key(pairs[3]), result_key(pairs[4])
    new_body = dumps_strict(synthetic_result(pairs[3], seed=7)).encode()
    put_many(client, s3_bucket, {f"runs/{changed_key}": new_body, f"runs/{spoiled_key}": b'{"truncated'})
    (results / result_key(pairs[6])).unlink()  # a deleted local copy is fetched again
    third = sync_and_track(store, results, tracker_path, workers=8)
    assert sorted(third.changed) == sorted([changed_key, spoiled_key]) and third.new == [result_key(pairs[6])]
    assert gets[0] == 3 and [k for k, _ in third.quarantined] == [spoiled_key]
    assert (results / changed_key).read_bytes() == new_body
    assert (results / spoiled_key).read_bytes() == good[spoiled_key]
    assert (results / result_key(pairs[6])).read_bytes() == good[result_key(pairs[6])]
    index = json.loads((results / INDEX_NAME).read_text())
    assert index["stores"][store.url][spoiled_key][2] == "quarantined"


def test_sync_from_local_folder_dry_run_then_real(tmp_path):
    src = LocalStore(tmp_path / "bucket")
    pairs = synthetic_pairs(5)
    for p in pairs:
        src.put(result_key(p), dumps_strict(synthetic_result(p)).encode())
    src.put("junk/broken.json", b"{")
    results, tracker_path = tmp_path / "results", tmp_path / "results.csv"

    dry = sync_and_track(src, results, tracker_path, dry_run=True)
    assert len(dry.new) == 6 and dry.dry_run
    assert not results.exists() and not tracker_path.exists()

    real = sync_and_track(src, results, tracker_path, workers=2)
    assert real.results == 5 and [k for k, _ in real.quarantined] == ["junk/broken.json"]
    assert {e.status for e in Tracker.load(tracker_path)} == {"succeeded"}
    assert sync_and_track(src, results, tracker_path).unchanged == 5

    # a tracker made again from scratch (`benchmark init`) learns the mirrored results without a download
    tracker_path.unlink()
    with open_tracker(tracker_path, create=True) as tracker:
        tracker.add(pairs)
    again = sync_and_track(src, results, tracker_path)
    assert again.new == [] and again.tracker_updates == 5
    assert {e.status for e in Tracker.load(tracker_path)} == {"succeeded"}

    with pytest.raises(BenchmarkError, match="same folder"):
        sync_results(src, tmp_path / "bucket")
    (tmp_path / "a-file").write_text("")
    with pytest.raises(BenchmarkError, match="cannot write into"):
        sync_results(src, tmp_path / "a-file" / "results")


def test_sync_cli_summary_and_errors(s3_bucket, s3_env, tmp_path, monkeypatch):
    client = raw_client(s3_env)
    pair = synthetic_pairs(1)[0]
    hostile = "[bold]x\x1b[31m.txt"  # markup and a terminal escape in a key: shown inert
    objects = {f"p/{result_key(pair)}": dumps_strict(synthetic_result(pair)).encode(), "p/../x.json": b"{}", f"p/{hostile}": b""}
    put_many(client, s3_bucket, objects)
    runner = CliRunner()
    args = ["sync", "--results", str(tmp_path / "r"), "--tracker", str(tmp_path / "t.csv")]

    monkeypatch.setenv("BENCHMARK_STORE", f"s3://{s3_bucket}/p")
    res = runner.invoke(app, args + ["--dry-run"])
    assert res.exit_code == 0, res.output
    assert "would fetch" in res.output and not (tmp_path / "r").exists()
    res = runner.invoke(app, args + ["--workers", "4"])
    assert res.exit_code == 0, res.output
    assert "refused '../x.json'" in " ".join(res.output.split())
    assert "refused '[bold]x\\x1b[31m.txt'" in res.output and "\x1b" not in res.output
    client.delete_object(Bucket=s3_bucket, Key=f"p/{hostile}")  # moto's bulk delete cannot carry it in XML
    assert Tracker.load(tmp_path / "t.csv").get(pair).status == "succeeded"

    monkeypatch.delenv("BENCHMARK_STORE")
    res = runner.invoke(app, args)
    assert res.exit_code == 2 and "no store given" in res.output


def test_sync_missing_credentials_is_one_line(tmp_path):
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
        "AWS_CONFIG_FILE": str(tmp_path / "none"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"),
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    proc = subprocess.run(
        [str(Path(sys.executable).with_name("benchmark")), "sync", "--store", "s3://some-bucket/x", "--results", str(tmp_path)],
        capture_output=True,
        text=True,
        env=env,
        timeout=HANG_S,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().startswith("error: no S3 credentials") and len(proc.stderr.strip().splitlines()) == 1
    assert "Traceback" not in proc.stderr + proc.stdout


# --- shard bundles: one GET per shard instead of one per result ---------------------------------------------------


def write_shards(store, pairs: list[Pair], per_shard: int) -> dict[str, bytes]:
    """Results and one bundle per shard, put as the worker puts them (the worker's own bundle writer)."""
    written_all = {}
    for start in range(0, len(pairs), per_shard):
        written = {}
        for pair in pairs[start : start + per_shard]:
            written[result_key(pair)] = dumps_strict(synthetic_result(pair)).encode("utf-8")
            store.put(result_key(pair), written[result_key(pair)])
        write_bundle(store, f"shard-{start // per_shard:03d}", written)
        written_all.update(written)
    return written_all


def mirrored(folder: Path) -> dict[str, bytes]:
    files = (p.relative_to(folder) for p in folder.rglob("*") if p.is_file())
    return {f.as_posix(): (folder / f).read_bytes() for f in files if not any(part.startswith(".") for part in f.parts)}


def test_bundles_replace_gets_with_identical_files(s3_bucket, s3_env, tmp_path):
    pairs = synthetic_pairs(30)
    store = open_source(f"s3://{s3_bucket}/runs", workers=8)
    written = write_shards(store, pairs[:24], per_shard=8)  # 3 shards, 3 bundles
    lone = pairs[24]  # a result with no bundle (e.g. its bundle's put failed)
    written[result_key(lone)] = dumps_strict(synthetic_result(lone)).encode()
    store.put(result_key(lone), written[result_key(lone)])

    gets = count_gets(store)
    report = sync_and_track(store, tmp_path / "bundled", tmp_path / "results.csv", workers=8)
    assert gets[0] == 3 + 1 and report.bundles == 3 and report.from_bundles == 24
    assert report.results == 25 and report.quarantined == [] and report.errors == []
    assert mirrored(tmp_path / "bundled") == written  # bundles are not mirrored as results
    assert {e.status for e in Tracker.load(tmp_path / "results.csv")} == {"succeeded"}

    plain = open_source(f"s3://{s3_bucket}/runs", workers=8)
    plain_gets = count_gets(plain)
    per_object = sync_results(plain, tmp_path / "plain", workers=8, bundles=False)
    assert plain_gets[0] == 25 and per_object.bundles == 0 and per_object.from_bundles == 0
    assert mirrored(tmp_path / "plain") == mirrored(tmp_path / "bundled")

    gets[0] = 0
    again = sync_and_track(store, tmp_path / "bundled", tmp_path / "results.csv", workers=8)
    assert gets[0] == 0 and again.new == [] and again.unchanged == 25 and again.known_bad == 0


def test_an_object_overwritten_after_its_bundle_is_fetched(s3_bucket, s3_env, tmp_path):
    pairs = synthetic_pairs(6)
    store = open_source(f"s3://{s3_bucket}/runs", workers=4)
    written = write_shards(store, pairs, per_shard=6)
    newer = dumps_strict(synthetic_result(pairs[2], seed=9)).encode()
    store.put(result_key(pairs[2]), newer)  # a later re-run: the bundle's copy no longer matches the ETag
    gets = count_gets(store)
    report = sync_results(store, tmp_path / "r", workers=4)
    assert gets[0] == 1 + 1 and report.from_bundles == 5
    assert mirrored(tmp_path / "r") == dict(written, **{result_key(pairs[2]): newer})


def test_malicious_and_malformed_bundles_are_quarantined_and_their_keys_fetched(s3_bucket, s3_env, tmp_path):
    pairs = synthetic_pairs(8)
    store = open_source(f"s3://{s3_bucket}/runs", workers=4)
    body = {result_key(p): dumps_strict(synthetic_result(p)).encode() for p in pairs}
    for key, data in body.items():
        store.put(key, data)
    text = {k: v.decode() for k, v in body.items()}
    k = [result_key(p) for p in pairs]
    extra = dumps_strict(synthetic_result(synthetic_pairs(9)[8])).encode()
    bundle = {"schema": "openclip-benchmark/bundle/1", "shard_id": "s"}
    bad = {
        "_bundles/evil/1.json": dumps_strict(dict(bundle, records=[
            {"key": k[3], "data": text[k[3]]}, {"key": "../../evil.json", "data": text[k[3]]},
            {"key": "/abs.json", "data": "{}"}, {"key": ".sync-index.json", "data": "{}"}])).encode(),
        "_bundles/broken/1.json": dumps_strict(dict(bundle, records=[{"key": k[2], "data": text[k[2]]}, {"key": 5}])).encode(),
        "_bundles/garbage/1.json": b"\x00garbage",
    }
    for key, data in bad.items():
        store.put(key, data)
    # a valid bundle may offer a key nobody listed: it is never written
    write_bundle(store, "good", {k[0]: body[k[0]], k[1]: body[k[1]], "extra/unlisted.json": extra})

    gets = count_gets(store)
    report = sync_results(store, tmp_path / "results", workers=4)
    assert report.bundles == 1 and report.from_bundles == 2
    assert gets[0] == 4 + 6  # four bundles, then every key no valid bundle offered
    reasons = dict(report.quarantined)
    assert sorted(reasons) == sorted(bad)
    assert "'../../evil.json'" in reasons["_bundles/evil/1.json"] and "not valid JSON" in reasons["_bundles/garbage/1.json"]
    assert "record 1" in reasons["_bundles/broken/1.json"]
    assert mirrored(tmp_path / "results") == body
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results"] and not Path("/abs.json").exists()
    index = json.loads((tmp_path / "results" / INDEX_NAME).read_text())  # not replaced by a bundle's record
    assert index["stores"][store.url]["_bundles/garbage/1.json"][2] == "quarantined"

    gets[0] = 0
    again = sync_results(store, tmp_path / "results", workers=4)
    assert gets[0] == 0 and again.known_bad == 3 and again.unchanged == 8
