"""Benchmark datasets in clip_benchmark's webdataset layout: a local folder, or a download into a shared cache.

The clip-benchmark webdatasets live in Hugging Face dataset repos. We list the repo through the Hub's tree API
(paths and sizes), fetch only what the test split needs, resume partial files with HTTP Range, check every size
(and the LFS sha256 when the listing gives it) and rename a file into place only once it is whole. A lock per
dataset folder lets concurrent workers share one cache; a marker file lets the next call skip the network.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import random
import re
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass
from http.client import HTTPException
from pathlib import Path
from typing import Callable, Iterator

from ..core.errors import BenchmarkError, UnknownNameError
from ..core.jsonio import atomic_write_json, loads_strict
from ..storage.store import TRANSIENT_EXIT_CODE

log = logging.getLogger(__name__)

METADATA_FILES = ("classnames.txt", "zeroshot_classification_templates.txt", "dataset_type.txt")
CLASS_FILES = ("classnames.txt", "zeroshot_classification_templates.txt")
COMPLETE_MARKER = ".complete.json"
MAX_ATTEMPTS = 5
BACKOFF_S = 1.0  # first retry delay; doubles per attempt, with jitter
MAX_BACKOFF_S = 30.0
TIMEOUT_S = 60.0
MAX_PARALLEL = 8
CHUNK = 1 << 20
_REPO_URL = re.compile(r"^(?P<endpoint>https?://.+?)/datasets/(?P<repo>[^/]+/[^/]+?)(?:/tree/(?P<rev>[^/]+))?/?$")


class TransientDownloadError(BenchmarkError):
    """The network or the server failed after every retry; running again later may work."""

    exit_code = TRANSIENT_EXIT_CODE


class _Retry(Exception):
    """One attempt failed in a way that another attempt may fix."""


@dataclass(frozen=True)
class DatasetSource:
    """Where a dataset comes from and what of it we need."""

    name: str
    wds_name: str
    endpoint: str  # e.g. https://huggingface.co
    repo: str  # e.g. clip-benchmark/wds_cifar10
    revision: str = "main"
    split: str = "test"
    task: str | None = None

    def tree_url(self, path: str = "", recursive: bool = False) -> str:
        url = f"{self.endpoint}/api/datasets/{self.repo}/tree/{_quote(self.revision)}"
        if path:
            url += "/" + _quote(path)
        return url + ("?recursive=true" if recursive else "")

    def file_url(self, path: str) -> str:
        return f"{self.endpoint}/datasets/{self.repo}/resolve/{_quote(self.revision)}/{_quote(path)}"


@dataclass(frozen=True)
class RemoteFile:
    path: str
    size: int
    sha256: str | None = None  # the LFS oid, when the listing has one


def ensure_dataset(
    name: str,
    cache_dir: str | os.PathLike,
    dataset_root: str | os.PathLike | None = None,
    *,
    base_url: str | None = None,
    token: str | None = None,
    progress: bool = True,
    spec=None,
) -> Path:
    """A local folder in clip_benchmark's webdataset layout for `name`: `dataset_root/<wds_name>`, or the cache.

    `base_url` replaces the catalog's repo URL (a mirror, a test server); it may contain `{wds_name}` and may end
    in `/tree/<revision>` as clip_benchmark's `--dataset_root` does. `token` defaults to `HF_TOKEN`.
    """
    wds_name, spec = (spec.wds_name, spec) if spec is not None else _resolve(name)
    split, task = (spec.split, spec.task) if spec else ("test", None)
    if dataset_root is not None:
        folder = Path(dataset_root).expanduser() / wds_name
        check_layout(folder, split, task, name)
        return folder
    source = dataset_source(name, wds_name, spec, base_url)
    folder = Path(cache_dir).expanduser() / "datasets" / wds_name
    token = token if token is not None else (os.environ.get("HF_TOKEN") or None)
    return download_dataset(source, folder, token=token, progress=progress)


def _resolve(name: str):
    """(wds_name, DatasetSpec or None): catalog names by their spec, others as clip_benchmark's `wds_<name>`."""
    from .. import catalog

    try:
        key = catalog.canonical_dataset(name)
    except UnknownNameError:
        bare = name.removeprefix("wds/")
        return (bare if bare.startswith("wds_") else "wds_" + bare).replace("/", "-"), None
    spec = catalog.load_datasets()[key]
    return spec.wds_name, spec


def dataset_source(name: str, wds_name: str, spec=None, base_url: str | None = None) -> DatasetSource:
    if base_url:
        url = base_url.replace("{wds_name}", wds_name)
    elif spec is not None and spec.url:
        url = spec.url
        if os.environ.get("HF_ENDPOINT"):  # Hugging Face mirrors, as huggingface_hub honours it
            match = _REPO_URL.match(url.rstrip("/"))
            if match:
                url = os.environ["HF_ENDPOINT"].rstrip("/") + url[match.end("endpoint") :]
    else:
        raise UnknownNameError("dataset", name, _known_datasets())
    match = _REPO_URL.match(url.rstrip("/"))
    if not match:
        raise BenchmarkError(f"dataset URL {url!r} must look like https://HOST/datasets/ORG/REPO[/tree/REVISION]")
    return DatasetSource(
        name=name,
        wds_name=wds_name,
        endpoint=match["endpoint"],
        repo=match["repo"],
        revision=match["rev"] or "main",
        split=spec.split if spec else "test",
        task=spec.task if spec else None,
    )


def _known_datasets():
    from ..catalog import load_datasets

    return load_datasets().keys()


def check_layout(folder: Path, split: str = "test", task: str | None = None, name: str | None = None) -> Path:
    """Refuse a folder that clip_benchmark's wds reader would fail on, naming what is missing."""
    label = name or folder.name
    if not folder.is_dir():
        raise BenchmarkError(f"dataset {label}: folder {folder} does not exist")
    nshards_file = folder / split / "nshards.txt"
    try:
        nshards = int(nshards_file.read_text().strip())
    except FileNotFoundError:
        raise BenchmarkError(f"dataset {label}: {nshards_file} is missing") from None
    except ValueError:
        raise BenchmarkError(f"dataset {label}: {nshards_file} does not hold a shard count") from None
    missing = [f"{split}/{i}.tar" for i in range(nshards) if not (folder / split / f"{i}.tar").is_file()]
    if task in ("zeroshot_classification", "multilabel"):
        missing += [f for f in CLASS_FILES if not (folder / f).is_file()]
    if nshards < 1 or missing:
        what = ", ".join(missing[:3]) + (f" and {len(missing) - 3} more" if len(missing) > 3 else "")
        raise BenchmarkError(f"dataset {label}: {folder} lacks {what or 'shards (nshards.txt says 0)'}")
    return folder


def download_dataset(source: DatasetSource, folder: Path, *, token: str | None = None, progress: bool = True) -> Path:
    """Fetch what `source.split` needs into `folder` once; later calls (any process) find the marker and return."""
    from filelock import FileLock

    folder.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(folder.parent / f".{folder.name}.lock"))
    try:
        lock.acquire(timeout=1)
    except TimeoutError:
        log.warning("waiting for another process that is downloading %s", source.wds_name)
        lock.acquire()
    try:
        if _complete(folder, source.split):
            return folder
        http = _Http(token)
        files = list_needed_files(source, http)
        todo = [f for f in files if not _whole(folder / f.path, f)]
        if todo:
            _fetch_all(source, folder, todo, http, progress)
        check_layout(folder, source.split, source.task, source.name)
        atomic_write_json(
            folder / COMPLETE_MARKER,
            {"url": f"{source.endpoint}/datasets/{source.repo}", "revision": source.revision, "split": source.split,
             "files": {f.path: f.size for f in files}},
        )
        return folder
    finally:
        lock.release()


def _complete(folder: Path, split: str) -> bool:
    """The marker of a finished download for this split, with every file it names still whole."""
    try:
        marker = loads_strict((folder / COMPLETE_MARKER).read_bytes())
        files = marker["files"] if marker.get("split") == split else {}
        return bool(files) and all((folder / p).is_file() and (folder / p).stat().st_size == s for p, s in files.items())
    except (OSError, ValueError, KeyError, TypeError, AttributeError):  # no marker, or one we cannot trust
        return False


def _whole(path: Path, remote: RemoteFile) -> bool:
    return path.is_file() and path.stat().st_size == remote.size


def list_needed_files(source: DatasetSource, http: "_Http") -> list[RemoteFile]:
    """The metadata files at the repo root and the split's shards, with sizes from the Hub's tree API."""
    root = [f for f in _list_tree(source, "", False, http) if f.path in METADATA_FILES]
    shards = [
        f
        for f in _list_tree(source, source.split, True, http)
        if f.path.endswith(".tar") or f.path == f"{source.split}/nshards.txt"
    ]
    if not any(f.path.endswith(".tar") for f in shards):
        raise BenchmarkError(f"dataset {source.name}: no {source.split}/*.tar in {source.endpoint}/datasets/{source.repo}")
    return sorted(root + shards, key=lambda f: f.path)


def _list_tree(source: DatasetSource, path: str, recursive: bool, http: "_Http") -> Iterator[RemoteFile]:
    url: str | None = source.tree_url(path, recursive)
    pages = 0
    while url and pages < 10_000:
        body, headers = http.get_json(url, source.name)
        pages += 1
        if not isinstance(body, list):
            raise BenchmarkError(f"dataset {source.name}: unexpected tree listing from {url}")
        for entry in body:
            if not isinstance(entry, dict) or entry.get("type") != "file":
                continue
            rel = str(entry["path"])
            if rel.startswith("/") or ".." in rel.split("/"):
                raise BenchmarkError(f"dataset {source.name}: unsafe path {rel!r} in the listing")
            lfs = entry.get("lfs") or {}
            yield RemoteFile(rel, int(lfs.get("size", entry.get("size", -1))), lfs.get("oid") or lfs.get("sha256"))
        url = _next_link(headers.get("Link", ""), url)


def _next_link(link_header: str, base: str) -> str | None:
    """The `rel="next"` URL of a GitHub-style Link header, as the Hub paginates its tree listings."""
    for part in link_header.split(","):
        match = re.match(r'\s*<([^>]*)>\s*;(.*)', part)
        if match and re.search(r'rel="?next"?', match.group(2)):
            return urllib.parse.urljoin(base, match.group(1))
    return None


def _fetch_all(source: DatasetSource, folder: Path, files: list[RemoteFile], http: "_Http", progress: bool) -> None:
    from rich.console import Console
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn, TransferSpeedColumn

    bar = Progress(
        TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(), TimeRemainingColumn(),
        console=Console(stderr=True), disable=not progress,
    )
    with bar:
        task = bar.add_task(f"download {source.wds_name} ({len(files)} files)", total=sum(f.size for f in files))
        advance = lambda n: bar.update(task, advance=n)  # noqa: E731  (called from the pool's threads)
        pool = ThreadPoolExecutor(max_workers=min(MAX_PARALLEL, len(files)), thread_name_prefix="download")
        try:
            futures = [pool.submit(fetch_file, source, f, folder, http, advance) for f in files]
            done, _ = wait(futures, return_when=FIRST_EXCEPTION)
            errors = [f.exception() for f in done if f.exception() is not None]
            if errors:
                http.cancel.set()
                pool.shutdown(wait=True, cancel_futures=True)
                # a refusal (401/404, bad size) says more than the transient errors it caused elsewhere
                raise next((e for e in errors if not isinstance(e, TransientDownloadError)), errors[0])
        finally:
            pool.shutdown(wait=True)


def fetch_file(
    source: DatasetSource, remote: RemoteFile, folder: Path, http: "_Http", advance: Callable[[int], None] = lambda n: None
) -> Path:
    """Download one file into `<path>.part` (resuming), verify, rename into place; bounded retries with backoff."""
    target = folder / remote.path
    part = target.with_name(target.name + ".part")
    target.parent.mkdir(parents=True, exist_ok=True)
    url = source.file_url(remote.path)
    reported = 0

    def advance_to(done: int) -> None:  # the bar never counts a byte twice, whatever the retries
        nonlocal reported
        if done > reported:
            advance(done - reported)
            reported = done

    last: Exception | None = None
    for attempt in range(1, MAX_ATTEMPTS + 1):
        if http.cancel.is_set():
            raise TransientDownloadError(f"dataset {source.name}: download cancelled")
        try:
            _fetch_once(url, remote, part, http, source.name, advance_to)
            _verify(part, remote)
            os.replace(part, target)
            return target
        except _Retry as exc:
            last = exc
            if attempt < MAX_ATTEMPTS:
                delay = getattr(exc, "retry_after", None) or min(MAX_BACKOFF_S, BACKOFF_S * 2 ** (attempt - 1))
                log.warning("%s: %s; retry %d/%d in %.1fs", remote.path, exc, attempt, MAX_ATTEMPTS - 1, delay)
                http.cancel.wait(delay * random.uniform(1.0, 1.25))
        except _SizeError as exc:
            last = exc
            part.unlink(missing_ok=True)
            log.warning("%s: %s; starting over", remote.path, exc)
    if isinstance(last, _SizeError):
        raise BenchmarkError(f"dataset {source.name}: {remote.path}: {last} after {MAX_ATTEMPTS} attempts")
    raise TransientDownloadError(f"dataset {source.name}: {remote.path}: {last} after {MAX_ATTEMPTS} attempts ({url})")


class _SizeError(Exception):
    """The bytes we got are not the file the listing described; the partial file is discarded."""


def _fetch_once(url: str, remote: RemoteFile, part: Path, http: "_Http", name: str, advance_to) -> None:
    have = part.stat().st_size if part.exists() else 0
    if have > remote.size:
        raise _SizeError(f"partial file is larger ({have} bytes) than the listed {remote.size} bytes")
    if have == remote.size and remote.size > 0:
        return
    headers = {"Range": f"bytes={have}-"} if have else {}
    with http.open(url, name, headers) as resp:
        if have and resp.status != 206:  # the server ignored the range: start over
            have = 0
        expected_len = resp.headers.get("Content-Length")
        got = 0
        with open(part, "ab" if have else "wb") as fh:
            try:
                while chunk := resp.read(CHUNK):
                    if have + got + len(chunk) > remote.size:
                        raise _SizeError(f"server sent more than the listed {remote.size} bytes")
                    fh.write(chunk)
                    got += len(chunk)
                    advance_to(have + got)
                    if http.cancel.is_set():
                        raise _Retry("cancelled")
            except (OSError, HTTPException) as exc:  # dropped mid-file: keep the bytes, resume later
                raise _Retry(f"{type(exc).__name__} after {have + got} bytes") from None
            finally:
                fh.flush()
                os.fsync(fh.fileno())
    if expected_len is not None and got < int(expected_len):
        raise _Retry(f"connection closed after {got} of {expected_len} bytes")
    if have + got != remote.size:
        raise _SizeError(f"got {have + got} bytes, the listing says {remote.size}")


def _verify(part: Path, remote: RemoteFile) -> None:
    size = part.stat().st_size
    if size != remote.size:
        raise _SizeError(f"got {size} bytes, the listing says {remote.size}")
    if remote.sha256 and len(remote.sha256) == 64:
        digest = hashlib.sha256()
        with open(part, "rb") as fh:
            while block := fh.read(CHUNK):
                digest.update(block)
        if digest.hexdigest() != remote.sha256:
            raise _SizeError("sha256 does not match the listing")


class _Http:
    """urllib with the token as an Authorization header that is never forwarded on redirect, nor logged."""

    RETRY_STATUS = (408, 425, 429, 500, 502, 503, 504)

    def __init__(self, token: str | None):
        self._token = token
        self.cancel = threading.Event()

    def __repr__(self) -> str:
        return f"_Http(token={'set' if self._token else 'none'})"

    def open(self, url: str, name: str, headers: dict[str, str] | None = None):
        req = urllib.request.Request(url, headers={"User-Agent": "openclip-benchmark", **(headers or {})})
        if self._token:
            # unredirected: the Hub redirects LFS files to a CDN that must not see the token
            req.add_unredirected_header("Authorization", f"Bearer {self._token}")
        try:
            return urllib.request.urlopen(req, timeout=TIMEOUT_S)
        except urllib.error.HTTPError as exc:
            exc.close()
            if exc.code in (401, 403):
                hint = "HF_TOKEN was refused" if self._token else "set HF_TOKEN to a Hugging Face token with access"
                raise BenchmarkError(f"dataset {name}: access denied (HTTP {exc.code}) at {url}; {hint}") from None
            if exc.code == 404:
                raise BenchmarkError(f"dataset {name}: not found (HTTP 404) at {url}") from None
            if exc.code == 416:
                raise _SizeError("the server refused the resume range") from None
            if exc.code in self.RETRY_STATUS:
                retry = _Retry(f"HTTP {exc.code}")
                retry.retry_after = _retry_after(exc.headers.get("Retry-After"))
                raise retry from None
            raise BenchmarkError(f"dataset {name}: HTTP {exc.code} at {url}") from None
        except (urllib.error.URLError, OSError) as exc:
            raise _Retry(f"{type(exc).__name__}: {getattr(exc, 'reason', exc)}") from None

    def get_json(self, url: str, name: str):
        last: Exception | None = None
        for attempt in range(1, MAX_ATTEMPTS + 1):
            try:
                with self.open(url, name, {"Accept": "application/json"}) as resp:
                    return json.loads(resp.read()), resp.headers
            except (_Retry, ValueError, OSError) as exc:
                last = exc
                if attempt < MAX_ATTEMPTS:
                    delay = getattr(exc, "retry_after", None) or min(MAX_BACKOFF_S, BACKOFF_S * 2 ** (attempt - 1))
                    log.warning("listing %s: %s; retry %d/%d", url, exc, attempt, MAX_ATTEMPTS - 1)
                    time.sleep(delay * random.uniform(1.0, 1.25))
        raise TransientDownloadError(f"dataset {name}: listing failed after {MAX_ATTEMPTS} attempts: {last} ({url})")


def _retry_after(value: str | None) -> float | None:
    try:
        return min(MAX_BACKOFF_S, max(0.0, float(value))) if value else None
    except ValueError:
        return None


def _quote(path: str) -> str:
    return urllib.parse.quote(path, safe="/")
