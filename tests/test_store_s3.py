"""The S3 store end to end against moto's S3 server on 127.0.0.1 (a real HTTP endpoint, as R2 is), never a mock."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import boto3
import pytest

from fixtures import HANG_S
from openclip_benchmark.core.jsonio import dumps_strict, read_json
from openclip_benchmark.storage.store import S3Store, StoreError, TransientStoreError, open_store
from openclip_benchmark.storage.layout import result_key

SECRET = "sEcReT-r2-key-0123456789"


@pytest.fixture
def secret_env(s3_env, monkeypatch):
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)  # moto accepts any; this one is easy to look for
    return s3_env


def _raw(endpoint: str):
    return boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")


def test_put_get_exists_and_prefixes(s3_bucket, s3_env):
    store = open_store(f"s3://{s3_bucket}/runs/v1/")
    assert isinstance(store, S3Store) and store.prefix == "runs/v1"
    assert not store.exists("m/p/d/en.json")
    doc = {"metrics": {"acc1": 0.5, "bad": float("nan")}}
    store.put("m/p/d/en.json", dumps_strict(doc).encode())
    store.put("_manifests/s1.json", b"{}")
    assert store.exists("m/p/d/en.json")
    assert read_json(store.get("m/p/d/en.json"), "result") == {"metrics": {"acc1": 0.5, "bad": None}}
    assert store.url_for("m/p/d/en.json") == f"s3://{s3_bucket}/runs/v1/m/p/d/en.json"
    # a sibling prefix that merely starts alike, and the bucket root, stay outside this store
    raw = _raw(s3_env)
    raw.put_object(Bucket=s3_bucket, Key="runs/v10/other.json", Body=b"{}")
    raw.put_object(Bucket=s3_bucket, Key="top.json", Body=b"{}")
    assert sorted(o.key for o in store.list()) == ["_manifests/s1.json", "m/p/d/en.json"]
    assert [o.key for o in store.list("_manifests/")] == ["_manifests/s1.json"]
    info = next(iter(store.list("m/")))
    assert info.size == len(store.get("m/p/d/en.json")) and info.etag and '"' not in info.etag
    assert raw.get_object(Bucket=s3_bucket, Key="runs/v1/m/p/d/en.json")["ContentType"] == "application/json"
    root = open_store(f"s3://{s3_bucket}")
    assert root.prefix == "" and {o.key for o in root.list()} >= {"top.json", "runs/v1/m/p/d/en.json"}
    body, etag = root.get_object("runs/v1/m/p/d/en.json")
    assert body == store.get("m/p/d/en.json") and etag == info.etag


def test_unsafe_keys_are_refused(s3_bucket):
    store = open_store(f"s3://{s3_bucket}/p")
    for key in ("../escape.json", "/abs.json", "a//b.json", "a/./b.json", ""):
        with pytest.raises(StoreError, match="unsafe store key"):
            store.put(key, b"{}")


def test_list_paginates_past_1000_keys(s3_bucket, s3_env):
    store = open_store(f"s3://{s3_bucket}/big")
    keys = [f"m{i % 7}/k{i:05d}.json" for i in range(1105)]
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda k: store.put(k, b"{}"), keys))
    calls = []
    store.client.meta.events.register("before-call.s3.ListObjectsV2", lambda **kw: calls.append(kw["params"]))
    listed = [o.key for o in store.list()]
    assert sorted(listed) == sorted(keys) and len(listed) == 1105
    assert len(calls) == 2 and "continuation-token" in calls[1]["query_string"]  # S3 pages hold at most 1000 keys
    assert len([o for o in store.list("m3/")]) == len([k for k in keys if k.startswith("m3/")])


def test_objects_appear_whole(s3_bucket):
    """A reader racing a writer sees nothing, the old object or the new one: never a mix or a prefix."""
    store = open_store(f"s3://{s3_bucket}/a")
    old, new = b"o" * (3 << 20), b"n" * (5 << 20)
    seen, stop = set(), threading.Event()

    def reader():
        for _ in range(400):  # bounded; stops early once the writer is done
            try:
                data = store.get("big.bin")
            except StoreError:
                data = b""
            seen.add((len(data), data[:1], data[-1:]))
            if stop.is_set():
                break

    thread = threading.Thread(target=reader)
    thread.start()
    store.put("big.bin", old)
    store.put("big.bin", new)
    stop.set()
    thread.join(timeout=HANG_S)
    assert seen <= {(0, b"", b""), (len(old), b"o", b"o"), (len(new), b"n", b"n")}
    assert store.get("big.bin") == new


def test_missing_bucket_is_a_one_line_store_error(s3_env):
    store = open_store("s3://no-such-bucket-here/x")
    for call in (lambda: store.get("a.json"), lambda: list(store.list()), lambda: store.put("a.json", b"{}")):
        with pytest.raises(StoreError) as info:
            call()
        assert not isinstance(info.value, TransientStoreError)
        assert "NoSuchBucket" in str(info.value) and "\n" not in str(info.value)


def test_missing_key(s3_bucket):
    store = open_store(f"s3://{s3_bucket}/p")
    with pytest.raises(StoreError) as info:
        store.get("absent.json")
    assert not isinstance(info.value, TransientStoreError) and "NoSuchKey" in str(info.value)


def test_server_down_is_transient(s3_env, monkeypatch):
    import socket

    with socket.socket() as s:  # a port that nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("R2_ENDPOINT_URL", f"http://127.0.0.1:{port}")
    store = open_store("s3://bucket/p")
    with pytest.raises(TransientStoreError) as info:
        store.exists("a.json")
    assert info.value.exit_code == 75 and "\n" not in str(info.value)


def test_endpoint_from_r2_env_and_flag_precedence(s3_bucket, s3_env, monkeypatch):
    store = open_store(f"s3://{s3_bucket}/p")
    assert store.endpoint_url == s3_env  # R2_ENDPOINT_URL, as a Cloudflare R2 user sets it
    store.put("a.json", b"{}")
    monkeypatch.setenv("R2_ENDPOINT_URL", "http://127.0.0.1:9")  # wrong: the explicit endpoint wins
    flagged = open_store(f"s3://{s3_bucket}/p", endpoint_url=s3_env)
    assert flagged.endpoint_url == s3_env and flagged.exists("a.json")
    monkeypatch.delenv("R2_ENDPOINT_URL")
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_env)
    assert open_store(f"s3://{s3_bucket}/p").get("a.json") == b"{}"


def test_credentials_never_shown(s3_bucket, secret_env, monkeypatch):
    store = open_store(f"s3://{s3_bucket}/p")
    store.put("a.json", b"{}")
    texts = [repr(store), str(store), store.url, store.url_for("a.json"), repr(vars(store))]
    for call in (lambda: open_store("s3://no-such-bucket-xyz/p").get("a.json"), lambda: store.get("missing.json")):
        with pytest.raises(StoreError) as info:
            call()
        texts.append(str(info.value))
    assert not any(SECRET in t for t in texts)
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    with pytest.raises(StoreError, match="no S3 credentials"):
        open_store(f"s3://{s3_bucket}/p")


@pytest.mark.slow
def test_benchmark_run_writes_results_into_the_bucket(s3_bucket, secret_env, tmp_path):
    """`benchmark run --store s3://...`: results land in the bucket as valid records; a second run skips them."""
    from typer.testing import CliRunner

    from fixtures import make_classification_wds, make_retrieval_wds, make_tiny_model
    from openclip_benchmark.cli import app
    from openclip_benchmark.core.pair import Pair
    from openclip_benchmark.core.records import Result, read_record

    make_classification_wds(tmp_path / "data", n=12)
    make_retrieval_wds(tmp_path / "data", n=12)
    model = make_tiny_model(tmp_path / "models")
    args = ["run", "--models", model, "--datasets", "fixture_cls,fixture_ret", "--dataset-root", str(tmp_path / "data"),
            "--store", f"s3://{s3_bucket}/bench", "--num-workers", "0", "--batch-size", "12",
            "--tracker", str(tmp_path / "absent.csv"), "--no-progress"]
    first = CliRunner().invoke(app, args)
    assert first.exit_code == 0, first.output
    store = open_store(f"s3://{s3_bucket}/bench")
    pairs = [Pair(model, "", "fixture_cls"), Pair(model, "", "fixture_ret", task="zeroshot_retrieval")]
    for pair in pairs:
        record = read_record(store.get(result_key(pair)))
        assert isinstance(record, Result) and record.pair == pair
        assert all(v is None or 0.0 <= v <= 1.0 for v in record.metrics.values())
    keys = {o.key for o in store.list()}
    assert {result_key(p) for p in pairs} <= keys
    second = CliRunner().invoke(app, args)
    assert second.exit_code == 0 and "2 already done" in second.output, second.output
    assert {o.key for o in store.list()} == keys
    assert SECRET not in first.output + second.output
