"""Our results against open_clip's published table (DataComp's 38-task suite), column by column, with DataComp's
main metric for each column, so a user can see whether a run reproduces the published numbers.

The table and DataComp's task list ship verbatim in `data/published/` (provenance in its README.md).
"""

from __future__ import annotations

import csv
import io
import math
import os
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Iterable

from ..catalog import Catalog
from ..core.errors import BenchmarkError, UnknownNameError
from ..core.pair import Preprocess
from ..core.records import Record

PUBLISHED = resources.files("openclip_benchmark") / "data" / "published"
TABLE_NAME = "openclip_results.csv"
TASKS_NAME = "datacomp_tasklist.yml"
TOLERANCE_POINTS = 0.5  # the published tables disagree with each other by up to ~0.3 points
IDENTITY = ("name", "pretrained")
# DataComp's names for the two retrieval sets of clip_benchmark's suite (Flickr30k 1k test, MSCOCO 2014 5k test)
DATACOMP_ALIASES = {
    "retrieval/flickr_1k_test_image_text_retrieval": "flickr30k",
    "retrieval/mscoco_2014_5k_test_image_text_retrieval": "mscoco_captions",
}
MEAN_RECALL = "mean_recall@1"  # DataComp: the mean of image and text recall@1
RECALL_PARTS = ("image_retrieval_recall@1", "text_retrieval_recall@1")


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

    @property
    def flagged(self) -> list[PublishedDifference]:
        return [row for row in self.rows if row.flagged(self.tolerance)]


def load_tasks(catalog: Catalog, path: str | os.PathLike | None = None) -> list[PublishedTask]:
    """DataComp's task list, each task matched to the catalog's dataset by any clip_benchmark spelling."""
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
            dataset = DATACOMP_ALIASES.get(key) or catalog.canonical_dataset(key)
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
    for line, row in enumerate(reader, start=2):
        cells = {}
        for task in present:
            cell = (row.get(task.column) or "").strip()
            if not cell:
                continue
            try:
                cells[task.column] = float(cell)
            except ValueError:
                raise BenchmarkError(f"published table {source} line {line}: {task.column} is {cell!r}, not a number") from None
        values[(row["name"].strip(), row["pretrained"].strip())] = cells
    missing = tuple(t.column for t in task_list if t.dataset and t.column not in header)  # FairFace, UTKFace: no column
    return PublishedTable(tuple(task_list), values, missing)


def main_value(metrics: dict[str, Any], metric: str) -> float | None:
    """Our value of DataComp's metric: the mean of image and text recall@1 for its `mean_recall@1`."""
    names = RECALL_PARTS if metric == MEAN_RECALL else (metric,)
    parts = [metrics.get(name) for name in names]
    if any(not isinstance(p, (int, float)) or isinstance(p, bool) or math.isnan(p) for p in parts):
        return None
    return sum(parts) / len(parts)


def compare_published(records: Iterable[Record], published: PublishedTable,
                      tolerance: float = TOLERANCE_POINTS) -> Comparison:
    """Each English, native-preprocessing result of a published (model, pretrained) against its column."""
    by_dataset = {t.dataset: t for t in published.tasks if t.dataset is not None}
    out = Comparison(tolerance=tolerance, missing_columns=published.missing_columns)
    out.not_in_catalog = [t.column for t in published.tasks if t.dataset is None]
    unpublished: dict[tuple[str, str], None] = {}
    for record in records:
        pair = record.pair
        task = by_dataset.get(pair.dataset)
        if task is None or pair.language != "en" or pair.preprocess != Preprocess():
            continue
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
