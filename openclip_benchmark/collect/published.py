"""Our results against open_clip's published table (DataComp's 38-task suite), column by column, with DataComp's
main metric for each column, so a user can see whether a run reproduces the published numbers.

The table and DataComp's task list ship verbatim in `data/published/` (provenance in its README.md).
"""

from __future__ import annotations

import csv
import io
import os
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Iterable

from ..catalog import Catalog
from ..core.errors import BenchmarkError, UnknownNameError
from ..core.pair import Preprocess
from ..core.records import Record
from .datacomp import AVERAGE_COLUMN, COLLECTION, averages, main_value

PUBLISHED = resources.files("openclip_benchmark") / "data" / "published"
TABLE_NAME = "openclip_results.csv"
TASKS_NAME = "datacomp_tasklist.yml"
TOLERANCE_POINTS = 0.5  # the published tables disagree with each other by up to ~0.3 points
IDENTITY = ("name", "pretrained")
AVERAGE_METRIC = "mean of 38 main metrics"


@dataclass(frozen=True)
class PublishedTask:
    key: str  # DataComp's task key (`vtab/caltech101`)
    column: str  # its display name, the published table's column (`Caltech-101`)
    metric: str  # DataComp's main metric (`mean_per_class_recall`; acc1 where it names none)
    dataset: str | None  # the catalog's key, None where the catalog lacks the dataset


@dataclass(frozen=True)
class PublishedTable:
    tasks: tuple[PublishedTask, ...]
    values: dict[tuple[str, str], dict[str, float]]  # (model, pretrained) -> column -> value (a fraction)
    missing_columns: tuple[str, ...] = ()  # columns of catalog datasets that the table does not have
    averages: dict[tuple[str, str], float] = field(default_factory=dict)  # (model, pretrained) -> DataComp's average


@dataclass(frozen=True)
class PublishedDifference:
    """Our value of one (model, pretrained, dataset) against open_clip's published one: no test, a tolerance."""

    model: str
    pretrained: str
    dataset: str
    column: str
    metric: str
    ours: float
    published: float

    @property
    def points(self) -> float:
        return 100.0 * (self.ours - self.published)

    def flagged(self, tolerance: float) -> bool:
        return abs(self.points) > tolerance


@dataclass
class Comparison:
    rows: list[PublishedDifference] = field(default_factory=list)
    tolerance: float = TOLERANCE_POINTS
    unpublished_models: list[tuple[str, str]] = field(default_factory=list)  # we have results, the table no row
    not_in_catalog: list[str] = field(default_factory=list)  # DataComp columns the catalog has no dataset for
    no_metric: list[tuple[str, str, str, str]] = field(default_factory=list)  # (model, pretrained, dataset, metric)
    missing_columns: tuple[str, ...] = ()
    incomplete_averages: list[tuple[str, str, str]] = field(default_factory=list)  # (model, pretrained, `n/38`)

    @property
    def flagged(self) -> list[PublishedDifference]:
        return [row for row in self.rows if row.flagged(self.tolerance)]


def load_tasks(catalog: Catalog, path: str | os.PathLike | None = None) -> list[PublishedTask]:
    """DataComp's task list, each task matched to the catalog's dataset by its DataComp key or any clip_benchmark
    spelling."""
    import yaml

    source = Path(path) if path else PUBLISHED / TASKS_NAME
    try:
        raw = yaml.safe_load(source.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise BenchmarkError(f"task list {source}: cannot read it ({type(exc).__name__})") from None
    if not isinstance(raw, dict) or not all(isinstance(v, dict) and v.get("name") for v in raw.values()):
        raise BenchmarkError(f"task list {source}: expected DataComp's `key: {{name: ..., main_metric: ...}}` entries")
    tasks = []
    for key, entry in raw.items():
        try:
            dataset = catalog.canonical_dataset(key)
        except UnknownNameError:
            dataset = None
        tasks.append(PublishedTask(str(key), str(entry["name"]), str(entry.get("main_metric") or "acc1"), dataset))
    return tasks


def load_published(catalog: Catalog, table: str | os.PathLike | None = None,
                   tasks: str | os.PathLike | None = None) -> PublishedTable:
    """The published table by (model, pretrained); a task whose column is absent is listed, a bad cell is an error."""
    source = Path(table) if table else PUBLISHED / TABLE_NAME
    try:
        text = source.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise BenchmarkError(f"published table {source}: cannot read it ({type(exc).__name__})") from None
    reader = csv.DictReader(io.StringIO(text))
    header = reader.fieldnames or []
    lacking = [c for c in IDENTITY if c not in header]
    if lacking:
        raise BenchmarkError(f"published table {source} lacks the column(s) {', '.join(lacking)} (renamed?)")
    task_list = load_tasks(catalog, tasks)
    present = [t for t in task_list if t.column in header]
    values: dict[tuple[str, str], dict[str, float]] = {}
    published_averages: dict[tuple[str, str], float] = {}
    for line, row in enumerate(reader, start=2):
        cells = {}
        if (row.get(AVERAGE_COLUMN) or "").strip():
            published_averages[(row["name"].strip(), row["pretrained"].strip())] = _number(
                row[AVERAGE_COLUMN], source, line, AVERAGE_COLUMN)
        for task in present:
            cell = (row.get(task.column) or "").strip()
            if not cell:
                continue
            cells[task.column] = _number(cell, source, line, task.column)
        values[(row["name"].strip(), row["pretrained"].strip())] = cells
    averaged = set(catalog.collections().get(COLLECTION, ()))  # FairFace, UTKFace: outside the average, no column
    missing = tuple(t.column for t in task_list if t.dataset in averaged and t.column not in header)
    return PublishedTable(tuple(task_list), values, missing, published_averages)


def _number(cell: str, source, line: int, column: str) -> float:
    try:
        return float(cell)
    except ValueError:
        raise BenchmarkError(f"published table {source} line {line}: {column} is {cell.strip()!r}, not a number") from None


def compare_published(records: Iterable[Record], published: PublishedTable,
                      tolerance: float = TOLERANCE_POINTS, catalog: Catalog | None = None) -> Comparison:
    """Each English, native-preprocessing result of a published (model, pretrained) against its column; with the
    catalog, DataComp's average of each such model against the table's, where the model has all 38 tasks."""
    by_dataset = {t.dataset: t for t in published.tasks if t.dataset is not None}
    out = Comparison(tolerance=tolerance, missing_columns=published.missing_columns)
    out.not_in_catalog = [t.column for t in published.tasks if t.dataset is None]
    unpublished: dict[tuple[str, str], None] = {}
    native: list[tuple[tuple[str, str], str, str, dict]] = []  # what DataComp's average of each model reads
    for record in records:
        pair = record.pair
        task = by_dataset.get(pair.dataset)
        if task is None or pair.language != "en" or pair.preprocess != Preprocess():
            continue
        native.append(((pair.model, pair.pretrained), pair.dataset, pair.language, record.metrics))
        row = published.values.get((pair.model, pair.pretrained))
        if row is None:
            unpublished[(pair.model, pair.pretrained)] = None
            continue
        if task.column not in row:
            continue
        ours = main_value(record.metrics, task.metric)
        if ours is None:
            out.no_metric.append((pair.model, pair.pretrained, pair.dataset, task.metric))
            continue
        out.rows.append(PublishedDifference(pair.model, pair.pretrained, pair.dataset, task.column, task.metric,
                                            ours, row[task.column]))
    out.unpublished_models = list(unpublished)
    for (model, pretrained), ours in (averages(native, catalog) if catalog is not None else {}).items():
        theirs = published.averages.get((model, pretrained))
        if theirs is None:
            continue
        if isinstance(ours, str):
            out.incomplete_averages.append((model, pretrained, ours))
        else:
            out.rows.append(PublishedDifference(model, pretrained, "average", AVERAGE_COLUMN, AVERAGE_METRIC, ours, theirs))
    out.rows.sort(key=lambda d: (d.model, d.pretrained, d.dataset))
    return out


COLUMNS = ["model", "pretrained", "dataset", "published_column", "metric", "ours", "published", "difference_points",
           "flagged"]


def comparison_csv(comparison: Comparison) -> str:
    buf = io.StringIO(newline="")
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(COLUMNS)
    for d in comparison.rows:
        writer.writerow([d.model, d.pretrained, d.dataset, d.column, d.metric, repr(d.ours), repr(d.published),
                         f"{d.points:.2f}", str(d.flagged(comparison.tolerance)).lower()])
    return buf.getvalue()
