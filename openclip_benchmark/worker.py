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
from dataclasses import dataclass, field
from pathlib import Path

from . import evaluate
from .catalog import DatasetSpec, datasets_from_json
from .storage.bundle import write_bundle
from .datasets.download import TransientDownloadError, ensure_dataset, retry_reason
from .core.errors import BenchmarkError
from .core.jsonio import dumps_strict
from .core.manifest import SIMILARITY, Manifest
from .core.pair import Pair
from .core.records import Record, make_failure, make_result, read_record, utc_now
from .core.samples import make_samples
from .storage.store import TRANSIENT_EXIT_CODE, LocalStore, S3Store, TransientStoreError, open_store
from .storage.layout import failure_key, result_key, samples_key
from .similarity.kind import run_similarity

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
        started = utc_now()
        spec = self.specs.get(dataset)  # None: a local dataset (--dataset-root) the catalog lacks
        try:
            folder = ensure_dataset(dataset, self.settings.cache_dir, self.settings.dataset_root,
                                    progress=self.show_progress, spec=spec)
        except Exception as exc:
            return self._fail(pairs, exc, stage="dataset")
        kind, fitting = evaluate.dataset_type(folder), []
        for pair in pairs:  # a pair whose task does not fit the data fails alone, before the pass
            try:
                evaluate.check_task(pair, kind)
                fitting.append(pair)
            except BenchmarkError as exc:
                self._fail([pair], exc, stage="dataset")
        if not fitting:
            return
        label = fitting[0].label() + (f" (+{len(fitting) - 1})" if len(fitting) > 1 else "")
        task = bar.add_task(label, total=spec.size if spec else None)
        try:
            encoded = evaluate.encode_dataset(loaded, folder, self.settings.batch_size, self.settings.num_workers,
                                              on_batch=lambda n: bar.advance(task, n),
                                              tasks=tuple(p.task for p in fitting),
                                              languages=tuple(p.language for p in fitting),
                                              members=evaluate.sample_members(fitting))
        except Exception as exc:
            return self._fail(fitting, exc, stage="dataset")
        finally:
            bar.remove_task(task)  # the "done" lines stay; finished bars would pile up
        for pair in fitting:
            self._evaluate(pair, loaded, encoded, cache, started)

    def _evaluate(self, pair: Pair, loaded, encoded, cache, started: str) -> None:
        start, hits = time.perf_counter(), cache.hits
        try:
            metrics = evaluate.pair_metrics(pair, loaded, encoded, cache)
        except Exception as exc:
            return self._fail([pair], exc, stage="evaluate")
        seconds = encoded.seconds + time.perf_counter() - start  # the shared pass counts for every pair on it
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
