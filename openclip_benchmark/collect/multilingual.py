"""open_clip's multilingual retrieval table (docs/openclip_multilingual_retrieval_results.csv), from the retrieval rows:
one row per model, a column per (dataset, metric, language) named as open_clip names it
(`crossmodal3600 image_retrieval_recall@1 de`), before each dataset and metric the mean over its languages (`... avg`),
and `avg` the mean over every cell of the row. Columns sort as open_clip's do (metric names as text, `avg` first)."""

from __future__ import annotations

from statistics import fmean
from typing import Any, Iterable

from ..catalog import Catalog
from ..tasks import get_task

COLLECTION = "multilingual_retrieval"
HEAD = ["model", "pretrained", "preprocess", "avg"]


def build_multilingual_table(rows: Iterable[dict[str, Any]], catalog: Catalog) -> tuple[list[dict[str, Any]], list[str]]:
    members = set(catalog.collections().get(COLLECTION, ()))
    boards: dict[tuple[str, str, str], dict[tuple[str, str], dict[str, float]]] = {}
    for row in rows:
        if row["dataset"] not in members:
            continue
        board = boards.setdefault((row["model"], row["pretrained"], row["preprocess"]), {})
        for metric in get_task(row["task"]).metrics:
            if isinstance(row.get(metric), (int, float)):
                board.setdefault((row["dataset"], metric), {})[row["language"]] = row[metric]
    groups = sorted({group for board in boards.values() for group in board})
    columns = list(HEAD)
    for dataset, metric in groups:
        languages = sorted({lang for board in boards.values() for lang in board.get((dataset, metric), {})})
        columns += [f"{dataset} {metric} avg"] + [f"{dataset} {metric} {lang}" for lang in languages]
    out = []
    for (model, pretrained, preprocess), board in sorted(boards.items()):
        line: dict[str, Any] = {"model": model, "pretrained": pretrained, "preprocess": preprocess}
        for (dataset, metric), by_language in board.items():
            line[f"{dataset} {metric} avg"] = fmean(by_language.values())
            line.update({f"{dataset} {metric} {lang}": value for lang, value in by_language.items()})
        line["avg"] = fmean(v for (dataset, metric), by_language in board.items() for v in by_language.values())
        out.append(line)
    return out, columns
