"""Result JSONs -> long-form metric CSVs and a wide leaderboard (plus Parquet). Pure: reads files, writes files.

Each table is handed on in memory as well (`ParseReport.tables`), its cells typed as declared once (`TEXT_COLUMNS`,
`INT_COLUMNS`), so a report made in the same command never reads back what was just written; `read_table` gives the
same rows from a CSV."""

from __future__ import annotations

import csv
import functools
import hashlib
import io
import math
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Iterable, Iterator

from ..catalog import Catalog
from ..core.errors import BenchmarkError, InvalidResultError
from ..core.jsonio import atomic_write_bytes, atomic_write_json, atomic_write_text, read_json
from ..core.pair import Pair, Preprocess
from ..core.records import MAX_RECORD_BYTES, Record, Result, Run, read_record
from ..core.samples import read_samples, result_digest
from ..planning.plan import ModelIndex, pair_work
from ..planning.pricing import gpu_from_device_name, load_gpus, load_prices
from ..storage.layout import is_record_key, is_reserved, samples_key
from .datacomp import AVERAGE_COLUMN, averages as datacomp_averages
from .multilingual import build_multilingual_table
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


@dataclass(frozen=True)
class ResultFile:
    record: Result
    rel: str  # its path relative to the results folder
    digest: str  # SHA-256 of its bytes: what its samples file and its cached intervals are checked against


@dataclass(frozen=True)
class Table:
    """One table as parse writes it: its columns in order and its rows, each cell of its declared type."""

    columns: list[str]
    rows: list[dict[str, Any]]


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
    tables: dict[str, Table] = field(default_factory=dict)  # name -> what was written, for a report in the same command
    found: list[ResultFile] = field(default_factory=list)  # the results the tables were made of


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


def read_result_files(results_dir: str | os.PathLike, catalog: Catalog,
                      report: ParseReport | None = None) -> list[ResultFile]:
    """Valid results, each file read once, pairs named as the catalog names them; one per pair, the most recently
    finished wins."""
    if not Path(results_dir).is_dir():
        raise BenchmarkError(f"results folder {results_dir} does not exist; run `benchmark sync` first")
    report = report if report is not None else ParseReport()
    best: dict[Pair, ResultFile] = {}
    for path, rel in iter_result_files(results_dir):
        report.files += 1
        try:
            with open(path, "rb") as fh:
                data = fh.read(MAX_RECORD_BYTES + 1)
            record = read_record(data, catalog)
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
            if (_finished(seen.record), seen.rel) >= (_finished(record), rel):
                continue
        best[record.pair] = ResultFile(record, rel, result_digest(data))
    return sorted(best.values(), key=lambda found: found.record.pair.sort_key())


def read_results(results_dir: str | os.PathLike, catalog: Catalog,
                 report: ParseReport | None = None) -> list[tuple[Record, str]]:
    """`read_result_files` as (record, file relative to the folder)."""
    return [(found.record, found.rel) for found in read_result_files(results_dir, catalog, report)]


@functools.lru_cache(maxsize=None)
def preprocess_text(preprocess: Preprocess) -> str:
    return preprocess.canonical()


def _model_info(catalog: Catalog, index: ModelIndex, pair: Pair, run: Run) -> dict[str, Any]:
    """The model's size and GFLOPs at the image size the pair ran at: the catalog's, the image tower's scaled to that
    size as the planner scales them; for models it lacks (local-dir:, checkpoints), what the worker counted on the
    model as it was loaded for this pair."""
    spec = catalog.find_model(pair.model, pair.pretrained)
    if spec is None:
        return {c: getattr(run.model_profile, c, None) for c in MODEL_COLUMNS}
    info = {c: getattr(spec, c, None) for c in MODEL_COLUMNS}
    if spec.image_gflops is not None:
        info["image_gflops"] = pair_work(pair, index.work(pair.model, pair.pretrained), catalog.datasets).image_gflops
    info["image_size"] = pair.preprocess.image_size or spec.image_size
    return info


def _finished(record: Result) -> str:
    return record.run.finished or ""


def _cost(run: Run, price_of) -> float | None:
    """Dollars a pair cost: what the run recorded, else its seconds at the GPU's cheapest listed hourly price."""
    if run.cost_usd is not None:
        return run.cost_usd
    if run.seconds is None or not run.gpu_name:
        return None
    price = price_of(run.gpu_name, bool(run.spot))
    return None if price is None else run.seconds / 3600.0 * price


def _gpu_price_lookup():
    """(torch device name, spot) -> cheapest hourly USD price of that GPU in the shipped price table, or None."""
    gpus, prices = load_gpus(), load_prices()

    @functools.lru_cache(maxsize=None)
    def price(device_name: str, spot: bool) -> float | None:
        gpu = gpu_from_device_name(device_name, gpus)
        offers = prices.offers_for(gpu, None, spot) if gpu else []
        return offers[0].hourly(spot) if offers else None

    return price


def build_rows(found: Iterable[ResultFile], catalog: Catalog) -> dict[str, list[dict[str, Any]]]:
    """Long-form rows, one table per task family (each task names its table: multilabel joins classification)."""
    models: dict[tuple[str, str, Preprocess], dict[str, Any]] = {}
    index = ModelIndex(catalog.models)
    price_of = _gpu_price_lookup()
    out: dict[str, list[dict[str, Any]]] = {name: [] for name in task_tables()}
    for result in found:
        record, rel = result.record, result.rel
        p, run = record.pair, record.run
        key = (p.model, p.pretrained, p.preprocess)  # the model as loaded: its image size sets its GFLOPs
        info = models.get(key)
        if info is None or not any(v is not None for v in info.values()):
            info = models[key] = _model_info(catalog, index, p, run)
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
        row.update({col: getattr(run, col) for col in RUN_COLUMNS})
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


def read_samples_file(results_dir: str | os.PathLike, rel: str) -> bytes | None:
    """The bytes of the per-sample outcomes beside the result file `rel`, or None where there are none."""
    try:
        return (Path(results_dir) / samples_key(rel)).read_bytes()
    except OSError:
        return None


def load_samples(samples: bytes | None, digest: str) -> dict[str, Any] | None:
    """The per-sample outcomes in `samples` if they belong to exactly the result whose SHA-256 is `digest`; else None."""
    if samples is None:
        return None
    try:
        owner, arrays = read_samples(samples)
    except InvalidResultError:
        return None
    return arrays if owner == digest else None


# intervals by the bytes they came from, in the metrics folder: a bootstrap (about 0.7 s for VOC2007's mAP) runs
# once per result, not at every parse
INTERVAL_CACHE = ".intervals-cache.json"
INTERVAL_CACHE_SCHEMA = "openclip-benchmark/intervals-cache/1"
INTERVAL_SETTINGS = {"confidence": CONFIDENCE, "resamples": RESAMPLES, "seed": SEED}


def read_interval_cache(out_dir: Path) -> dict[str, list]:
    """The cached intervals, or none when the file is missing, damaged or made with other settings."""
    try:
        doc = read_json((out_dir / INTERVAL_CACHE).read_bytes(), "interval cache")
    except (OSError, InvalidResultError):
        return {}
    ok = isinstance(doc, dict) and doc.get("schema") == INTERVAL_CACHE_SCHEMA and doc.get("settings") == INTERVAL_SETTINGS
    return doc["entries"] if ok and isinstance(doc.get("entries"), dict) else {}


def add_intervals(results_dir: str | os.PathLike, rows: list[dict[str, Any]], digests: dict[str, str],
                  catalog: Catalog, cache: dict[str, list] | None = None) -> dict[str, list]:
    """Fill each row's CI columns for its main metric from its result's samples (left empty where there are none);
    `digests` maps each row's source file to its SHA-256. Each samples file is read once, and decoded only where the
    cache lacks its interval. Returns the cache entries of these rows (taken from `cache` where it has them)."""
    cache, used = cache or {}, {}
    todo: list[tuple[dict[str, Any], str]] = []
    found = []
    for row in rows:
        metric = catalog.main_metric(row["dataset"], row["task"])
        row.update(dict.fromkeys(CI_COLUMNS), ci_metric=metric)
        digest = digests[row[SOURCE_COLUMN]]
        samples_bytes = read_samples_file(results_dir, row[SOURCE_COLUMN])
        if samples_bytes is None:
            continue
        key = f"{digest}:{hashlib.sha256(samples_bytes).hexdigest()}:{metric}"
        cached = cache.get(key)
        if isinstance(cached, list) and len(cached) == 4:
            used[key] = cached
            row.update(zip(("ci_low", "ci_high", "ci_method", "n_samples"), cached))
            continue
        samples = load_samples(samples_bytes, digest)
        if samples is not None:
            todo.append((row, key))
            found.append(metric_outcomes(samples, metric, row["task"]))
    for (row, key), interval in zip(todo, intervals(found)):
        if isinstance(interval, Interval):
            used[key] = [interval.low, interval.high, interval.method, interval.n]
            row.update(zip(("ci_low", "ci_high", "ci_method", "n_samples"), used[key]))
    return used


def _collections(catalog: Catalog) -> dict[str, list[str]]:
    """The catalog collections the leaderboard averages over (open_clip's table: dist. shifts, VTAB, retrieval)."""
    members = catalog.collections()
    return {name: members[name] for name in LEADERBOARD_COLLECTIONS if name in members}


def dataset_column(dataset: str, language: str, catalog: Catalog | None = None, task: str | None = None) -> str:
    """The leaderboard's column of a dataset in a language: the dataset's (its key, or the name the catalog gives it),
    labelled by a task that shares it with another (`cifar10 (probe)`)."""
    spec = catalog.datasets.get(dataset) if catalog is not None else None
    name = spec.leaderboard_column if spec is not None else dataset
    column = get_task(task).column(name) if task else name
    return column if language == "en" else f"{column}/{language}"


# the leaderboard's columns before its dataset columns, with the `avg_<collection>` ones between these two
LEADERBOARD_HEAD = ["model", "pretrained", "preprocess", "params", "image_gflops", "text_gflops", "datasets", "average",
                    AVERAGE_COLUMN]
LEADERBOARD_TAIL = ["seconds", "cost_usd"]


def build_leaderboard(rows: Iterable[dict[str, Any]], catalog: Catalog) -> tuple[list[dict[str, Any]], list[str]]:
    """One row per (model, pretrained, preprocess); one column per dataset (its main metric); averages.

    `average` is the mean over every dataset the model has a result for (`datasets` counts them);
    `avg_<collection>` is the mean over a catalog collection, given only when the model has every dataset
    of that collection that appears anywhere in these results, so averages compare like with like; DataComp's
    average (`collect/datacomp.py`) is given only over all 38 of its tasks, else `n/38`.
    A task that shares its datasets with another (linear probe, CuPL) has columns of its own (`cifar10 (probe)`)
    and its own mean (`avg_probe`), kept out of the others, as are the columns of other languages than English
    (`imagenet1k/jp`; the multilingual table has their means).
    Rows rank by coverage first, then average: a model with one easy dataset never tops a full sweep.
    """
    rows = list(rows)
    datacomp = datacomp_averages((((r["model"], r["pretrained"], r["preprocess"]), r["dataset"], r["language"], r)
                                  for r in rows if not get_task(r["task"]).label), catalog)
    boards: dict[tuple, dict[str, Any]] = {}
    dataset_cols: dict[str, str] = {}  # column -> dataset
    labelled: dict[str, str] = {}  # column -> the label of its task
    translated: set[str] = set()  # columns of another language than English
    for row in rows:
        col = dataset_column(row["dataset"], row["language"], catalog, row["task"])
        value = row.get(catalog.main_metric(row["dataset"], row["task"]))
        if value is None:
            continue
        dataset_cols[col] = row["dataset"]
        if get_task(row["task"]).label:
            labelled[col] = get_task(row["task"]).label
        elif row["language"] != "en":
            translated.add(col)
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
        if (cols := [c for c, d in dataset_cols.items() if d in members and c not in labelled and c not in translated])
    }
    labels = sorted(set(labelled.values()))
    ordered = sorted(dataset_cols)
    out = []
    for board in boards.values():
        scores = board.pop("scores")
        own = [v for c, v in scores.items() if c not in labelled and c not in translated]
        board["datasets"] = len(own)
        board["average"] = sum(own) / len(own) if own else None
        board[AVERAGE_COLUMN] = datacomp[(board["model"], board["pretrained"], board["preprocess"])]
        for coll, cols in collections.items():
            have = [scores[c] for c in cols if c in scores]
            board[f"avg_{coll}"] = sum(have) / len(have) if len(have) == len(cols) else None
        for label in labels:
            have = [v for c, v in scores.items() if labelled.get(c) == label]
            board[f"avg_{label}"] = sum(have) / len(have) if have else None
        board.update({c: scores.get(c) for c in ordered})
        out.append(board)
    out.sort(key=lambda b: (-b["datasets"], -(b["average"] or 0.0), b["model"], b["pretrained"], b["preprocess"]))
    columns = LEADERBOARD_HEAD + [f"avg_{c}" for c in [*collections, *labels]] + LEADERBOARD_TAIL + ordered
    return out, columns


FIRST_DATASET = "imagenet1k"  # the seed's table puts ImageNet first
SWEEP_HEAD = ["model", "pretrained", "dataset", "language", "preprocess", "metric"]


INTERVAL_COLUMNS = ["model", "pretrained", "preprocess", "dataset", "metric", "value", "ci_low", "ci_high",
                    "ci_method", "n_samples"]


def build_leaderboard_intervals(rows: Iterable[dict[str, Any]], catalog: Catalog | None = None) -> list[dict[str, Any]]:
    """One row per leaderboard cell: its value and 95% interval (`dataset` is the leaderboard's column name)."""
    out = [
        {"model": row["model"], "pretrained": row["pretrained"], "preprocess": row["preprocess"],
         "dataset": dataset_column(row["dataset"], row["language"], catalog, row["task"]), "metric": row["ci_metric"],
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


# The type of every column, declared once: what parse hands on in memory, what the Parquet files store and what
# `read_table` gives back from a CSV. Text naming a pair is never missing ("" where no preprocessing is overridden);
# other empty cells are None; every column not named here holds numbers (metrics, averages, GFLOPs, seconds,
# dollars, interval bounds, the main metric at each image size). DataComp's average is text: the number where all
# 38 tasks have a result, else how many do (`12/38`), never a partial average under its name.
NAME_COLUMNS = frozenset(IDENTITY_COLUMNS + ["metric", "ci_metric"])
TEXT_COLUMNS = NAME_COLUMNS | {"gpu_name", "device", "precision", "shard_id", "finished", SOURCE_COLUMN, "ci_method",
                               AVERAGE_COLUMN}
INT_COLUMNS = frozenset({"params", "image_params", "text_params", "image_size", "datasets", "n_samples", "num_samples",
                         "batch_size", "attempt"})


def _typed(column: str, value: Any) -> Any:
    """A cell of `column` as its declared type; None where the value is not one."""
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if column in TEXT_COLUMNS:
        text = value if isinstance(value, str) else str(value) if number else ""
        return text if text or column in NAME_COLUMNS else None
    if not number or not math.isfinite(value):
        return None
    if column in INT_COLUMNS:
        return int(value) if float(value).is_integer() else None
    return float(value)


def _from_text(column: str, text: str) -> Any:
    if column in TEXT_COLUMNS:
        return text if text or column in NAME_COLUMNS else None
    if text == "":
        return None
    return int(text) if column in INT_COLUMNS else float(text)


def typed_table(rows: Iterable[dict[str, Any]], columns: list[str]) -> Table:
    return Table(list(columns), [{c: _typed(c, row.get(c)) for c in columns} for row in rows])


def read_table(path: str | os.PathLike) -> Table:
    """A table parse wrote, from its CSV, each cell of its declared type: the rows parse had in memory."""
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            reader = csv.reader(fh)
            columns = next(reader, [])
            rows = []
            for line, cells in enumerate(reader, start=2):
                if len(cells) != len(columns):
                    raise ValueError(f"{len(cells)} cells under {len(columns)} columns")
                rows.append({c: _from_text(c, text) for c, text in zip(columns, cells)})
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise BenchmarkError(f"{path}: cannot read it ({type(exc).__name__}); run `benchmark parse` again") from None
    except ValueError as exc:
        raise BenchmarkError(f"{path}, line {line}: {exc}; run `benchmark parse` again") from None
    return Table(columns, rows)


def _csv_text(table: Table) -> str:
    buf = io.StringIO(newline="")
    writer = csv.DictWriter(buf, fieldnames=table.columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(table.rows)
    return buf.getvalue()


def _parquet_bytes(csv_text: str, columns: list[str]) -> bytes:
    """The CSV just rendered, typed by pyarrow's C++ reader as the columns are declared: no per-cell Python and no
    pandas import."""
    import pyarrow as pa
    import pyarrow.csv as pa_csv
    import pyarrow.parquet as pq

    convert = pa_csv.ConvertOptions(
        null_values=[""],
        strings_can_be_null=True,
        column_types={c: pa.string() if c in TEXT_COLUMNS else pa.int64() if c in INT_COLUMNS else pa.float64()
                      for c in columns},
    )
    table = pa_csv.read_csv(pa.BufferReader(csv_text.encode("utf-8")), convert_options=convert)
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    return sink.getvalue().to_pybytes()


def write_table(out_dir: Path, name: str, rows: list[dict[str, Any]], columns: list[str]) -> list[Path]:
    return _write(out_dir, name, typed_table(rows, columns))


def _write(out_dir: Path, name: str, table: Table) -> list[Path]:
    csv_path, parquet_path = out_dir / f"{name}.csv", out_dir / f"{name}.parquet"
    text = _csv_text(table)
    atomic_write_text(csv_path, text)
    atomic_write_bytes(parquet_path, _parquet_bytes(text, table.columns))
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


OPTIONAL_TABLES = ("multilingual_retrieval", "resolution_sweep")  # written only where their results exist


def metric_tables() -> tuple[str, ...]:
    """Every table parse may write beside the leaderboard, by name: what `publish` shares."""
    return (*task_tables(), "leaderboard_intervals", *OPTIONAL_TABLES)


def parse_results(
    results_dir: str | os.PathLike, out_dir: str | os.PathLike, tracker: str | os.PathLike | None = None, *,
    catalog: Catalog,
) -> ParseReport:
    """Read every result by content and write the metric CSVs (with the main metric's interval), the leaderboard,
    its cells' intervals and their Parquet twins; the report holds them in memory too (`tables`)."""
    report = ParseReport()
    report.found = read_result_files(results_dir, catalog, report)
    long_rows = build_rows(report.found, catalog)
    out_dir = Path(out_dir)
    cache, used = read_interval_cache(out_dir), {}
    digests = {found.rel: found.digest for found in report.found}
    for rows in long_rows.values():
        used.update(add_intervals(results_dir, rows, digests, catalog, cache))
    if used != cache:  # only this parse's entries: results that are gone take theirs with them
        out_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_json(out_dir / INTERVAL_CACHE, {"schema": INTERVAL_CACHE_SCHEMA, "settings": INTERVAL_SETTINGS,
                                                     "entries": used})
    every = [row for rows in long_rows.values() for row in rows]
    tables = {name: typed_table(rows, columns_for(name, rows)) for name, rows in long_rows.items()}
    tables["leaderboard"] = typed_table(*build_leaderboard(every, catalog))
    tables["leaderboard_intervals"] = typed_table(build_leaderboard_intervals(every, catalog), INTERVAL_COLUMNS)
    optional = dict(zip(OPTIONAL_TABLES, (  # only where a multilingual set has results, a model ran at several sizes
        build_multilingual_table(long_rows.get("retrieval_metrics", ()), catalog),
        build_resolution_sweep(every, catalog),
    )))
    for name, (rows, columns) in optional.items():
        if rows:
            tables[name] = typed_table(rows, columns)
        else:  # a table of an earlier parse would describe results that are gone
            for stale in (out_dir / f"{name}.csv", out_dir / f"{name}.parquet"):
                stale.unlink(missing_ok=True)
    for name, table in tables.items():
        report.written += _write(out_dir, name, table)
        report.rows[name] = len(table.rows)
    report.tables = tables
    if tracker is not None and Path(tracker).exists():
        have = {found.record.pair for found in report.found}
        report.missing = sum(e.pair not in have for e in Tracker.load(tracker).select(["succeeded"]))
    return report
