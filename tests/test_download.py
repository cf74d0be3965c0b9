"""Dataset download: the real huggingface_hub against a Hub-like HTTP server on 127.0.0.1 serving a fixture webdataset.

The server (`tests/loopback_hub.py`) answers what huggingface_hub calls: the dataset info API, HEAD and GET
on `resolve/` (X-Repo-Commit, ETag, and for LFS files X-Linked-Etag / X-Linked-Size and a redirect to a CDN on another
port), with Range and faults.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from pathlib import Path

import pytest

from fixtures import HANG_S, make_classification_wds, make_retrieval_wds
from loopback_hub import COMMIT, Hub
from openclip_benchmark.datasets import download
from openclip_benchmark.datasets.download import TransientDownloadError, check_layout, dataset_source, download_dataset
from openclip_benchmark.core.errors import BenchmarkError
from openclip_benchmark.storage.store import TRANSIENT_EXIT_CODE

REPO = "clip-benchmark/wds_fixture_cls"
TOKEN = "hf_SECRETtoken123"


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
    with Hub(dict(fixture_files), REPO) as server:
        yield server


def _source(hub: Hub):
    return dataset_source("fixture_cls", "wds_fixture_cls", base_url=hub.url)


def _needed(files: dict[str, bytes]) -> dict[str, bytes]:
    return {p: b for p, b in files.items() if p.startswith("test/") or p in download.METADATA_FILES}


def _no_partial_files(cache: Path) -> bool:
    return not list(cache.rglob("*.incomplete"))


def test_full_download_reads_back_through_clip_benchmark_and_second_call_is_offline(hub, tmp_path, fixture_files):
    from clip_benchmark.datasets.builder import build_dataset

    folder = download_dataset(_source(hub), tmp_path, progress=False)
    assert folder == tmp_path / "datasets--clip-benchmark--wds_fixture_cls" / "snapshots" / COMMIT
    assert _tree_bytes(folder) == _needed(fixture_files)  # the split and metadata, byte for byte; no train/, README
    assert check_layout(folder, "test", "zeroshot_classification") == folder
    assert sorted(hub.gets()) == sorted(_needed(fixture_files))  # each file fetched once
    ds = build_dataset("wds/fixture_cls", root=str(folder), transform=lambda image: image.size, split="test",
                       task="zeroshot_classification")
    samples = list(ds)
    assert len(samples) == 12 and ds.classes == (folder / "classnames.txt").read_text().split("\n")[: len(ds.classes)]
    hub.requests.clear()
    assert download_dataset(_source(hub), tmp_path, progress=False) == folder
    assert hub.requests == []  # the cache answers: not even a listing


def test_a_lost_file_is_fetched_again_alone(hub, tmp_path):
    folder = download_dataset(_source(hub), tmp_path, progress=False)
    (folder / "test" / "1.tar").resolve().unlink()  # the blob goes; its link in the snapshot dangles
    hub.requests.clear()
    assert download_dataset(_source(hub), tmp_path, progress=False) == folder
    assert hub.gets() == ["test/1.tar"]
    assert check_layout(folder, "test", "zeroshot_classification") == folder


def test_server_errors_and_a_429_with_retry_after_are_retried(hub, tmp_path, fixture_files):
    hub.faults = {"info": ["429"], "test/0.tar": ["500", "429"], "classnames.txt": ["500"]}
    folder = download_dataset(_source(hub), tmp_path, progress=False)
    assert _tree_bytes(folder) == _needed(fixture_files)
    assert hub.gets().count("test/0.tar") == 3 and hub.gets().count("classnames.txt") == 2
    assert sum(m == "GET" and "/api/" in p for m, p, _ in hub.requests) >= 2  # the listing was asked again


def test_dropped_connection_resumes_with_range(hub, tmp_path, fixture_files, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "DOWNLOAD_CHUNK_SIZE", 256)  # what it writes before the drop is resumed from
    hub.faults = {"test/1.tar": ["drop", "drop"]}
    folder = download_dataset(_source(hub), tmp_path, progress=False)
    assert (folder / "test" / "1.tar").read_bytes() == fixture_files["test/1.tar"]
    ranges = [h.get("Range") for m, p, h in hub.requests if m == "GET" and p == "/cdn/test/1.tar"]
    assert ranges[0] is None and len(ranges) == 3
    first = int(ranges[1].removeprefix("bytes=").rstrip("-"))
    assert 0 < first <= len(fixture_files["test/1.tar"]) // 3  # resumes where the first connection died
    assert int(ranges[2].removeprefix("bytes=").rstrip("-")) > first
    assert _no_partial_files(tmp_path)


def test_retries_are_bounded_and_transient(hub, tmp_path):
    hub.faults = {"test/2.tar": ["500"] * 50}
    with pytest.raises(TransientDownloadError) as info:
        download_dataset(_source(hub), tmp_path, progress=False)
    assert info.value.exit_code == TRANSIENT_EXIT_CODE
    assert "test/2.tar" in str(info.value) and "HTTP 500" in str(info.value) and "\n" not in str(info.value)
    assert hub.gets().count("test/2.tar") == download.MAX_ATTEMPTS


def test_a_corrupt_file_is_fetched_again(hub, tmp_path, fixture_files):
    hub.faults = {"test/0.tar": ["corrupt"]}
    folder = download_dataset(_source(hub), tmp_path, progress=False)
    assert (folder / "test" / "0.tar").read_bytes() == fixture_files["test/0.tar"]
    assert hub.gets().count("test/0.tar") == 2


def test_a_file_that_stays_corrupt_is_an_error_and_leaves_no_file(hub, tmp_path):
    hub.faults = {"test/0.tar": ["corrupt"] * 50}
    with pytest.raises(BenchmarkError, match="0.tar: sha256 differs") as info:
        download_dataset(_source(hub), tmp_path, progress=False)
    assert not isinstance(info.value, TransientDownloadError) and "\n" not in str(info.value)
    assert hub.gets().count("test/0.tar") == download.MAX_ATTEMPTS
    blob = tmp_path / "datasets--clip-benchmark--wds_fixture_cls" / "blobs" / hashlib.sha256(hub.files["test/0.tar"]).hexdigest()
    assert not blob.exists() and _no_partial_files(tmp_path)


@pytest.mark.parametrize("delta", [7, -7])
def test_wrong_size_is_an_error_and_leaves_no_file(hub, tmp_path, delta):
    hub.listed_sizes = {"test/0.tar": len(hub.files["test/0.tar"]) + delta}
    with pytest.raises(BenchmarkError, match="size differs from the size the Hub lists") as info:
        download_dataset(_source(hub), tmp_path, progress=False)
    assert not isinstance(info.value, TransientDownloadError)
    assert hub.gets().count("test/0.tar") == download.MAX_ATTEMPTS  # each attempt starts over, none resumes a bad file
    assert _no_partial_files(tmp_path)


def test_unauthorized_names_hf_token(hub, tmp_path):
    hub.token = TOKEN
    with pytest.raises(BenchmarkError, match="HF_TOKEN") as info:
        download_dataset(_source(hub), tmp_path, progress=False)
    assert "401" in str(info.value) and "fixture_cls" in str(info.value) and "\n" not in str(info.value)
    with pytest.raises(BenchmarkError, match="HF_TOKEN was refused"):
        download_dataset(_source(hub), tmp_path, token="hf_wrong", progress=False)


def test_token_is_sent_but_never_forwarded_or_logged(hub, tmp_path, fixture_files, caplog, capfd):
    hub.token = TOKEN
    hub.faults = {"test/0.tar": ["500"]}  # a retry logs a warning: it must not carry the token
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="huggingface_hub")
    folder = download_dataset(_source(hub), tmp_path, token=TOKEN, progress=True)
    assert (folder / "test" / "0.tar").read_bytes() == fixture_files["test/0.tar"]
    hub_side = [h for m, p, h in hub.requests if not p.startswith("/cdn/")]
    cdn = [h for m, p, h in hub.requests if p.startswith("/cdn/")]
    assert hub_side and all(h.get("Authorization") == f"Bearer {TOKEN}" for h in hub_side)
    assert cdn and all("Authorization" not in h for h in cdn)  # the CDN never sees it
    out = capfd.readouterr()
    assert any("retry" in r.getMessage() for r in caplog.records)
    assert TOKEN not in caplog.text + out.out + out.err


def test_not_found(hub, tmp_path):
    source = dataset_source("nope", "wds_nope", base_url=hub.url.replace("wds_fixture_cls", "wds_nope"))
    with pytest.raises(BenchmarkError, match="nope: not found") as info:
        download_dataset(source, tmp_path, progress=False)
    assert "\n" not in str(info.value) and not isinstance(info.value, TransientDownloadError)
    source = dataset_source("fixture_cls", "wds_fixture_cls", base_url=hub.url + "/tree/v9")
    with pytest.raises(BenchmarkError, match="not found"):
        download_dataset(source, tmp_path, progress=False)


def test_a_repo_without_the_split_is_refused(hub, tmp_path):
    hub.files = {p: b for p, b in hub.files.items() if not p.startswith("test/")}
    with pytest.raises(BenchmarkError, match="no test/\\*.tar in"):
        download_dataset(_source(hub), tmp_path, progress=False)


def test_concurrent_callers_share_one_download(hub, tmp_path):
    results, errors = [], []

    def worker():
        try:
            results.append(download_dataset(_source(hub), tmp_path, progress=False))
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=HANG_S)
    assert not errors and len(results) == 3 and len(set(results)) == 1
    assert len(hub.gets()) == len(set(hub.gets()))  # each file fetched once


def test_base_url_template_and_revision():
    source = dataset_source("x", "wds_x", base_url="http://127.0.0.1:1/mirror/datasets/org/{wds_name}/tree/v2")
    assert (source.endpoint, source.repo, source.revision) == ("http://127.0.0.1:1/mirror", "org/wds_x", "v2")
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
    assert not (tmp_path / "cache").exists()  # a local root downloads nothing


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
    monkeypatch.setenv("HF_ENDPOINT", hub.endpoint())
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    folder = download.ensure_dataset("wds/cifar10", tmp_path / "cache", progress=False, spec=spec)
    assert folder.parent.parent.parent == tmp_path / "cache" / "datasets"
    assert (folder / "test" / "0.tar").read_bytes() == fixture_files["test/0.tar"]
    assert all(h.get("Authorization") == f"Bearer {TOKEN}" for m, p, h in hub.requests if not p.startswith("/cdn/"))
    monkeypatch.delenv("HF_ENDPOINT")
    assert download.dataset_source("cifar10", spec.wds_name, spec).endpoint == spec.url.split("/datasets/")[0]


def test_unknown_dataset_without_root_or_url(tmp_path):
    with pytest.raises(BenchmarkError, match="'cifar1000' is not in the dataset mapping"):
        download.ensure_dataset("cifar1000", tmp_path)
