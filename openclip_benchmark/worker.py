"""The worker: runs one job's manifest, by its kind. A similarity run goes to `similarity.kind`; an evaluation
shard runs here: each model is loaded once, each dataset read once per model, each zero-shot classifier built once;
pairs whose result exists are skipped, so a re-run after a crash or preemption only runs what is missing.

A pair that raises gets a failure record beside where its result would be, and the shard moves on. A store that
cannot be reached ends the shard with the transient exit code, so the job can be retried; nothing finished is lost,
because every result is written (atomically) as soon as it exists.
"""

from __future__ import annotations

import gc
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import SimpleNamespace

from . import evaluate
from .catalog import DatasetSpec, datasets_from_json
from .storage.bundle import write_bundle
from .datasets.download import TransientDownloadError, ensure_dataset, retry_reason
from .core.errors import BenchmarkError
from .core.jsonio import dumps_strict
from .core.manifest import SIMILARITY, Manifest
from .core.pair import Pair
from .core.clock import utc_now
from .core.records import Record, make_failure, make_result, read_record
from .core.samples import make_samples
from .storage.store import TRANSIENT_EXIT_CODE, LocalStore, S3Store, TransientStoreError, open_store
from .storage.features import get_features, put_features
from .storage.layout import failure_key, features_key, result_key, samples_key
from .similarity.kind import run_similarity
from .tasks import get_task

EXIT_PAIRS_FAILED = 3


@dataclass
class ShardReport:
    shard_id: str
    succeeded: list[Pair] = field(default_factory=list)
    skipped: list[Pair] = field(default_factory=list)
    failed: list[tuple[Pair, str]] = field(default_factory=list)
    records: list[Record] = field(default_factory=list)
    transient_error: str = ""  # set when the shard stopped, or a pair failed, for a reason a retry may fix
    bundle_key: str = ""  # the shard bundle this run wrote, if any

    @property
    def exit_code(self) -> int:
        if self.transient_error:
            return TRANSIENT_EXIT_CODE
        return EXIT_PAIRS_FAILED if self.failed else 0

    def outcome_records(self, store) -> list[Record]:
        """This run's records plus the stored results of the pairs it skipped, so a tracker learns both."""
        records = list(self.records)
        for pair in self.skipped:
            try:
                records.append(read_record(store.get(result_key(pair))))
            except BenchmarkError:
                pass  # unreadable: the tracker keeps its state and `benchmark sync` reports the object
        return records


def load_manifest(url: str, endpoint_url: str | None = None) -> Manifest:
    """A manifest from a local path or `s3://bucket/key` (R2 through the endpoint)."""
    if url.startswith("s3://"):
        bucket, _, key = url[len("s3://") :].partition("/")
        if not bucket or not key:
            raise BenchmarkError(f"manifest URL {url!r} must be s3://bucket/key")
        data = open_store(f"s3://{bucket}", endpoint_url).get(key)
    else:
        try:
            data = Path(url).expanduser().read_bytes()
        except OSError as exc:
            raise BenchmarkError(f"cannot read manifest {url}: {exc.strerror or exc}") from None
    return Manifest.from_json(data)


def dataset_specs(manifest: Manifest) -> dict[str, DatasetSpec]:
    """The manifest's dataset entries, validated as a mapping file's are (the catalog's one reader)."""
    return datasets_from_json(manifest.datasets, "manifest")


def run_shard(manifest: Manifest, store: LocalStore | S3Store | None = None, progress: bool = True,
              out: Path | None = None) -> ShardReport:
    """Run a manifest by its kind. `out`: where a similarity run on this machine writes its files (without it, a
    similarity manifest runs as this node's share, into the store)."""
    if store is None and manifest.store:
        store = open_store(manifest.store)
    if manifest.kind == SIMILARITY:
        run_similarity(manifest, store, out)
        return ShardReport(manifest.shard_id, succeeded=list(manifest.pairs))
    specs = dataset_specs(manifest)
    report = ShardReport(manifest.shard_id)
    written: dict[str, bytes] = {}
    try:
        todo = []
        for pair in dict.fromkeys(manifest.pairs):
            (report.skipped if store.exists(result_key(pair)) else todo).append(pair)
        _say(f"shard {manifest.shard_id}: {len(todo)} to run, {len(report.skipped)} already done")
        if todo:
            _ShardRun(manifest, specs, store, report, progress, written).run(todo)
    except TransientStoreError as exc:
        report.transient_error = str(exc)
        _say(f"store unreachable, stopping the shard: {exc}")
    if written:
        _write_bundle(store, report, written)
    return report


def _write_bundle(store, report: ShardReport, written: dict[str, bytes]) -> None:
    """Best effort: the results are in the store already; a bundle only saves the sync its GETs."""
    try:
        report.bundle_key = write_bundle(store, report.shard_id, written)
    except Exception as exc:  # whatever went wrong, the shard's outcome stays as it is
        _say(f"could not write the shard bundle (sync will fetch each result instead): {type(exc).__name__}: {exc}")


class _ShardRun:
    """The state of one shard's run: the store, the report, the open progress bar and the classifier caches."""

    def __init__(self, manifest: Manifest, specs: dict[str, DatasetSpec], store, report: ShardReport, progress: bool,
                 written: dict[str, bytes]):
        self.manifest, self.specs, self.store, self.report, self.show_progress = manifest, specs, store, report, progress
        self.written = written  # store key -> the exact bytes put there, for the shard bundle
        self.settings = manifest.settings
        self.caches: dict[tuple[str, str], object] = {}  # text tower -> ClassifierCache
        self.versions = evaluate.versions()
        self.profiles: dict[tuple, dict] = {}  # (model, pretrained, preprocess) -> params and GFLOPs of that model

    def run(self, todo: list[Pair]) -> None:
        device = evaluate.resolve_device(self.settings.device)
        precision = evaluate.resolve_precision(self.settings.precision, device)
        groups: dict[tuple, list[Pair]] = {}
        for pair in todo:
            groups.setdefault((pair.model, pair.pretrained, pair.preprocess), []).append(pair)
        # the image-size variants of a model side by side: its classifier cache is used, then dropped
        towers = list(dict.fromkeys(key[:2] for key in groups))
        keys = sorted(groups, key=lambda key: towers.index(key[:2]))
        with _progress(self.show_progress) as bar:
            for i, (model, pretrained, preprocess) in enumerate(keys):
                pairs = groups[(model, pretrained, preprocess)]
                _say(f"loading {_model_label(pairs[0])} on {device} ({precision})")
                try:
                    loaded = evaluate.load_model(model, pretrained, preprocess, device, precision, self._model_cache())
                except Exception as exc:  # a model that cannot load fails its pairs, not the shard
                    self._fail(pairs, _transient_download(exc, pairs[0]), stage="load_model")
                    continue
                cache = self.caches.setdefault(loaded.text_key, evaluate.ClassifierCache())
                by_dataset: dict[str, list[Pair]] = {}
                for pair in pairs:
                    by_dataset.setdefault(pair.dataset, []).append(pair)
                for dataset, dataset_pairs in by_dataset.items():
                    self._run_dataset(loaded, cache, dataset, dataset_pairs, bar)
                del loaded
                if not any(k[:2] == (model, pretrained) for k in keys[i + 1 :]):
                    self.caches.pop((model, pretrained), None)
                _free_memory(device)

    def _run_dataset(self, loaded, cache, dataset: str, pairs: list[Pair], bar) -> None:
        """Each split the pairs read is encoded once (the test split of zero-shot and linear-probe pairs alike), or
        taken from the store's feature cache for the pairs whose task keeps one."""
        started, pairs = utc_now(), list(pairs)
        spec = self.specs.get(dataset)  # None: a local dataset (--dataset-root) the catalog lacks
        scored = spec.split if spec else evaluate.SPLIT
        needs = {pair: (scored, *get_task(pair.task).fit_splits(spec)) for pair in pairs}
        splits: dict[str, evaluate.EncodedDataset] = {}
        cached = self._cached_features(loaded, pairs, spec, needs)
        live = list(dict.fromkeys(s for pair in pairs for s in needs[pair] if (pair, s) not in cached))
        if live:
            try:
                folder = ensure_dataset(dataset, self.settings.cache_dir, self.settings.dataset_root,
                                        progress=self.show_progress, spec=spec, splits=tuple(live))
            except Exception as exc:
                return self._fail(pairs, exc, stage="dataset")
            kind = evaluate.dataset_type(folder)
            for pair in list(pairs):  # a pair whose task does not fit the data fails alone, before the passes
                try:
                    evaluate.check_task(pair, kind)
                except BenchmarkError as exc:
                    self._fail([pair], exc, stage="dataset")
                    pairs.remove(pair)
            for split in live:
                readers = [pair for pair in pairs if split in needs[pair]]
                if not readers:
                    continue
                try:
                    splits[split] = self._encode(loaded, folder, split, split != scored, spec, readers, bar)
                except Exception as exc:
                    self._fail(readers, exc, stage="dataset")
                    pairs = [pair for pair in pairs if pair not in readers]
                    continue
                self._keep_features(loaded, readers, split, splits[split], cached)
        for pair in pairs:
            encoded = splits[scored] if scored in splits else cached[(pair, scored)]
            fit = {s: splits[s] if s in splits else cached[(pair, s)] for s in needs[pair][1:]}
            from_store = sorted(s for s in needs[pair] if s not in splits)
            self._evaluate(pair, loaded, replace(encoded, spec=spec, fit=fit), cache, started, from_store)

    def _encode(self, loaded, folder, split: str, named: bool, spec, readers: list[Pair], bar):
        label = readers[0].label() + (f" (+{len(readers) - 1})" if len(readers) > 1 else "")
        label += f" [{split}]" if named else ""
        task = bar.add_task(label, total=spec.splits.get(split) if spec else None)
        try:
            return evaluate.encode_dataset(loaded, folder, self.settings.batch_size, self.settings.num_workers,
                                           on_batch=lambda n: bar.advance(task, n), split=split,
                                           tasks=tuple(p.task for p in readers),
                                           languages=tuple(p.language for p in readers),
                                           members=evaluate.sample_members(readers))
        finally:
            bar.remove_task(task)  # the "done" lines stay; finished bars would pile up

    def _features_key(self, loaded, pair: Pair, split: str) -> str:
        encoding = {"precision": loaded.precision, "device": loaded.device.split(":")[0],
                    "batch_size": self.settings.batch_size, "num_workers": self.settings.num_workers}
        return features_key(pair, split, encoding)

    def _cached_features(self, loaded, pairs: list[Pair], spec, needs) -> dict[tuple[Pair, str], object]:
        """(pair, split) -> the split's encoding from the store, for the pairs whose task keeps its features."""
        out, read = {}, {}
        for pair in pairs:
            task = get_task(pair.task)
            if not task.cache_features:
                continue
            for split in needs[pair]:
                key = self._features_key(loaded, pair, split)
                if key not in read:
                    found = get_features(self.store, key)
                    read[key] = None if found is None else evaluate.EncodedDataset(
                        task.dataset_type, image_features=[found[0]], targets=[found[1]], num_samples=len(found[1]),
                        split=split)
                if read[key] is not None:
                    out[(pair, split)] = read[key]
        return out

    def _keep_features(self, loaded, readers: list[Pair], split: str, encoded, cached) -> None:
        """Put a split's features in the store for the pairs whose task keeps them and found none. Best effort: a
        store that refuses costs the next run an encoding pass, never this pair."""
        keys = {self._features_key(loaded, p, split) for p in readers
                if get_task(p.task).cache_features and (p, split) not in cached}
        if not keys:
            return
        features, targets = encoded.features()
        for key in sorted(keys):
            try:
                put_features(self.store, key, features, targets)
            except TransientStoreError:
                raise
            except Exception as exc:  # noqa: BLE001
                _say(f"could not cache the features of {split} ({type(exc).__name__}: {exc})")

    def _evaluate(self, pair: Pair, loaded, encoded, cache, started: str, from_store: list[str]) -> None:
        start, hits = time.perf_counter(), cache.hits
        try:
            metrics = evaluate.pair_metrics(pair, loaded, encoded, cache)
        except Exception as exc:
            return self._fail([pair], exc, stage="evaluate")
        fitting = time.perf_counter() - start
        passes = encoded.seconds + sum(e.seconds for e in encoded.fit.values())
        seconds = passes + fitting  # the shared passes count for every pair on them
        run = {
            "started": started,
            "finished": utc_now(),
            "seconds": round(seconds, 3),
            "images_per_s": round(encoded.images_per_s, 2),
            "num_samples": encoded.num_samples,
            "device": loaded.device,
            "gpu_name": _gpu_name(loaded.device),
            "precision": loaded.precision,
            "batch_size": self.settings.batch_size,
            "num_workers": self.settings.num_workers,
            "classifier_cached": cache.hits > hits,  # only tasks with a classifier touch the cache
            "shard_id": self.manifest.shard_id,
            "attempt": self._attempt(pair),
            "versions": self.versions,
            "model_profile": self._profile(pair, loaded),
        }
        if encoded.fit:  # what the plan's fitting term is calibrated from (planning.calibration.calibrate), as it ran
            sizes = SimpleNamespace(splits={s: e.num_samples for s, e in encoded.fit.items()},
                                    val_proportion=getattr(encoded.spec, "val_proportion", None))
            run.update(fit_samples=sum(sizes.splits.values()), fit_seconds=round(fitting, 3),
                       fit_steps=get_task(pair.task).fit_steps(sizes), features_cached=from_store)
        data = dumps_strict(make_result(pair, metrics, run)).encode("utf-8")
        samples = self._samples(pair, data, loaded, encoded, cache)
        if samples is not None:  # first: a result in the store always has its samples beside it, if any
            self._put(samples_key(result_key(pair)), samples, record=False)
        self._put(result_key(pair), data)
        self.report.succeeded.append(pair)
        shown = ", ".join(f"{k}={v:.4f}" for k, v in metrics.items() if isinstance(v, float) and v == v)
        _say(f"done {pair.label()}: {shown} ({seconds:.1f} s, {encoded.images_per_s:.0f} img/s)")

    def _fail(self, pairs: list[Pair], exc: BaseException, stage: str) -> None:
        message = f"{type(exc).__name__}: {exc}"
        if getattr(exc, "exit_code", None) == TRANSIENT_EXIT_CODE:  # e.g. a download that gave up: retry later
            self.report.transient_error = message
        for pair in pairs:
            data = dumps_strict(make_failure(pair, exc, self._attempt(pair), shard_id=self.manifest.shard_id,
                                             stage=stage)).encode("utf-8")
            self._put(failure_key(pair), data)
            self.report.failed.append((pair, message))
            _say(f"FAILED {pair.label()} ({stage}): {message}")

    def _samples(self, pair: Pair, result: bytes, loaded, encoded, cache) -> bytes | None:
        """The samples document of the result `result`. Best effort: a pair whose per-sample outcomes cannot be taken
        keeps its metrics (and gets no intervals)."""
        try:
            outcomes = evaluate.pair_outcomes(pair, loaded, encoded, cache)
            return make_samples(result, outcomes) if outcomes is not None else None
        except Exception as exc:  # noqa: BLE001 - the result is worth more than its samples
            _say(f"no per-sample outcomes for {pair.label()}: {type(exc).__name__}: {exc}")
            return None

    def _put(self, key: str, data: bytes, record: bool = True) -> None:
        self.store.put(key, data)
        self.written[key] = data
        if record:
            self.report.records.append(read_record(data))  # as readers will see it: NaN is null

    def _attempt(self, pair: Pair) -> int:
        """One more than the attempt of an earlier failure record of this pair, if there is one."""
        try:
            if self.store.exists(failure_key(pair)):
                return read_record(self.store.get(failure_key(pair))).attempt + 1
        except TransientStoreError:
            raise
        except BenchmarkError:  # an unreadable old record does not stop a new attempt
            pass
        return 1

    def _profile(self, pair: Pair, loaded) -> dict | None:
        """Counted once per loaded model: what parse shows for models the catalog lacks (local-dir:, checkpoints)."""
        key = (pair.model, pair.pretrained, pair.preprocess)
        if key not in self.profiles:
            try:
                self.profiles[key] = evaluate.model_profile(loaded)
            except Exception:  # noqa: BLE001 - a model the counter cannot trace still gets its metrics
                self.profiles[key] = None
        return self.profiles[key]

    def _model_cache(self) -> str:
        return str(Path(self.settings.cache_dir).expanduser() / "models")


def _transient_download(exc: Exception, pair: Pair) -> Exception:
    """A weights download that the Hub or the network failed (a 429, a 5xx, no connection) as the transient error
    it is, so the shard ends with the transient code and its failure records say so; anything else as it is."""
    why = retry_reason(exc)
    if why is None:
        return exc
    transient = TransientDownloadError(f"the weights of {_model_label(pair)} could not be downloaded ({why}); "
                                       "a retry may succeed")
    transient.__cause__ = exc  # the failure record's traceback shows what the Hub or the network said
    return transient


def _progress(show: bool):
    """A rich progress bar per dataset pass, with images/s; silent when `show` is false."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, ProgressColumn, TextColumn, TimeElapsedColumn
    from rich.text import Text

    class ImagesPerSecond(ProgressColumn):
        def render(self, task):
            return Text(f"{task.speed or 0:.0f} img/s")

    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), ImagesPerSecond(),
                    TimeElapsedColumn(), console=Console(stderr=True), disable=not show)


def _model_label(pair: Pair) -> str:
    text = f"{pair.model}:{pair.pretrained}" if pair.pretrained else pair.model
    return text + (f" [{pair.preprocess.canonical()}]" if pair.preprocess else "")


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _gpu_name(device: str) -> str:
    import torch

    return torch.cuda.get_device_name(torch.device(device)) if device.startswith("cuda") else ""


def _free_memory(device: str) -> None:
    import torch

    gc.collect()
    if device.startswith("cuda"):
        torch.cuda.empty_cache()
