"""Benchmark datasets in clip_benchmark's webdataset layout: a local folder, or a download into a shared cache.

The clip-benchmark webdatasets live in Hugging Face dataset repos. huggingface_hub's `snapshot_download` fetches what
the splits a shard reads need (the test split; a linear probe's train split too) into its cache under `<cache_dir>/datasets` (files in parallel, a lock per file across processes,
resume from its `.incomplete` files, the size check, no token on the redirect to the CDN), and the dataset folder is
its snapshot folder. Kept here, for what it lacks: a bounded retry around it for the errors it lets through (a 500 or a
dropped connection while fetching a file), the sha256 check of LFS files, one-line errors, and the layout check.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import time
import urllib.error
from dataclasses import dataclass, replace
from pathlib import Path
from urllib.parse import unquote, urlparse

from ..core.errors import BenchmarkError
from ..storage.store import TRANSIENT_EXIT_CODE
from ..tasks import get_task

log = logging.getLogger(__name__)

METADATA_FILES = ("classnames.txt", "zeroshot_classification_templates.txt", "dataset_type.txt")
MAX_ATTEMPTS = 5
BACKOFF_S = 1.0  # first retry delay; doubles per attempt (a 429's Retry-After wins)
MAX_BACKOFF_S = 30.0
MAX_PARALLEL = 8
RETRY_STATUS = (408, 425, 429, 500, 502, 503, 504)
_REPO_URL = re.compile(r"^(?P<endpoint>https?://.+?)/datasets/(?P<repo>[^/]+/[^/]+?)(?:/tree/(?P<rev>[^/]+))?/?$")
_SHA256 = re.compile(r"[0-9a-f]{64}")


class TransientDownloadError(BenchmarkError):
    """The network or the server failed after every retry; running again later may work."""

    exit_code = TRANSIENT_EXIT_CODE


class _Retry(Exception):
    """One attempt failed in a way that another attempt may fix."""

    def __init__(self, message: str, retry_after: float | None = None):
        super().__init__(message)
        self.retry_after = retry_after


class _Mismatch(_Retry):
    """The bytes received are not the file the Hub lists (size or sha256); they were discarded."""


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
    also: tuple[str, ...] = ()  # further splits wanted (a linear probe's train split)

    @property
    def url(self) -> str:
        return f"{self.endpoint}/datasets/{self.repo}"

    @property
    def splits(self) -> tuple[str, ...]:
        return (self.split, *self.also)

    def wanted(self, path: str) -> bool:
        """The files the splits need: their shards and shard counts, and the metadata files at the repo root."""
        return path in METADATA_FILES or any(path == f"{split}/nshards.txt" or (
            path.startswith(split + "/") and path.endswith(".tar")) for split in self.splits)


def ensure_dataset(
    name: str,
    cache_dir: str | os.PathLike,
    dataset_root: str | os.PathLike | None = None,
    *,
    base_url: str | None = None,
    token: str | None = None,
    progress: bool = True,
    spec=None,
    splits: tuple[str, ...] | None = None,
) -> Path:
    """A local folder in clip_benchmark's webdataset layout for `name`: `dataset_root/<wds_name>`, or the cache's,
    holding `splits` (default: the split the spec scores). `spec` is the catalog's entry the caller looked up; None is
    a dataset the catalog lacks.

    `base_url` replaces the catalog's repo URL (a mirror, a test server); it may contain `{wds_name}` and may end
    in `/tree/<revision>` as clip_benchmark's `--dataset_root` does. `token` defaults to `HF_TOKEN`.
    """
    wds_name = spec.wds_name if spec is not None else local_wds_name(name)
    splits, task = splits or ((spec.split,) if spec else ("test",)), spec.task if spec else None
    if dataset_root is not None:
        folder = Path(dataset_root).expanduser() / wds_name
        check_splits(folder, splits, task, name)
        return folder
    if spec is not None and spec.url.startswith("file://"):  # a dataset of your own (`benchmark dataset add`)
        return check_splits(Path(unquote(urlparse(spec.url).path)), splits, task, name)
    if spec is not None and spec.convert:  # its authors publish files, not a webdataset
        raise BenchmarkError(f"dataset {name} has no published webdataset: get its files ({spec.url}), run `benchmark "
                             f"dataset convert {spec.convert} --from DIR --root ROOT` and pass --dataset-root ROOT")
    source = replace(dataset_source(name, wds_name, spec, base_url), split=splits[0], also=tuple(splits[1:]))
    token = token if token is not None else (os.environ.get("HF_TOKEN") or None)
    return download_dataset(source, Path(cache_dir).expanduser() / "datasets", token=token, progress=progress)


def local_wds_name(name: str) -> str:
    """A dataset the catalog lacks lives in clip_benchmark's `wds_<name>` folder (`wds/my/set` -> `wds_my-set`)."""
    bare = name.removeprefix("wds/")
    return (bare if bare.startswith("wds_") else "wds_" + bare).replace("/", "-")


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
        raise BenchmarkError(f"dataset {name!r} is not in the dataset mapping: add it there, or give --dataset-root")
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


def check_splits(folder: Path, splits: tuple[str, ...], task: str | None = None, name: str | None = None) -> Path:
    for split in splits:
        check_layout(folder, split, task, name)
    return folder


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
    if task is not None:
        missing += [f for f in get_task(task).files if not (folder / f).is_file()]
    if nshards < 1 or missing:
        what = ", ".join(missing[:3]) + (f" and {len(missing) - 3} more" if len(missing) > 3 else "")
        raise BenchmarkError(f"dataset {label}: {folder} lacks {what or 'shards (nshards.txt says 0)'}")
    return folder


def download_dataset(source: DatasetSource, cache_dir: Path, *, token: str | None = None, progress: bool = True) -> Path:
    """The snapshot folder of `source` in the huggingface_hub cache `cache_dir`, fetching what its split lacks.

    A complete snapshot in the cache answers without the network; otherwise bounded attempts with backoff.
    """
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:  # a cache hit makes no request at all, as huggingface_hub would make one to list the repo
        cached = Path(snapshot_download(source.repo, repo_type="dataset", revision=source.revision,
                                        cache_dir=cache_dir, local_files_only=True))
        return check_splits(cached, source.splits, source.task, source.name)
    except (LocalEntryNotFoundError, BenchmarkError):
        pass
    last: _Retry | None = None
    for attempt in range(1, MAX_ATTEMPTS + 1):
        try:
            return _download_once(source, cache_dir, token, progress)
        except _Retry as exc:
            last = exc
        except BenchmarkError:
            raise
        except Exception as exc:
            failure = _failure(exc, source, token)
            if not isinstance(failure, _Retry):
                raise failure from None
            last = failure
        if attempt < MAX_ATTEMPTS:
            delay = last.retry_after if last.retry_after is not None else BACKOFF_S * 2 ** (attempt - 1)
            delay = min(MAX_BACKOFF_S, delay)
            log.warning("dataset %s: %s; retry %d/%d in %.2fs", source.name, last, attempt, MAX_ATTEMPTS - 1, delay)
            time.sleep(delay)
    kind = BenchmarkError if isinstance(last, _Mismatch) else TransientDownloadError
    raise kind(f"dataset {source.name}: {last} (gave up after {MAX_ATTEMPTS} attempts)")


def _download_once(source: DatasetSource, cache_dir: Path, token: str | None, progress: bool) -> Path:
    from huggingface_hub import HfApi, snapshot_download

    # our own listing: snapshot_download answers a failed listing with a stale partial snapshot, not an error
    api = HfApi(endpoint=source.endpoint, token=token or False, library_name="openclip-benchmark")
    info = api.dataset_info(source.repo, revision=source.revision)
    needed = sorted(s.rfilename for s in info.siblings or () if source.wanted(s.rfilename))
    missing = [s for s in source.splits if not any(p.startswith(f"{s}/") and p.endswith(".tar") for p in needed)]
    if missing:
        raise BenchmarkError(f"dataset {source.name}: no {missing[0]}/*.tar in {source.url}")
    try:
        folder = Path(snapshot_download(
            source.repo, repo_type="dataset", revision=source.revision, cache_dir=cache_dir, endpoint=source.endpoint,
            token=token or False, allow_patterns=needed, max_workers=MAX_PARALLEL, library_name="openclip-benchmark",
            tqdm_class=None if progress else _quiet_tqdm(),
        ))
    except OSError as exc:
        if "Consistency check failed" not in str(exc):
            raise
        _discard_incomplete(cache_dir, source.repo)
        raise _Mismatch("a file's size differs from the size the Hub lists") from None
    missing = [p for p in needed if not (folder / p).is_file()]
    if missing:
        raise _Retry(f"the Hub lists {missing[0]} but did not serve it")
    for path in needed:
        _verify_sha256(folder / path)
    return check_splits(folder, source.splits, source.task, source.name)


def _verify_sha256(pointer: Path) -> None:
    """huggingface_hub does not hash what it downloads: an LFS blob is named by its sha256, so check the bytes."""
    blob = pointer.resolve()
    if not _SHA256.fullmatch(blob.name):
        return
    digest = hashlib.sha256()
    with open(blob, "rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    if digest.hexdigest() != blob.name:
        blob.unlink(missing_ok=True)
        pointer.unlink(missing_ok=True)
        raise _Mismatch(f"{pointer.name}: sha256 differs from the one the Hub lists")


def _discard_incomplete(cache_dir: Path, repo: str) -> None:
    """huggingface_hub keeps a partial file that failed its size check and would resume it; drop the idle ones."""
    from filelock import FileLock, Timeout
    from huggingface_hub.file_download import repo_folder_name

    folder = repo_folder_name(repo_id=repo, repo_type="dataset")
    for part in (cache_dir / folder / "blobs").glob("*.incomplete"):
        lock = FileLock(str(cache_dir / ".locks" / folder / (part.name.removesuffix(".incomplete") + ".lock")))
        try:
            with lock.acquire(timeout=0):  # held: another process is writing it
                part.unlink(missing_ok=True)
        except Timeout:
            continue


def _failure(exc: BaseException, source: DatasetSource, token: str | None) -> BaseException:
    """What huggingface_hub raised, as a _Retry when another attempt may help, else a one-line BenchmarkError."""
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError, OfflineModeIsEnabled

    name = source.name
    if isinstance(exc, HfHubHTTPError) and exc.response is not None:
        status, url = exc.response.status_code, str(exc.response.url)
        if status in RETRY_STATUS:
            return _Retry(f"HTTP {status} at {url}", _retry_after(exc.response.headers.get("Retry-After")))
        if status in (401, 403):  # the Hub answers 401 for a private, gated or missing repo alike
            hint = "HF_TOKEN was refused" if token else "set HF_TOKEN to a Hugging Face token with access"
            return BenchmarkError(f"dataset {name}: access denied or not found (HTTP {status}) at {source.url}; {hint}")
        if status == 404:
            return BenchmarkError(f"dataset {name}: not found (HTTP 404) at {url}")
        return BenchmarkError(f"dataset {name}: HTTP {status} at {url}")
    if isinstance(exc, OfflineModeIsEnabled):
        return BenchmarkError(f"dataset {name}: HF_HUB_OFFLINE is set and {source.url} is not in the cache")
    if isinstance(exc, LocalEntryNotFoundError) and exc.__cause__ is not None:  # the Hub could not be asked
        return _failure(exc.__cause__, source, token)
    if why := retry_reason(exc):
        return _Retry(f"{why} talking to {source.endpoint}")
    first_line = (str(exc).strip().splitlines() or [""])[0]
    return BenchmarkError(f"dataset {name}: {type(exc).__name__}: {first_line}")


def retry_reason(exc: BaseException) -> str | None:
    """Why another attempt may work where `exc` failed (a 429 or 5xx answer, a connection that failed or timed out),
    found anywhere in its chain of causes, or None. open_clip wraps what huggingface_hub or urllib raised; after a
    connection error huggingface_hub retries on the client it has just closed, and httpx says so in a RuntimeError."""
    import httpx
    from huggingface_hub.errors import HfHubHTTPError

    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, HfHubHTTPError) and exc.response is not None:
            status = exc.response.status_code
        else:
            status = exc.code if isinstance(exc, urllib.error.HTTPError) else None
        if status in RETRY_STATUS:
            return f"HTTP {status}"
        if isinstance(exc, (httpx.TimeoutException, TimeoutError)):
            return "a timeout"
        if status is None and isinstance(exc, (httpx.TransportError, ConnectionError, urllib.error.URLError)):
            return "a connection error"
        if isinstance(exc, RuntimeError) and "client has been closed" in str(exc):
            return "a connection error"
        exc = exc.__cause__ or exc.__context__
    return None


def _retry_after(value: str | None) -> float | None:
    try:
        return max(0.0, float(value)) if value else None
    except ValueError:
        return None


def _quiet_tqdm():
    from huggingface_hub.utils import tqdm

    class Quiet(tqdm):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **{**kwargs, "disable": True})

    return Quiet
