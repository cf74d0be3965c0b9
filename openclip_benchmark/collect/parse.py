"""Result JSONs -> long-form metric CSVs and a wide leaderboard (plus Parquet). Pure: reads files, writes files."""

from __future__ import annotations

import csv
import functools
import hashlib
import io
import json
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Iterable, Iterator

from ..catalog import Catalog
from ..core.errors import BenchmarkError, InvalidResultError
from ..core.jsonio import atomic_write_bytes, atomic_write_json, atomic_write_text
from ..core.pair import Pair, Preprocess
from ..core.records import Record, Result, read_record
from ..core.samples import read_samples, result_digest
from ..planning.pricing import gpu_from_device_name, load_gpus, load_prices
from ..storage.layout import is_record_key, is_reserved, samples_key
from .intervals import CONFIDENCE, RESAMPLES, SEED, Interval, intervals, metric_outcomes
from ..tasks import get_task, table_metrics
from ..tasks import tables as task_tables
from ..tracker import IDENTITY_COLUMNS, Tracker

CLASSIFICATION_METRICS = table_metrics("classification_metrics")
RETRIEVAL_METRICS = table_metrics("retrieval_metrics")
MODEL_COLUMNS = ["params", "image_params", "text_params", "image_gflops", "text_gflops", "image_size"]
RUN_COLUMNS = ("seconds images_per_s num_samples gpu_name device precision batch_size cost_usd shard_id attempt "
               "finished").split()
SOURCE_COLUMN = "source"
# the 95% interval of the row's main metric (`ci_metric`), from the result's per-sample outcomes; empty without them
CI_COLUMNS = ["ci_metric", "ci_low", "ci_high", "ci_method", "n_samples"]
LEADERBOARD_COLLECTIONS = ("imagenet_robustness", "vtab", "retrieval")


@dataclass
class ParseReport:
    files: int = 0
    results: int = 0
    failures: int = 0
    duplicates: int = 0
    invalid: list[tuple[str, str]] = field(default_factory=list)
    rows: dict[str, int] = field(default_factory=dict)
    written: list[Path] = field(default_factory=list)
    missing: int = 0  # tracked as succeeded, but no result file here (run `benchmark sync`)


def iter_result_files(results_dir: str | os.PathLike) -> Iterator[tuple[str, str]]:
    """(path, path relative to the folder) of every JSON except sync state, quarantine, temp files, manifests and bundles."""
    root = os.fspath(results_dir)
    stack = [""]
    while stack:
        rel_dir = stack.pop()
        with os.scandir(os.path.join(root, rel_dir)) as it:
            for item in it:
                if item.name.startswith("."):
                    continue
                rel = f"{rel_dir}/{item.name}" if rel_dir else item.name
                if item.is_dir(follow_symlinks=False):
                    if not is_reserved(rel + "/"):
                        stack.append(rel)
                elif is_record_key(rel) and item.is_file(follow_symlinks=False):
                    yield item.path, rel


def read_results(results_dir: str | os.PathLike, catalog: Catalog,
                 report: ParseReport | None = None) -> list[tuple[Record, str]]:
    """Valid result records with their file (relative), pairs named as the catalog names them; one per pair, the
    most recently finished wins."""
    if not Path(results_dir).is_dir():
        raise BenchmarkError(f"results folder {results_dir} does not exist; run `benchmark sync` first")
    report = report if report is not None else ParseReport()
    best: dict[Pair, tuple[Record, str]] = {}
    for path, rel in iter_result_files(results_dir):
        report.files += 1
        try:
            with open(path, "rb") as fh:
                record = read_record(fh.read(), canonical_pair=catalog.canonical_pair)
        except (InvalidResultError, OSError) as exc:
            report.invalid.append((rel, str(exc)))
            continue
        if not isinstance(record, Result):
            report.failures += 1
            continue
        report.results += 1
        seen = best.get(record.pair)
        if seen is not None:
            report.duplicates += 1
            if (str(seen[0].run.get("finished") or ""), seen[1]) >= (str(record.run.get("finished") or ""), rel):
                continue
        best[record.pair] = (record, rel)
    return sorted(best.values(), key=lambda item: item[0].pair.sort_key())


@functools.lru_cache(maxsize=None)
def preprocess_text(preprocess: Preprocess) -> str:
    return preprocess.canonical()


def _model_info(catalog: Catalog, model: str, pretrained: str, run: dict[str, Any]) -> dict[str, Any]:
    """The catalog's model data; for models it lacks (local-dir:, checkpoints), what the worker counted."""
    spec = catalog.find_model(model, pretrained)
    if spec is not None:
        return {c: getattr(spec, c, None) for c in MODEL_COLUMNS}
    counted = run.get("model_profile") if isinstance(run.get("model_profile"), dict) else {}
    return {c: v if isinstance(v := counted.get(c), (int, float)) and not isinstance(v, bool) else None
            for c in MODEL_COLUMNS}


def _cost(run: dict[str, Any], price_of) -> float | None:
    """Dollars a pair cost: what the run recorded, else its seconds at the GPU's cheapest listed hourly price."""
    if isinstance(run.get("cost_usd"), (int, float)) and not isinstance(run.get("cost_usd"), bool):
        return float(run["cost_usd"])
    seconds, gpu = run.get("seconds"), run.get("gpu_name")
    if not isinstance(seconds, (int, float)) or not isinstance(gpu, str) or not gpu:
        return None
    price = price_of(gpu, bool(run.get("spot")))
    return None if price is None else float(seconds) / 3600.0 * price


def _gpu_price_lookup():
    """(torch device name, spot) -> cheapest hourly USD price of that GPU in the shipped price table, or None."""
    gpus, prices = load_gpus(), load_prices()

    @functools.lru_cache(maxsize=None)
    def price(device_name: str, spot: bool) -> float | None:
        gpu = gpu_from_device_name(device_name, gpus)
        offers = prices.offers_for(gpu, None, spot) if gpu else []
        return offers[0].hourly(spot) if offers else None

    return price


def build_rows(records: Iterable[tuple[Record, str]], catalog: Catalog) -> dict[str, list[dict[str, Any]]]:
    """Long-form rows, one table per task family (each task names its table: multilabel joins classification)."""
    models: dict[tuple[str, str], dict[str, Any]] = {}
    price_of = _gpu_price_lookup()
    out: dict[str, list[dict[str, Any]]] = {name: [] for name in task_tables()}
    for record, rel in records:
        p, run = record.pair, record.run
        info = models.get((p.model, p.pretrained))
        if info is None or not any(v is not None for v in info.values()):
            info = models[(p.model, p.pretrained)] = _model_info(catalog, p.model, p.pretrained, run)
        row: dict[str, Any] = dict(record.metrics)  # first, so no metric name can overwrite a fixed column
        row.update(
            model=p.model,
            pretrained=p.pretrained,
            dataset=p.dataset,
            language=p.language,
            task=p.task,
            preprocess=preprocess_text(p.preprocess),
        )
        row.update(info)
        if p.preprocess.image_size:
            row["image_size"] = p.preprocess.image_size
        for col in RUN_COLUMNS:
            value = run.get(col)
            row[col] = value if isinstance(value, (int, float, str)) and not isinstance(value, bool) else None
        row["cost_usd"] = _cost(run, price_of)
        row[SOURCE_COLUMN] = rel
        out[get_task(p.task).table].append(row)
    return out


def columns_for(name: str, rows: list[dict[str, Any]]) -> list[str]:
    """Stable order: identity, the usual metrics, any other metric (sorted), model data, run data, source."""
    known = table_metrics(name)
    fixed = set(IDENTITY_COLUMNS + known + CI_COLUMNS + MODEL_COLUMNS + RUN_COLUMNS + [SOURCE_COLUMN])
    extra = sorted({k for row in rows for k in row} - fixed)
    return IDENTITY_COLUMNS + known + CI_COLUMNS + extra + MODEL_COLUMNS + RUN_COLUMNS + [SOURCE_COLUMN]


def load_samples(results_dir: str | os.PathLike, rel: str) -> dict[str, Any] | None:
    """The per-sample outcomes beside the result file `rel`, if they belong to exactly its bytes; else None."""
    path = Path(results_dir) / rel
    try:
        digest, arrays = read_samples((Path(results_dir) / samples_key(rel)).read_bytes())
        return arrays if digest == result_digest(path.read_bytes()) else None
    except (OSError, InvalidResultError):
        return None


# intervals by the bytes they came from, in the metrics folder: a bootstrap (about 0.7 s for VOC2007's mAP) runs
# once per result, not at every parse
INTERVAL_CACHE = ".intervals-cache.json"
INTERVAL_CACHE_SCHEMA = "openclip-benchmark/intervals-cache/1"
INTERVAL_SETTINGS = {"confidence": CONFIDENCE, "resamples": RESAMPLES, "seed": SEED}


def read_interval_cache(out_dir: Path) -> dict[str, list]:
    """The cached intervals, or none when the file is missing, damaged or made with other settings."""
    try:
        doc = json.loads((out_dir / INTERVAL_CACHE).read_bytes())
    except (OSError, ValueError):
        return {}
    ok = isinstance(doc, dict) and doc.get("schema") == INTERVAL_CACHE_SCHEMA and doc.get("settings") == INTERVAL_SETTINGS
    return doc["entries"] if ok and isinstance(doc.get("entries"), dict) else {}


def _interval_key(results_dir: str | os.PathLike, rel: str, metric: str) -> str | None:
    """The result's bytes, its samples' bytes and the metric; None when there are no samples."""
    try:
        result = (Path(results_dir) / rel).read_bytes()
        samples = (Path(results_dir) / samples_key(rel)).read_bytes()
    except OSError:
        return None
    return f"{hashlib.sha256(result).hexdigest()}:{hashlib.sha256(samples).hexdigest()}:{metric}"


def add_intervals(results_dir: str | os.PathLike, rows: list[dict[str, Any]], catalog: Catalog,
                  cache: dict[str, list] | None = None) -> dict[str, list]:
    """Fill each row's CI columns for its main metric from its result's samples (left empty where there are none);
    returns the cache entries of these rows (taken from `cache` where it has them)."""
    cache, used = cache or {}, {}
    todo: list[tuple[dict[str, Any], str]] = []
    found = []
    for row in rows:
        metric = catalog.main_metric(row["dataset"], row["task"])
        row.update(dict.fromkeys(CI_COLUMNS), ci_metric=metric)
        key = _interval_key(results_dir, row[SOURCE_COLUMN], metric)
        if key is None:
            continue
        cached = cache.get(key)
        if isinstance(cached, list) and len(cached) == 4:
            used[key] = cached
            row.update(zip(("ci_low", "ci_high", "ci_method", "n_samples"), cached))
            continue
        samples = load_samples(results_dir, row[SOURCE_COLUMN])
        if samples is not None:
            todo.append((row, key))
            found.append(metric_outcomes(samples, metric))
    for (row, key), interval in zip(todo, intervals(found)):
        if isinstance(interval, Interval):
            used[key] = [interval.low, interval.high, interval.method, interval.n]
            row.update(zip(("ci_low", "ci_high", "ci_method", "n_samples"), used[key]))
    return used


def _collections(catalog: Catalog) -> dict[str, list[str]]:
    """The catalog collections the leaderboard averages over (open_clip's table: dist. shifts, VTAB, retrieval)."""
    members = catalog.collections()
    return {name: members[name] for name in LEADERBOARD_COLLECTIONS if name in members}


def dataset_column(dataset: str, language: str, task: str | None = None) -> str:
    """A leaderboard column: the dataset, labelled by a task that shares it with another (`cifar10 (probe)`)."""
    column = get_task(task).column(dataset) if task else dataset
    return column if language == "en" else f"{column}/{language}"


def build_leaderboard(rows: Iterable[dict[str, Any]], catalog: Catalog) -> tuple[list[dict[str, Any]], list[str]]:
    """One row per (model, pretrained, preprocess); one column per dataset (its main metric); averages.

    `average` is the mean over every dataset the model has a result for (`datasets` counts them);
    `avg_<collection>` is the mean over a catalog collection, given only when the model has every dataset
    of that collection that appears anywhere in these results, so averages compare like with like.
    A task that shares its datasets with another (linear probe, CuPL) has columns of its own (`cifar10 (probe)`)
    and its own mean (`avg_probe`), kept out of the others.
    Rows rank by coverage first, then average: a model with one easy dataset never tops a full sweep.
    """
    boards: dict[tuple, dict[str, Any]] = {}
    dataset_cols: dict[str, str] = {}  # column -> dataset
    labelled: dict[str, str] = {}  # column -> the label of its task
    for row in rows:
        col = dataset_column(row["dataset"], row["language"], row["task"])
        value = row.get(catalog.main_metric(row["dataset"], row["task"]))
        if value is None:
            continue
        dataset_cols[col] = row["dataset"]
        if get_task(row["task"]).label:
            labelled[col] = get_task(row["task"]).label
        key = (row["model"], row["pretrained"], row["preprocess"])
        board = boards.get(key)
        if board is None:
            board = boards[key] = {
                "model": row["model"],
                "pretrained": row["pretrained"],
                "preprocess": row["preprocess"],
                **{c: row.get(c) for c in ("params", "image_gflops", "text_gflops")},
                "seconds": None,
                "cost_usd": None,
                "scores": {},
            }
        board["scores"][col] = value
        if isinstance(row.get("seconds"), (int, float)):
            board["seconds"] = (board["seconds"] or 0.0) + row["seconds"]
        if isinstance(row.get("cost_usd"), (int, float)):
            board["cost_usd"] = (board["cost_usd"] or 0.0) + row["cost_usd"]
    collections = {
        coll: cols
        for coll, members in _collections(catalog).items()
        if (cols := [c for c, d in dataset_cols.items() if d in members and c not in labelled])
    }
    labels = sorted(set(labelled.values()))
    ordered = sorted(dataset_cols)
    out = []
    for board in boards.values():
        scores = board.pop("scores")
        own = [v for c, v in scores.items() if c not in labelled]
        board["datasets"] = len(own)
        board["average"] = sum(own) / len(own) if own else None
        for coll, cols in collections.items():
            have = [scores[c] for c in cols if c in scores]
            board[f"avg_{coll}"] = sum(have) / len(have) if len(have) == len(cols) else None
        for label in labels:
            have = [v for c, v in scores.items() if labelled.get(c) == label]
            board[f"avg_{label}"] = sum(have) / len(have) if have else None
        board.update({c: scores.get(c) for c in ordered})
        out.append(board)
    out.sort(key=lambda b: (-b["datasets"], -(b["average"] or 0.0), b["model"], b["pretrained"], b["preprocess"]))
    head = ["model", "pretrained", "preprocess", "params", "image_gflops", "text_gflops", "datasets", "average"]
    columns = head + [f"avg_{c}" for c in [*collections, *labels]] + ["seconds", "cost_usd"] + ordered
    return out, columns


FIRST_DATASET = "imagenet1k"  # the seed's table puts ImageNet first
SWEEP_HEAD = ["model", "pretrained", "dataset", "language", "preprocess", "metric"]


INTERVAL_COLUMNS = ["model", "pretrained", "preprocess", "dataset", "metric", "value", "ci_low", "ci_high",
                    "ci_method", "n_samples"]


def build_leaderboard_intervals(rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per leaderboard cell: its value and 95% interval (`dataset` is the leaderboard's column name)."""
    out = [
        {"model": row["model"], "pretrained": row["pretrained"], "preprocess": row["preprocess"],
         "dataset": dataset_column(row["dataset"], row["language"], row["task"]), "metric": row["ci_metric"],
         "value": row.get(row["ci_metric"]), **{c: row[c] for c in ("ci_low", "ci_high", "ci_method", "n_samples")}}
        for row in rows if row.get(row["ci_metric"]) is not None
    ]
    return sorted(out, key=lambda r: (r["model"], r["pretrained"], r["preprocess"], r["dataset"]))


def build_resolution_sweep(rows: Iterable[dict[str, Any]], catalog: Catalog) -> tuple[list[dict[str, Any]], list[str]]:
    """Main metric by image size, one row per (model, pretrained, dataset, language, other preprocessing) evaluated
    at two or more sizes (RangeAugment's table: 160, 192, 224, 256, 288); the native size counts as its own."""
    groups: dict[tuple, dict[int, Any]] = {}
    for row in rows:
        size = row.get("image_size")
        if not isinstance(size, int):
            continue  # a local-dir model at its native size: no number to put it under
        other = replace(Preprocess.parse(row["preprocess"]), image_size=None).canonical()
        metric = catalog.main_metric(row["dataset"], row["task"])
        key = (row["model"], row["pretrained"], row["dataset"], row["language"], other, metric)
        groups.setdefault(key, {})[size] = row.get(metric)
    kept = {key: by_size for key, by_size in groups.items() if len(by_size) >= 2}
    sizes = sorted({size for by_size in kept.values() for size in by_size})
    out = [
        {**dict(zip(SWEEP_HEAD, key)), **{str(size): by_size.get(size) for size in sizes}}
        for key, by_size in sorted(kept.items(), key=lambda kv: (kv[0][0], kv[0][1], kv[0][2] != FIRST_DATASET, kv[0][2:]))
    ]
    return out, SWEEP_HEAD + [str(size) for size in sizes]


def _csv_text(rows: list[dict[str, Any]], columns: list[str]) -> str:
    buf = io.StringIO(newline="")
    writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n", extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


TEXT_COLUMNS = IDENTITY_COLUMNS + ["gpu_name", "device", "precision", "shard_id", "finished", SOURCE_COLUMN,
                                   "ci_metric", "ci_method", "dataset", "metric"]


def _parquet_bytes(csv_text: str, columns: list[str]) -> bytes:
    """The CSV just rendered, typed by pyarrow's C++ reader: no per-cell Python and no pandas import."""
    import pyarrow as pa
    import pyarrow.csv as pa_csv
    import pyarrow.parquet as pq

    convert = pa_csv.ConvertOptions(
        null_values=[""],
        strings_can_be_null=True,
        column_types={c: pa.string() for c in columns if c in TEXT_COLUMNS},
    )
    table = pa_csv.read_csv(pa.BufferReader(csv_text.encode("utf-8")), convert_options=convert)
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    return sink.getvalue().to_pybytes()


def write_table(out_dir: Path, name: str, rows: list[dict[str, Any]], columns: list[str]) -> list[Path]:
    csv_path, parquet_path = out_dir / f"{name}.csv", out_dir / f"{name}.parquet"
    text = _csv_text(rows, columns)
    atomic_write_text(csv_path, text)
    atomic_write_bytes(parquet_path, _parquet_bytes(text, columns))
    return [csv_path, parquet_path]


def outputs_stale(results_dir: str | os.PathLike, out_dir: str | os.PathLike) -> bool:
    """True when the leaderboard is missing or any result file is newer than it."""
    board = Path(out_dir) / "leaderboard.csv"
    if not board.is_file():
        return True
    if not Path(results_dir).is_dir():
        return False
    built = board.stat().st_mtime_ns
    return any(os.stat(path).st_mtime_ns > built for path, _ in iter_result_files(results_dir))


def parse_results(
    results_dir: str | os.PathLike, out_dir: str | os.PathLike, tracker: str | os.PathLike | None = None, *,
    catalog: Catalog,
) -> ParseReport:
    """Read every result by content and write the metric CSVs (with the main metric's interval), the leaderboard,
    its cells' intervals and their Parquet twins."""
    report = ParseReport()
    records = read_results(results_dir, catalog, report)
    tables = build_rows(records, catalog)
    out_dir = Path(out_dir)
    cache, used = read_interval_cache(out_dir), {}
    for rows in tables.values():
        used.update(add_intervals(results_dir, rows, catalog, cache))
    if used != cache:  # only this parse's entries: results that are gone take theirs with them
        out_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_json(out_dir / INTERVAL_CACHE, {"schema": INTERVAL_CACHE_SCHEMA, "settings": INTERVAL_SETTINGS,
                                                     "entries": used})
    for name, rows in tables.items():
        rows_cols = columns_for(name, rows)
        report.written += write_table(out_dir, name, rows, rows_cols)
        report.rows[name] = len(rows)
    board, board_cols = build_leaderboard((row for rows in tables.values() for row in rows), catalog)
    report.written += write_table(out_dir, "leaderboard", board, board_cols)
    report.rows["leaderboard"] = len(board)
    cells = build_leaderboard_intervals(row for rows in tables.values() for row in rows)
    report.written += write_table(out_dir, "leaderboard_intervals", cells, INTERVAL_COLUMNS)
    report.rows["leaderboard_intervals"] = len(cells)
    sweep, sweep_cols = build_resolution_sweep((row for rows in tables.values() for row in rows), catalog)
    if sweep:  # only where some model was evaluated at several image sizes
        report.written += write_table(out_dir, "resolution_sweep", sweep, sweep_cols)
        report.rows["resolution_sweep"] = len(sweep)
    else:  # a table of an earlier parse would describe results that are gone
        for stale in (out_dir / "resolution_sweep.csv", out_dir / "resolution_sweep.parquet"):
            stale.unlink(missing_ok=True)
    if tracker is not None and Path(tracker).exists():
        have = {record.pair for record, _ in records}
        report.missing = sum(e.pair not in have for e in Tracker.load(tracker).select(["succeeded"]))
    return report
