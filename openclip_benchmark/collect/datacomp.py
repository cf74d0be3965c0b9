"""DataComp's average: the mean of the main metrics of the 38 tasks of its suite, the number open_clip's published
table and the CLIP papers since DataComp lead with.

The suite is the catalog's `datacomp` collection; each task's value is DataComp's main metric (its `tasklist.yml`:
mean per-class recall for four sets, the mean of image and text recall@1 for Flickr and MSCOCO, F1, worst-group and
Jaccard scores for the WILDS, fairness and WinoGAViL sets, top-1 accuracy elsewhere), read from English results at
the model's native preprocessing. A model that lacks any task has no average: its cell says how many it has
(`12/38`), never a mean of fewer tasks under the same name.
"""

from __future__ import annotations

import math
from typing import Any, Iterable, Mapping

from ..catalog import Catalog, DatasetSpec

AVERAGE_COLUMN = "Average perf. on 38 datasets"  # open_clip's name for it (docs/openclip_results.csv)
COLLECTION = "datacomp"
MEAN_RECALL = "mean_recall@1"  # DataComp: the mean of image and text recall@1
RECALL_PARTS = ("image_retrieval_recall@1", "text_retrieval_recall@1")


def suite(catalog: Catalog) -> list[DatasetSpec]:
    """The datasets the average is over: the catalog's DataComp collection, each with DataComp's main metric."""
    return [spec for spec in catalog.datasets.values() if COLLECTION in spec.collections and spec.datacomp]


def main_value(metrics: Mapping[str, Any], metric: str) -> float | None:
    """Our value of DataComp's metric: the mean of image and text recall@1 for its `mean_recall@1`."""
    names = RECALL_PARTS if metric == MEAN_RECALL else (metric,)
    parts = [metrics.get(name) for name in names]
    if any(not isinstance(p, (int, float)) or isinstance(p, bool) or math.isnan(p) for p in parts):
        return None
    return sum(parts) / len(parts)


def average(values: Mapping[str, float], size: int) -> float | str:
    """The mean when every one of the `size` tasks has a value, else `n/size`."""
    if len(values) < size or not size:
        return f"{len(values)}/{size}"
    return sum(values.values()) / size


def averages(results: Iterable[tuple[tuple, str, str, Mapping[str, Any]]], catalog: Catalog) -> dict[tuple, float | str]:
    """The average cell of each key, from (key, dataset, language, metrics) of each of its results."""
    members = {spec.name: spec.datacomp.main_metric for spec in suite(catalog)}
    values: dict[tuple, dict[str, float]] = {}
    for key, dataset, language, metrics in results:
        found = values.setdefault(key, {})
        metric = members.get(dataset)
        value = main_value(metrics, metric) if metric is not None and language == "en" else None
        if value is not None:
            found[dataset] = value
    return {key: average(found, len(members)) for key, found in values.items()}
