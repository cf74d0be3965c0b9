"""Store -> local results folder: incremental (ETag + size index), parallel, validated. What it fetched is reported
as records (and every result the mirror holds by pair), for the tracker to apply; sync itself never writes it.

Shard bundles (see bundle.py) replace most GETs: a new result whose listed ETag is the MD5 of the bytes a fetched
bundle holds for its key is taken from the bundle, byte for byte what a GET would return; any other is fetched.
"""

from __future__ import annotations

import errno
import hashlib
import os
from concurrent.futures import CancelledError, ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from ..core.clock import utc_now
from ..core.errors import BenchmarkError, InvalidResultError
from ..core.jsonio import atomic_write_bytes, atomic_write_json, read_json
from ..core.records import Naming, Record, Result, read_record
from ..core.samples import read_samples
from .bundle import read_bundle
from .layout import is_bundle, is_record_key, is_reserved, is_samples_key, slug
from .store import LocalStore, Store, StoreError, StoreUnreachableError, TransientStoreError, open_store, unsafe_path

INDEX_NAME = ".sync-index.json"
QUARANTINE_DIR = ".quarantine"
INDEX_VERSION = 1
# the index is our own state, about 430 bytes a mirrored pair: read_json's default bound (64 MiB) would drop it, and
# so every incremental sync, past some 150,000 pairs
MAX_INDEX_BYTES = 2**32
KEY_ERRNOS = (errno.ENOTDIR, errno.EISDIR, errno.EEXIST, errno.ENAMETOOLONG)  # this key's fault, not the disk's


@dataclass
class SyncReport:
    """What one sync saw and did; keys are relative to the store root."""

    store: str
    listed: int = 0
    new: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    unchanged: int = 0
    manifests: int = 0  # shard manifests, and the manifests and bundles of a store kept in a subfolder: skipped
    refused: list[tuple[str, str]] = field(default_factory=list)
    quarantined: list[tuple[str, str]] = field(default_factory=list)
    known_bad: int = 0  # unchanged since an earlier sync quarantined or refused them
    errors: list[tuple[str, str]] = field(default_factory=list)
    results: int = 0
    failures: int = 0
    samples: int = 0  # per-sample outcome files fetched (beside their results)
    bytes: int = 0
    tracker_updates: int = 0  # rows the tracker changed from this sync's records (set by whoever applied them)
    records: list[Record] = field(default_factory=list)  # the valid result and failure records fetched
    mirrored: dict[str, str] = field(default_factory=dict)  # pair id -> key of every valid result in the mirror
    bundles: int = 0  # shard bundles fetched
    from_bundles: int = 0  # objects taken from a bundle instead of a GET
    dry_run: bool = False

    @property
    def exit_code(self) -> int:
        """0, or 75 (retry) when downloads failed; refused and quarantined objects are warnings, not errors."""
        return TransientStoreError.exit_code if self.errors else 0


Progress = Callable[[int, int], None]  # (done, total): the shell draws it; storage never prints
UNREACHABLE = "not fetched: the store stopped answering"


def open_source(url: str, endpoint_url: str | None = None, workers: int = 16, timeout: float | None = None) -> Store:
    """The store to sync from, with an HTTP pool as large as the download pool."""
    return open_store(url, endpoint_url, max_pool=max(32, workers), timeout=timeout)


def _unsafe(key: str) -> str | None:
    if unsafe_path(key):
        return "unsafe key (absolute, '.', '..', backslash, control character or empty part)"
    if any(part.startswith(".") for part in key.split("/")):
        return "hidden path (could overwrite sync state)"
    return None


def refusal(key: str) -> str | None:
    """Why a listed key must not be mirrored, or None when it is a result or samples file we may write."""
    why = _unsafe(key)
    if why is None and not (is_record_key(key) or is_samples_key(key)):
        why = "not a result file (.json) or per-sample outcomes (.samples)"
    return why


def _load_index(path: Path, store_url: str) -> dict[str, list]:
    """key -> [etag, size, state, result pair id] of what the last sync fetched; a damaged index means a full sync."""
    try:
        data = read_json(path.read_bytes(), "sync index", max_bytes=MAX_INDEX_BYTES)
        entries = data["stores"][store_url]
        return {k: v for k, v in entries.items() if isinstance(v, list) and len(v) == 4}
    except (OSError, InvalidResultError, KeyError, TypeError, AttributeError):
        return {}


def _save_index(path: Path, store_url: str, entries: dict[str, list]) -> None:
    try:
        data = read_json(path.read_bytes(), "sync index", max_bytes=MAX_INDEX_BYTES)
        stores = data["stores"] if isinstance(data.get("stores"), dict) else {}
    except (OSError, InvalidResultError, AttributeError):
        stores = {}
    stores[store_url] = entries
    atomic_write_json(path, {"version": INDEX_VERSION, "updated_at": utc_now(), "stores": stores})


def quarantine_name(key: str) -> str:
    """A flat, safe file name for a bad object, unique per key."""
    return f"{slug(key, limit=100)}-{hashlib.sha256(key.encode('utf-8')).hexdigest()[:10]}.json"


def _quarantine(results: Path, key: str, etag: str, data: bytes, reason: str) -> None:
    name = quarantine_name(key)
    folder = results / QUARANTINE_DIR
    atomic_write_bytes(folder / name, data)
    why = {"key": key, "etag": etag, "reason": reason, "time": utc_now()}
    atomic_write_json(folder / (name[: -len(".json")] + ".reason.json"), why)


def sync_results(
    store: Store,
    local_dir: str | os.PathLike,
    *,
    dry_run: bool = False,
    workers: int = 16,
    on_progress: Progress | None = None,
    bundles: bool = True,
    catalog: Naming | None = None,
) -> SyncReport:
    """Mirror every new or changed result of `store` into `local_dir`; report the records fetched and the results the
    mirror holds, so a tracker can follow (`pipeline.track.sync_and_track`).

    A listing plus a compare against the local index decides what to fetch, so a sync with nothing new does no GET.
    `bundles=False` fetches every object by itself (the per-object way, for comparison and debugging).
    `catalog` names a record's pair as the catalog does (`wds/cifar10` -> `cifar10`; clip_benchmark's task
    name for a multilabel set -> `multilabel`), so it is the tracker's pair, and quarantines a result whose main
    metric is not a number; without it names are taken as written. `on_progress(done, total)` follows the
    downloads. Once the store stops answering, the downloads not started are reported as errors, not tried.
    """
    results = Path(local_dir)
    if isinstance(store, LocalStore) and store.root.resolve() == results.resolve():
        raise BenchmarkError(f"the store and the results folder are the same folder ({results})")
    index_path = results / INDEX_NAME
    index = _load_index(index_path, store.url)
    report = SyncReport(store=store.url, dry_run=dry_run)
    todo: list[tuple[str, str, int]] = []
    new_bundles: list[tuple[str, str, int]] = []
    for obj in store.list():
        report.listed += 1
        if is_reserved(obj.key) and not is_bundle(obj.key):
            report.manifests += 1
            continue
        why = _unsafe(obj.key) if is_bundle(obj.key) else refusal(obj.key)
        if why:
            report.refused.append((obj.key, why))
            continue
        known = index.get(obj.key)
        same = known is not None and known[0] == obj.etag and known[1] == obj.size
        if is_bundle(obj.key):  # never mirrored; fetched once, when it can save GETs
            if same and known[2] != "bundle":
                report.known_bad += 1
            elif not same:
                new_bundles.append((obj.key, obj.etag, obj.size))
            continue
        if same and known[2] != "ok":
            report.known_bad += 1
            continue
        if same and (results / obj.key).is_file():
            report.unchanged += 1
            continue
        # new, or deleted from the local mirror since: fetched again
        (report.changed if known and not same else report.new).append(obj.key)
        todo.append((obj.key, obj.etag, obj.size))
    if dry_run:
        return report
    # a bundle costs one GET: worth it only while there are fewer bundles than GETs they could save
    savable = sum(_is_md5(etag) for _, etag, _ in todo)
    offered = {}
    if bundles and 0 < len(new_bundles) < savable:
        offered = _fetch_bundles(store, results, new_bundles, index, report, workers)
    if todo:
        report.records = _download(store, results, todo, index, report, workers, on_progress, offered, catalog)
    report.mirrored = {entry[3]: key for key, entry in index.items() if entry[2] == "ok" and entry[3]}
    if todo:
        os.sync()  # every file fetched is on disk before the index says so
        _save_index(index_path, store.url, index)
    return report


def _is_md5(etag: str) -> bool:
    """A single-part upload's ETag: the MD5 of the content (a multipart ETag has a '-' and never is)."""
    return len(etag) == 32 and all(c in "0123456789abcdef" for c in etag.lower())


def _fetch_bundles(store, results: Path, bundles, index: dict[str, list], report: SyncReport, workers: int):
    """GET the new bundles in parallel; key -> {md5: bytes} of the records they offer. A bundle that is not
    valid, or names a key no listed object could be mirrored at, is quarantined whole: its keys are fetched."""
    offered: dict[str, dict[str, bytes]] = {}
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        futures = {pool.submit(store.get, key): (key, etag, size) for key, etag, size in bundles}
        for fut in as_completed(futures):
            key, etag, size = futures[fut]
            try:
                data = fut.result()
            except (StoreError, CancelledError) as exc:
                report.errors.append((key, _failed(exc, futures)))
                continue
            report.bytes += len(data)
            try:
                records = read_bundle(data)
                for name in records:
                    if refusal(name):
                        raise InvalidResultError(f"bundle names a key that cannot be a result: {name!r}")
            except InvalidResultError as exc:
                try:
                    _quarantine(results, key, etag, data, str(exc))
                except OSError as err:
                    raise _cannot_write(results, err) from None
                report.quarantined.append((key, str(exc)))
                index[key] = [etag, size, "quarantined", ""]
                continue
            for name, versions in records.items():
                offered.setdefault(name, {}).update(versions)
            index[key] = [etag, size, "bundle", ""]
            report.bundles += 1
    return offered


def _failed(exc: BaseException, futures) -> str:
    """Why a download failed; once the store stops answering, the downloads not started are cancelled, so the
    whole sync waits one store timeout, not one per object."""
    if isinstance(exc, StoreUnreachableError):
        for fut in futures:
            fut.cancel()
    return UNREACHABLE if isinstance(exc, CancelledError) else str(exc)


def _download(store, results: Path, todo, index: dict[str, list], report: SyncReport, workers: int,
              on_progress: Progress | None, offered: dict[str, dict[str, bytes]], catalog):
    """Fetch in a bounded pool (or take the bytes a bundle offers for the listed ETag); record each outcome in the
    index and the report; return the valid records."""
    try:
        results.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise _cannot_write(results, exc) from None
    records: list[Record] = []
    pool = ThreadPoolExecutor(max_workers=max(1, workers))
    try:
        futures = {}
        for key, etag, size in todo:
            data = offered.get(key, {}).get(etag.lower())
            report.from_bundles += data is not None
            futures[pool.submit(_fetch, store, results, key, etag, data, catalog)] = (key, etag, size)
        if on_progress:
            on_progress(0, len(todo))
        for done, fut in enumerate(as_completed(futures), 1):
            key, etag, size = futures[fut]
            if on_progress:
                on_progress(done, len(todo))
            try:
                record, nbytes, reason = fut.result()  # record None and no reason: per-sample outcomes
            except (StoreError, CancelledError) as exc:
                report.errors.append((key, _failed(exc, futures)))
                continue
            except _Unwritable as exc:
                report.refused.append((key, str(exc)))
                index[key] = [etag, size, "refused", ""]
                continue
            report.bytes += nbytes
            if reason:
                report.quarantined.append((key, reason))
                index[key] = [etag, size, "quarantined", ""]
                continue
            index[key] = [etag, size, "ok", record.pair.id if isinstance(record, Result) else ""]
            if record is None:
                report.samples += 1
                continue
            records.append(record)
    finally:  # on Ctrl-C or a full disk, stop at once: the files written so far are whole, the index unchanged
        pool.shutdown(wait=True, cancel_futures=True)
    report.results = sum(isinstance(r, Result) for r in records)
    report.failures = len(records) - report.results
    return records


def read_mirrored(results: str | os.PathLike, keys: list[str], catalog: Naming | None = None) -> list[Record]:
    """The records of these mirrored keys that still read as valid (one deleted or edited locally is skipped: the
    next sync fetches it again)."""
    records = []
    for key in keys:
        try:
            records.append(read_record((Path(results) / key).read_bytes(), catalog))
        except (OSError, InvalidResultError):
            continue
    return records


def _fetch(store, results: Path, key: str, etag: str, data: bytes | None,
           catalog) -> tuple[Record | None, int, str]:
    """Download (unless a bundle gave the bytes), validate, write atomically; a bad object goes to quarantine and
    never replaces a good file. (record, bytes fetched, why quarantined); no record and no reason: a samples file."""
    fetched = 0
    if data is None:
        data = store.get(key)
        fetched = len(data)
    try:
        try:
            record = None
            if is_samples_key(key):
                read_samples(data)  # valid; which result it belongs to is parse's question (by its digest)
            else:
                record = read_record(data, catalog)
        except InvalidResultError as exc:
            _quarantine(results, key, etag, data, str(exc))
            return None, fetched, str(exc)
        atomic_write_bytes(results / key, data, fsync=False)  # one os.sync() before the index records it
    except OSError as exc:
        if exc.errno in KEY_ERRNOS:
            raise _Unwritable(f"cannot be a local file here ({exc.strerror})") from None
        raise _cannot_write(results, exc) from None
    return record, fetched, ""


def _cannot_write(results: Path, exc: OSError) -> BenchmarkError:
    return BenchmarkError(f"cannot write into {results}: {exc.strerror or exc}")


class _Unwritable(Exception):
    """This key cannot be a file in the mirror (it collides with another key's folder, or a name is too long)."""
