"""Dataset download against a Hugging Face-like HTTP server on 127.0.0.1 serving a fixture webdataset."""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from fixtures import make_classification_wds, make_retrieval_wds
from openclip_benchmark.datasets import download
from openclip_benchmark.datasets.download import TransientDownloadError, check_layout, download_dataset, dataset_source
from openclip_benchmark.core.errors import BenchmarkError
from openclip_benchmark.storage.store import TRANSIENT_EXIT_CODE

REPO = "clip-benchmark/wds_fixture_cls"
TOKEN = "hf_SECRETtoken123"


class HubServer(ThreadingHTTPServer):
    """The Hub's tree API and resolve URLs for one repo, with Range support and injectable faults."""

    daemon_threads = True

    def __init__(self, files: dict[str, bytes], repo: str = REPO):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.files = files
        self.repo = repo
        self.listed_sizes: dict[str, int] = {}  # overrides: a listing that disagrees with the bytes
        self.listed_oids: dict[str, str] = {}
        self.faults: dict[str, list[str]] = {}  # path -> actions consumed one per request: "500", "429", "drop"
        self.requests: list[tuple[str, dict[str, str]]] = []
        self.token: str | None = None  # when set, /api and /resolve need it
        self.page_size = 1000
        self.redirect = False  # resolve -> /cdn/<path>, as the Hub sends LFS files to its CDN
        self.lock = threading.Lock()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    @property
    def url(self) -> str:
        return f"{self.endpoint}/datasets/{self.repo}"

    def file_requests(self) -> list[tuple[str, dict[str, str]]]:
        return [r for r in self.requests if "/resolve/" in r[0] or r[0].startswith("/cdn/")]


class _Handler(BaseHTTPRequestHandler):
    server: HubServer
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):  # quiet
        pass

    def do_GET(self):
        srv = self.server
        url = urllib.parse.urlsplit(self.path)
        path = urllib.parse.unquote(url.path)
        with srv.lock:
            srv.requests.append((path, dict(self.headers)))
        api = f"/api/datasets/{srv.repo}/tree/main"
        resolve = f"/datasets/{srv.repo}/resolve/main/"
        if path.startswith(("/api/", "/datasets/")) and srv.token and self.headers.get("Authorization") != f"Bearer {srv.token}":
            return self._send(401, b"unauthorized")
        if path.startswith(api):
            return self._tree(path[len(api) :].strip("/"), urllib.parse.parse_qs(url.query))
        if path.startswith(resolve):
            rel = path[len(resolve) :]
            if srv.redirect:
                self.send_response(302)
                self.send_header("Location", f"/cdn/{rel}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            return self._file(rel)
        if path.startswith("/cdn/"):
            return self._file(path[len("/cdn/") :])
        self._send(404, b"not found")

    def _tree(self, folder: str, query: dict):
        srv = self.server
        if folder and not any(p.startswith(folder + "/") for p in srv.files):
            return self._send(404, b"no such folder")
        recursive = query.get("recursive") == ["true"]
        entries, dirs = [], set()
        for p in sorted(srv.files):
            rest = p[len(folder) + 1 :] if folder else p
            if folder and not p.startswith(folder + "/"):
                continue
            if "/" in rest and not recursive:
                dirs.add((folder + "/" if folder else "") + rest.split("/")[0])
                continue
            size = srv.listed_sizes.get(p, len(srv.files[p]))
            entry = {"type": "file", "path": p, "size": size, "oid": "x"}
            if p.endswith(".tar"):
                oid = srv.listed_oids.get(p, hashlib.sha256(srv.files[p]).hexdigest())
                entry["lfs"] = {"oid": oid, "size": size, "pointerSize": 130}
            entries.append(entry)
        entries += [{"type": "directory", "path": d, "oid": "y", "size": 0} for d in sorted(dirs)]
        start = int(query.get("cursor", ["0"])[0])
        page = entries[start : start + srv.page_size]
        headers = {"Content-Type": "application/json"}
        if start + srv.page_size < len(entries):
            nxt = f"/api/datasets/{srv.repo}/tree/main/{folder}?recursive={str(recursive).lower()}&cursor={start + srv.page_size}"
            headers["Link"] = f'<{nxt}>; rel="next"'
        self._send(200, json.dumps(page).encode(), headers)

    def _file(self, rel: str):
        srv = self.server
        if rel not in srv.files:
            return self._send(404, b"no such file")
        with srv.lock:
            action = srv.faults.get(rel, []).pop(0) if srv.faults.get(rel) else None
        if action in ("500", "429"):
            return self._send(int(action), b"try again", {"Retry-After": "0"} if action == "429" else {})
        data = srv.files[rel]
        start, status = 0, 200
        rng = self.headers.get("Range")
        if rng:
            start = int(rng.removeprefix("bytes=").split("-")[0])
            if start >= len(data):
                return self._send(416, b"")
            status = 206
        body = data[start:]
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        self.end_headers()
        if action == "drop":  # the connection dies mid-file
            self.wfile.write(body[: len(body) // 3])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(body)

    def _send(self, status: int, body: bytes, headers: dict | None = None):
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def _tree_bytes(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def fixture_files(tmp_path_factory) -> dict[str, bytes]:
    folder = make_classification_wds(tmp_path_factory.mktemp("wds"), n=12, shards=3)
    files = _tree_bytes(folder)
    files["train/0.tar"] = b"not needed for the test split"
    files["README.md"] = b"# not needed"
    return files


@pytest.fixture
def hub(fixture_files, monkeypatch):
    monkeypatch.setattr(download, "BACKOFF_S", 0.01)
    server = HubServer(dict(fixture_files))
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def _source(hub: HubServer):
    return dataset_source("fixture_cls", "wds_fixture_cls", base_url=hub.url)


def _needed(files: dict[str, bytes]) -> dict[str, bytes]:
    return {p: b for p, b in files.items() if p.startswith("test/") or p in download.METADATA_FILES}


def test_full_download_equals_fixture_and_second_call_is_offline(hub, tmp_path, fixture_files):
    folder = download_dataset(_source(hub), tmp_path / "wds_fixture_cls", progress=False)
    got = {p: b for p, b in _tree_bytes(folder).items() if not p.startswith(".")}
    assert got == _needed(fixture_files)  # the split and metadata, byte for byte; nothing from train/ or README
    assert check_layout(folder, "test", "zeroshot_classification") == folder
    assert not list(folder.rglob("*.part"))
    n_files = len(hub.file_requests())
    assert n_files == len(got)
    hub.requests.clear()
    assert download_dataset(_source(hub), folder, progress=False) == folder
    assert hub.requests == []  # the marker answers: not even a listing


def test_a_lost_file_is_fetched_again_alone(hub, tmp_path):
    folder = download_dataset(_source(hub), tmp_path / "wds_fixture_cls", progress=False)
    (folder / "test" / "1.tar").unlink()
    hub.requests.clear()
    download_dataset(_source(hub), folder, progress=False)
    assert [r[0] for r in hub.file_requests()] == [f"/datasets/{REPO}/resolve/main/test/1.tar"]


def test_server_errors_are_retried(hub, tmp_path, fixture_files):
    hub.faults = {"test/0.tar": ["500", "429"], "classnames.txt": ["500"]}
    folder = download_dataset(_source(hub), tmp_path / "d", progress=False)
    assert (folder / "test" / "0.tar").read_bytes() == fixture_files["test/0.tar"]
    assert sum(r[0].endswith("test/0.tar") for r in hub.file_requests()) == 3


def test_dropped_connection_resumes_with_range(hub, tmp_path, fixture_files):
    hub.faults = {"test/1.tar": ["drop", "drop"]}
    folder = download_dataset(_source(hub), tmp_path / "d", progress=False)
    assert (folder / "test" / "1.tar").read_bytes() == fixture_files["test/1.tar"]
    ranges = [r[1].get("Range") for r in hub.file_requests() if r[0].endswith("test/1.tar")]
    assert ranges[0] is None and len(ranges) == 3
    size = len(fixture_files["test/1.tar"])
    first_cut = size // 3
    assert ranges[1] == f"bytes={first_cut}-"  # resumes where the first connection died
    assert ranges[2] == f"bytes={first_cut + (size - first_cut) // 3}-"


def test_retries_are_bounded_and_transient(hub, tmp_path):
    hub.faults = {"test/2.tar": ["500"] * 50}
    with pytest.raises(TransientDownloadError) as info:
        download_dataset(_source(hub), tmp_path / "d", progress=False)
    assert info.value.exit_code == TRANSIENT_EXIT_CODE
    assert "test/2.tar" in str(info.value) and "HTTP 500" in str(info.value)
    assert sum(r[0].endswith("test/2.tar") for r in hub.file_requests()) == download.MAX_ATTEMPTS
    assert not (tmp_path / "d" / download.COMPLETE_MARKER).exists()


@pytest.mark.parametrize("delta, message", [(7, "listing says"), (-7, "more than the listed")])
def test_wrong_size_is_an_error_and_leaves_no_file(hub, tmp_path, delta, message):
    hub.listed_sizes = {"test/0.tar": len(hub.files["test/0.tar"]) + delta}
    with pytest.raises(BenchmarkError, match=message) as info:
        download_dataset(_source(hub), tmp_path / "d", progress=False)
    assert not isinstance(info.value, TransientDownloadError)
    assert not (tmp_path / "d" / "test" / "0.tar").exists()
    assert not (tmp_path / "d" / "test" / "0.tar.part").exists()


def test_checksum_mismatch_is_an_error(hub, tmp_path):
    hub.listed_oids = {"test/0.tar": "0" * 64}
    with pytest.raises(BenchmarkError, match="sha256"):
        download_dataset(_source(hub), tmp_path / "d", progress=False)
    assert not (tmp_path / "d" / "test" / "0.tar").exists()


def test_unauthorized_names_hf_token(hub, tmp_path):
    hub.token = TOKEN
    with pytest.raises(BenchmarkError, match="HF_TOKEN") as info:
        download_dataset(_source(hub), tmp_path / "d", progress=False)
    assert "401" in str(info.value) and "fixture_cls" in str(info.value)
    with pytest.raises(BenchmarkError, match="HF_TOKEN was refused"):
        download_dataset(_source(hub), tmp_path / "d", token="hf_wrong", progress=False)


def test_token_is_sent_but_never_forwarded_or_logged(hub, tmp_path, fixture_files, caplog, capsys):
    hub.token, hub.redirect = TOKEN, True
    hub.faults = {"test/0.tar": ["500"]}  # a retry logs a warning: it must not carry the token
    caplog.set_level(logging.DEBUG)
    folder = download_dataset(_source(hub), tmp_path / "d", token=TOKEN, progress=True)
    assert (folder / "test" / "0.tar").read_bytes() == fixture_files["test/0.tar"]
    resolves = [h for p, h in hub.requests if "/resolve/" in p]
    cdn = [h for p, h in hub.requests if p.startswith("/cdn/")]
    assert resolves and all(h.get("Authorization") == f"Bearer {TOKEN}" for h in resolves)
    assert cdn and all("Authorization" not in h for h in cdn)  # the CDN never sees it
    out = capsys.readouterr()
    assert any("retry" in r.getMessage() for r in caplog.records)
    assert TOKEN not in caplog.text + out.out + out.err


def test_not_found(hub, tmp_path):
    source = dataset_source("nope", "wds_nope", base_url=hub.url.replace("wds_fixture_cls", "wds_nope"))
    with pytest.raises(BenchmarkError, match="nope: not found"):
        download_dataset(source, tmp_path / "d", progress=False)


def test_paginated_listing(hub, tmp_path, fixture_files):
    hub.page_size = 2
    folder = download_dataset(_source(hub), tmp_path / "d", progress=False)
    assert {p for p in _tree_bytes(folder) if not p.startswith(".")} == set(_needed(fixture_files))
    assert sum("cursor=" in p or "/api/" in p for p, _ in hub.requests) > 3


def test_concurrent_callers_share_one_download(hub, tmp_path):
    results, errors = [], []

    def worker():
        try:
            results.append(download_dataset(_source(hub), tmp_path / "d", progress=False))
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors and len(results) == 3
    paths = [p for p, _ in hub.file_requests()]
    assert len(paths) == len(set(paths))  # each file fetched once


def test_base_url_template_and_revision():
    source = dataset_source("x", "wds_x", base_url="http://127.0.0.1:1/mirror/datasets/org/{wds_name}/tree/v2")
    assert (source.endpoint, source.repo, source.revision) == ("http://127.0.0.1:1/mirror", "org/wds_x", "v2")
    assert source.file_url("test/0.tar") == "http://127.0.0.1:1/mirror/datasets/org/wds_x/resolve/v2/test/0.tar"
    with pytest.raises(BenchmarkError, match="must look like"):
        dataset_source("x", "wds_x", base_url="http://127.0.0.1:1/not-a-repo")


def test_dataset_root_layout(tmp_path):
    make_retrieval_wds(tmp_path, name="fixture_ret", n=6)
    assert download.ensure_dataset("fixture_ret", tmp_path / "cache", tmp_path) == tmp_path / "wds_fixture_ret"
    make_classification_wds(tmp_path, name="my-set", n=6)  # clip_benchmark's wds_<name>, "/" written as "-"
    assert download.ensure_dataset("wds/my/set", tmp_path / "cache", tmp_path) == tmp_path / "wds_my-set"
    (tmp_path / "wds_fixture_ret" / "test" / "1.tar").unlink()
    with pytest.raises(BenchmarkError, match="lacks test/1.tar"):
        download.ensure_dataset("fixture_ret", tmp_path / "cache", tmp_path)
    with pytest.raises(BenchmarkError, match="does not exist"):
        download.ensure_dataset("absent", tmp_path / "cache", tmp_path)


def test_check_layout_needs_class_files_for_classification(tmp_path):
    folder = make_classification_wds(tmp_path, n=6)
    (folder / "classnames.txt").unlink()
    check_layout(folder, "test", "zeroshot_retrieval")
    with pytest.raises(BenchmarkError, match="classnames.txt"):
        check_layout(folder, "test", "zeroshot_classification")


def test_catalog_dataset_through_hf_endpoint_and_env_token(hub, tmp_path, fixture_files, monkeypatch):
    """A catalog name resolves to its webdataset repo; HF_ENDPOINT (a mirror) and HF_TOKEN come from the env."""
    from openclip_benchmark.catalog import load_datasets

    spec = load_datasets()["cifar10"]
    hub.repo, hub.token = spec.url.split("/datasets/", 1)[1], TOKEN
    monkeypatch.setenv("HF_ENDPOINT", hub.endpoint)
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    folder = download.ensure_dataset("wds/cifar10", tmp_path / "cache", progress=False)
    assert folder == tmp_path / "cache" / "datasets" / spec.wds_name
    assert (folder / "test" / "0.tar").read_bytes() == fixture_files["test/0.tar"]
    assert all(h.get("Authorization") == f"Bearer {TOKEN}" for _, h in hub.requests)
    monkeypatch.delenv("HF_ENDPOINT")
    assert download.dataset_source("cifar10", spec.wds_name, spec).endpoint == spec.url.split("/datasets/")[0]


def test_unknown_dataset_without_root_or_url(tmp_path):
    with pytest.raises(BenchmarkError, match="unknown dataset 'cifar1000'"):
        download.ensure_dataset("cifar1000", tmp_path)


def test_a_damaged_marker_means_check_again(hub, tmp_path):
    folder = download_dataset(_source(hub), tmp_path / "d", progress=False)
    (folder / download.COMPLETE_MARKER).write_text('{"split": "test", "files": [1, 2]}')
    hub.requests.clear()
    assert download_dataset(_source(hub), folder, progress=False) == folder
    assert hub.requests and not hub.file_requests()  # listed again; every file was already whole
