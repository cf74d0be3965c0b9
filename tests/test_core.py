"""Pair identity, store keys, strict JSON, the result schema and the tracker's state machine."""

from __future__ import annotations

import json
import os
import time

import pytest

from openclip_benchmark.core.errors import BenchmarkError, InvalidResultError
from openclip_benchmark.core.jsonio import (
    STALE_TEMP_SECONDS, atomic_write_bytes, atomic_write_json, dumps_strict, read_json,
)
from openclip_benchmark.core.manifest import Manifest, RunSettings
from openclip_benchmark.core.pair import Pair, Preprocess, parse_model_ref
from openclip_benchmark.core.records import Failure, Result, make_failure, make_result, read_record
from openclip_benchmark.storage.store import LocalStore, S3Store, StoreError, check_key, open_store
from openclip_benchmark.tracker import Tracker, TrackerError, open_tracker
from openclip_benchmark.storage.layout import failure_key, manifest_key, result_key


def test_pair_identity_includes_preprocess_and_keys_are_safe():
    a = Pair("ViT-B-32", "openai", "imagenet1k")
    b = Pair("ViT-B-32", "openai", "imagenet1k", preprocess=Preprocess(image_size=160))
    assert a.id != b.id and result_key(a) != result_key(b)
    evil = Pair("x$(touch /tmp/pwned)", "../../etc", "a/../b")
    for key in (result_key(evil), failure_key(evil)):
        check_key(key)
        assert "$" not in key and ".." not in key and "(" not in key


def test_parse_model_ref():
    assert parse_model_ref("ViT-B-32:openai") == ("ViT-B-32", "openai")
    assert parse_model_ref("local-dir:/m/x") == ("local-dir:/m/x", "")
    assert parse_model_ref("hf-hub:timm/a") == ("hf-hub:timm/a", "")
    assert parse_model_ref("ViT-L-14:/ckpt/a.pt") == ("ViT-L-14", "/ckpt/a.pt")
    with pytest.raises(BenchmarkError):
        parse_model_ref("ViT-B-32")


def test_strict_json_round_trip_and_nan():
    text = dumps_strict({"a": float("nan"), "b": [1.5, float("inf")]})
    assert json.loads(text) == {"a": None, "b": [1.5, None]}
    with pytest.raises(InvalidResultError):
        read_json('{"a": NaN}', "JSON")


def test_result_and_failure_records_validate():
    pair = Pair("ViT-B-32", "openai", "cifar10", preprocess=Preprocess(mean=(0.5, 0.5, 0.5)))
    rec = read_record(dumps_strict(make_result(pair, {"acc1": 0.5, "acc5": float("nan")}, {"seconds": 3.0})))
    assert isinstance(rec, Result) and rec.pair == pair and rec.metrics == {"acc1": 0.5, "acc5": None}
    try:
        raise RuntimeError("CUDA out of memory")
    except RuntimeError as exc:
        fail = read_record(dumps_strict(make_failure(pair, exc, attempt=2, shard_id="s1")))
    assert isinstance(fail, Failure) and fail.attempt == 2 and "out of memory" in fail.error.message
    # clip_benchmark's own output parses by content
    cb = {"dataset": "cifar10", "model": "ViT-B-32", "pretrained": "openai", "task": "zeroshot_classification",
          "metrics": {"acc1": 0.9}, "language": "en"}
    assert read_record(json.dumps(cb)).pair == Pair("ViT-B-32", "openai", "cifar10")
    for bad in ['{"model": "m"', '[]', '{"model":"m","dataset":"d","metrics":{"acc1":"x"}}',
                '{"model":"m","dataset":"d","metrics":{}}', '{"model":"m","dataset":"d","metrics":{"a":NaN}}']:
        with pytest.raises(InvalidResultError):
            read_record(bad)


def test_tracker_round_trip_merge_and_errors(tmp_path):
    path = tmp_path / "results.csv"
    p1, p2 = Pair("A", "t", "d1"), Pair("A", "t", "d2", preprocess=Preprocess(image_size=192))
    with open_tracker(path, create=True) as tr:
        assert tr.add([p1, p2]) == 2
        tr.update(p1, status="failed", error="Boom:\nmultiline")
    before = path.read_text()
    with open_tracker(path) as tr:
        assert tr.add([p1, Pair("B", "t", "d1")]) == 1
        assert tr.get(p1).status == "failed" and tr.get(p1).error == "Boom: multiline"
        assert tr.get(p2).pair.preprocess.image_size == 192
    assert Tracker.load(path).get(Pair("B", "t", "d1")).status == "pending"
    bad = before.replace("failed", "exploded")
    path.write_text(bad)
    with pytest.raises(TrackerError, match="line 2"):
        Tracker.load(path)
    # a failed command changes nothing on disk
    with pytest.raises(RuntimeError):
        path.write_text(before)
        with open_tracker(path) as tr:
            tr.add([Pair("C", "t", "d")])
            raise RuntimeError
    assert path.read_text() == before


def test_tracker_apply_record_never_downgrades_success(tmp_path):
    pair = Pair("A", "t", "d")
    tr = Tracker(tmp_path / "r.csv", {})
    tr.apply_record(read_record(dumps_strict(make_result(pair, {"acc1": 1.0}, {"seconds": 2.5}))))
    assert tr.get(pair).status == "succeeded" and tr.get(pair).observed_runtime_s == 2.5
    fail = read_record(dumps_strict(make_failure(pair, ValueError("x"), attempt=1)))
    assert tr.apply_record(fail).status == "succeeded"


def test_local_store_is_atomic_and_refuses_escapes(tmp_path):
    store = open_store(tmp_path / "store")
    assert isinstance(store, LocalStore)
    store.put("a/b.json", b"{}")
    assert store.exists("a/b.json") and store.get("a/b.json") == b"{}"
    assert [o.key for o in store.list()] == ["a/b.json"]
    for key in ("../x", "/etc/passwd", "a/../../b", "a//b", "./a"):
        with pytest.raises(StoreError):
            store.put(key, b"x")
    atomic_write_json(tmp_path / "store" / "c.json", {"x": 1})
    assert not [p for p in (tmp_path / "store").iterdir() if p.name.endswith(".tmp")]


def _write_dies_before_rename(target, monkeypatch, write=atomic_write_bytes):
    """Run `write` with os.replace failing (a kill between write and rename); the target must keep its old bytes.

    A plain open().write() rewrites the target before any rename, so it leaves the new bytes and fails this check
    (shown by the second assertion of test_atomic_write_keeps_old_content_when_killed_before_rename)."""
    target.write_bytes(b"old")

    def killed(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", killed)
    with pytest.raises(KeyboardInterrupt):
        write(target, b"new content")
        os.replace(target, target)  # a write that never renames reaches this and "dies" here instead
    monkeypatch.undo()
    return target.read_bytes() == b"old" and not [p for p in target.parent.iterdir() if p.name.endswith(".tmp")]


def test_atomic_write_keeps_old_content_when_killed_before_rename(tmp_path, monkeypatch):
    assert _write_dies_before_rename(tmp_path / "r.json", monkeypatch)
    assert not _write_dies_before_rename(tmp_path / "plain.json", monkeypatch, write=lambda p, d: open(p, "wb").write(d))


def test_a_write_removes_its_own_stale_temp_files_only(tmp_path):
    target = tmp_path / "r.json"
    old = time.time() - 2 * STALE_TEMP_SECONDS
    stale = [tmp_path / ".r.json.ab12cd_9.tmp", tmp_path / ".r.json.zzzzzzzz.tmp"]
    kept = [tmp_path / ".r.json.fresh123.tmp", tmp_path / ".x.tmp", tmp_path / ".r.json.toolong123.tmp",
            tmp_path / ".other.json.ab12cd_9.tmp"]
    for path in stale + kept:
        path.write_bytes(b"half")
    for path in stale + kept[1:]:
        os.utime(path, (old, old))
    atomic_write_bytes(target, b"{}")
    assert target.read_bytes() == b"{}"
    assert not any(p.exists() for p in stale) and all(p.exists() for p in kept)


def test_clip_benchmark_result_with_nan_acc5_reads_as_null(tmp_path):
    """clip_benchmark 1.6.2 json.dump()s its dict as is: acc5 is NaN on datasets with fewer than 5 classes."""
    dump = {"dataset": "renderedsst2", "model": "ViT-B-32", "pretrained": "openai", "task": "zeroshot_classification",
            "metrics": {"acc1": 0.6, "acc5": float("nan"), "mean_per_class_recall": 0.59}, "language": "en"}
    text = json.dumps(dump)
    assert '"acc5": NaN' in text
    record = read_record(text)
    assert isinstance(record, Result) and record.metrics == {"acc1": 0.6, "acc5": None, "mean_per_class_recall": 0.59}
    with pytest.raises(InvalidResultError):
        read_json(text, "JSON")  # we still read our own files strictly
    with pytest.raises(InvalidResultError):
        read_record(text[:-5])  # truncated stays invalid


def test_s3_store_against_loopback_server(s3_bucket, s3_env):
    store = open_store(f"s3://{s3_bucket}/runs/v1")
    assert isinstance(store, S3Store)
    assert not store.exists("m/x.json")
    store.put("m/x.json", b'{"a": 1}')
    assert store.exists("m/x.json") and store.get("m/x.json") == b'{"a": 1}'
    listed = list(store.list())
    assert [o.key for o in listed] == ["m/x.json"] and listed[0].size == 8 and listed[0].etag


def test_s3_store_missing_credentials_is_one_line_error(monkeypatch, tmp_path):
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    with pytest.raises(StoreError, match="no S3 credentials"):
        open_store("s3://bucket/x")


def test_manifest_round_trip():
    m = Manifest(shard_id="shard-1", store="s3://b/p", pairs=(Pair("A", "t", "d", preprocess=Preprocess(image_size=224)),),
                 settings=RunSettings(batch_size=8))
    back = Manifest.from_json(m.to_json())
    assert back == m and manifest_key(m.shard_id) == "_manifests/shard-1.json"
    with pytest.raises(BenchmarkError):
        Manifest.from_json('{"schema": "nope"}')
