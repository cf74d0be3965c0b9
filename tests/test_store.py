"""The store's boundary: URLs checked where a store is opened, a dead endpoint fails within the store timeout, no
message names the endpoint's host, reserved folders are skipped at any depth, and storage imports nothing above it."""

from __future__ import annotations

import ast
import json
import socket
import threading
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from openclip_benchmark.cli import app
from openclip_benchmark.catalog import load_catalog
from openclip_benchmark.collect.parse import parse_results
from openclip_benchmark.core.jsonio import atomic_write_json, dumps_strict
from openclip_benchmark.storage.layout import result_key
from openclip_benchmark.storage.store import LocalStore, StoreError, StoreUnreachableError, open_store, redact
from openclip_benchmark.storage.sync import INDEX_NAME, UNREACHABLE, sync_results
from test_sync import synthetic_pairs, synthetic_result

SENTINEL = "sentinel-acct-5e1f0c"  # an R2 account id: it must never be printed


@pytest.mark.parametrize("url", [
    "s3://bkt/../x", "s3://bkt/a/../x", "s3://bkt/./x", "s3://bkt//x", "s3://bkt/a//b", "s3://bkt/a\\b",
    "s3://bkt/a\x1b[31m", "s3://bkt/a\nb", "s3://bkt/..", "s3:///x", "s3://b\x00kt/x", "s3://../x",
])
def test_unsafe_store_urls_are_refused_before_any_request(url):
    with pytest.raises(StoreError, match="unsafe store prefix|no valid bucket") as info:
        open_store(url)  # no credentials or endpoint needed: refused before a client exists
    assert "\n" not in str(info.value).replace(repr(url), "")


def test_store_prefix_is_normalised_and_local_paths_keep_dotdot(s3_env, tmp_path, monkeypatch):
    assert open_store("s3://bkt/runs/v1/").url == "s3://bkt/runs/v1" and open_store("s3://bkt").prefix == ""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "sub").mkdir()
    assert isinstance(open_store("sub/../runs"), LocalStore)  # a user's own relative path, not a key
    with pytest.raises(StoreError, match="control character"):
        open_store("runs\x1b[2J")


@pytest.mark.parametrize("how", ["option", "env"])
def test_sync_refuses_an_unsafe_store_prefix_in_one_line(tmp_path, monkeypatch, how):
    args = ["sync", "--results", str(tmp_path / "r"), "--tracker", str(tmp_path / "t.csv")]
    if how == "env":
        monkeypatch.setenv("BENCHMARK_STORE", "s3://bkt/../x")
    else:
        args += ["--store", "s3://bkt/../x"]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 2 and res.output.startswith("error: unsafe store prefix in 's3://bkt/../x'")
    assert len(res.output.splitlines()) == 1 and not (tmp_path / "r").exists()


class SilentServer:
    """Accepts connections on loopback and never answers (a hung endpoint or proxy); lives at most `lifetime` s."""

    def __init__(self, lifetime: float = 30.0):
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.conns: list[socket.socket] = []
        self.deadline = time.monotonic() + lifetime
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self):
        while not self.stop.is_set() and time.monotonic() < self.deadline:
            try:
                self.conns.append(self.sock.accept()[0])  # held open, never read, never answered
            except socket.timeout:
                continue
        for conn in self.conns:
            conn.close()
        self.sock.close()

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join(timeout=5)


def test_a_silent_endpoint_fails_within_the_store_timeout_without_naming_its_host(s3_env, tmp_path, monkeypatch):
    """An endpoint that accepts and never answers: sync gives up after --store-timeout (not 9 tries x 60 s), with
    exit 75 and a message that says so; the R2 host (its account id) is never shown. The silent server is a proxy, so
    the sentinel host needs no DNS: every request reaches the loopback socket. The bound on the time is far from both
    the 3 s asked for and the silent server's lifetime, so that a loaded machine passes and a sync that waits for
    the server to hang up does not."""
    endpoint = f"http://{SENTINEL}.r2.cloudflarestorage.com"
    with SilentServer(lifetime=300) as server:
        for name in ("HTTP_PROXY", "http_proxy"):
            monkeypatch.setenv(name, f"http://127.0.0.1:{server.port}")
        for name in ("NO_PROXY", "no_proxy"):
            monkeypatch.delenv(name, raising=False)
        args = ["sync", "--store", "s3://bkt/runs", "--endpoint-url", endpoint, "--results", str(tmp_path / "r"),
                "--tracker", str(tmp_path / "t.csv"), "--store-timeout", "3"]
        start = time.monotonic()
        res = CliRunner().invoke(app, args)
        elapsed = time.monotonic() - start
        assert server.conns  # the request did reach the silent socket
    assert res.exit_code == 75, res.output
    assert elapsed < 100, elapsed
    assert "did not answer within 3 s" in res.output and "http://***.r2.cloudflarestorage.com" in res.output
    assert SENTINEL not in res.output and "127.0.0.1" not in res.output


def test_store_errors_never_name_the_endpoint_host(s3_env, tmp_path, monkeypatch):
    """botocore names the endpoint URL in its messages ("Could not connect to the endpoint URL: https://<account>...");
    what sync prints and the store error a worker records keep the scheme and a hint only."""
    with socket.socket() as s:  # a loopback port nothing listens on: the host:port is the sentinel here
        s.bind(("127.0.0.1", 0))
        sentinel = f"127.0.0.1:{s.getsockname()[1]}"
    monkeypatch.setenv("R2_ENDPOINT_URL", f"http://{sentinel}")
    res = CliRunner().invoke(app, ["sync", "--store", "s3://bkt/runs", "--results", str(tmp_path / "r")])
    with pytest.raises(StoreError) as info:
        open_store("s3://bkt/runs").put("a.json", b"{}")
    assert res.exit_code == 75 and res.output.startswith("error: ") and len(res.output.splitlines()) == 1
    for text in (res.output, str(info.value)):
        assert "cannot connect to the store at http://<endpoint>" in text and "127.0.0.1" not in text, text
    r2 = f"https://{SENTINEL}.r2.cloudflarestorage.com"
    message = f'Could not connect to the endpoint URL: "{r2}/bkt/a.json" (host=\'{SENTINEL}.r2.cloudflarestorage.com\')'
    assert redact(message, r2) == (  # no path either: an account id can sit there too
        'Could not connect to the endpoint URL: "https://***.r2.cloudflarestorage.com" (host=\'<endpoint>\')'
    )
    assert redact(f"GET http://10.0.0.7:9000/{SENTINEL}/bkt/a.json failed") == "GET http://<endpoint> failed"


def test_store_timeout_comes_from_the_environment_for_every_command(s3_env, monkeypatch):
    monkeypatch.setenv("BENCHMARK_STORE_TIMEOUT", "4.5")
    store = open_store("s3://bkt/p")
    config = store.client.meta.config
    assert store.timeout == 4.5 and config.connect_timeout + config.read_timeout <= 4.5
    assert config.retries["total_max_attempts"] == 1
    monkeypatch.setenv("BENCHMARK_STORE_TIMEOUT", "soon")
    with pytest.raises(StoreError, match="BENCHMARK_STORE_TIMEOUT='soon' is not a number"):
        open_store("s3://bkt/p")
    monkeypatch.delenv("BENCHMARK_STORE_TIMEOUT")
    config = open_store("s3://bkt/p").client.meta.config
    attempts = config.retries["total_max_attempts"]
    assert attempts * (config.connect_timeout + config.read_timeout) <= 60


def test_an_unreachable_store_stops_the_downloads_after_the_first(tmp_path):
    """Once a GET times out, the other downloads are not tried: the sync waits one timeout, not one per object."""

    class Dead(LocalStore):
        gets = 0

        def get(self, key):
            Dead.gets += 1
            time.sleep(0.05)  # the pool has every download queued before the first fails
            raise StoreUnreachableError("the store at https://<endpoint> did not answer within 3 s")

    store = Dead(tmp_path / "bucket")
    for pair in synthetic_pairs(20):
        store.put(result_key(pair), dumps_strict(synthetic_result(pair)).encode())
    report = sync_results(store, tmp_path / "results", workers=2)
    # each of the 2 workers may have started one more GET before the first failure reached the pool
    assert report.exit_code == 75 and len(report.errors) == 20 and Dead.gets <= 4
    assert sum(why == UNREACHABLE for _, why in report.errors) >= 16
    index = json.loads((tmp_path / "results" / INDEX_NAME).read_text())
    assert index["stores"][store.url] == {}  # nothing fetched, nothing recorded: the next sync tries them all


def test_reserved_folders_of_a_store_in_a_subfolder_are_skipped(tmp_path):
    """A store kept in a subfolder of the results (or of the bucket): its bundles and manifests are not results."""
    pair = synthetic_pairs(1)[0]
    results = tmp_path / "results"
    atomic_write_json(results / "sub" / result_key(pair), synthetic_result(pair))
    atomic_write_json(results / "sub" / "_bundles" / "x" / "y.json", {"schema": "openclip-benchmark/bundle/1"})
    atomic_write_json(results / "sub" / "_manifests" / "s.json", {"shard_id": "s"})
    report = parse_results(results, tmp_path / "out", catalog=load_catalog())
    assert report.invalid == [] and report.files == 1 and report.results == 1

    mirror = sync_results(LocalStore(results), tmp_path / "mirror", workers=1)
    assert mirror.quarantined == [] and mirror.manifests == 2 and mirror.results == 1
    assert not (tmp_path / "mirror" / "sub" / "_bundles").exists()


STORAGE = Path(__file__).parent.parent / "openclip_benchmark" / "storage"
ABOVE = {"cli", "pipeline", "backends", "worker", "collect", "demo", "evaluate", "datasets", "tasks"}


def test_storage_imports_nothing_above_it():
    """Progress and the dataset canonicaliser come in as parameters; storage never reaches into the shell."""
    for path in STORAGE.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level == 2:
                assert (node.module or "").split(".")[0] not in ABOVE, f"{path.name} imports ..{node.module}"
