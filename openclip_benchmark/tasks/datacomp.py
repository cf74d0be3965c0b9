"""What DataComp's WILDS and fairness evaluations share (mlfoundations/datacomp `eval_utils/wilds_eval.py`,
`fairness_eval.py`): zero-shot predictions from the classification pass, each sample's metadata row, and wilds'
metrics, groupers and group evaluation called as DataComp calls them.

DataComp reads a second pass of the same shards for the metadata (`npy` beside `cls`); here the encoding pass keeps
each sample's `npy` row beside its features, so predictions, labels and metadata come from one read in one order.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

from ..core.pair import Pair
from . import DatasetTaskError, Task
from .zeroshot_classification import CLASS_FILES, classification_metrics, classifier_key, prompt_count, zero_shot_logits
from .zeroshot_classification import outcomes as zero_shot_outcomes
from .zeroshot_classification import statistics as zero_shot_statistics

METADATA_MEMBER = "npy"  # DataComp's webdatasets: each sample's WILDS metadata row, as a numpy array


def _avg_over_groups(v, g, n_groups: int):
    """DataComp's stand-in for wilds' `avg_over_groups` (which needs torch_scatter, not installable from a wheel
    here either): a scatter-add of the values by group over the group counts, so an empty group is 0/0 (NaN)."""
    import torch
    from wilds.common.utils import get_counts

    counts = get_counts(g, n_groups)
    return torch.zeros(n_groups, dtype=torch.float, device=v.device).scatter_add_(0, g, v) / counts, counts


def wilds_ready() -> None:
    """Install DataComp's group average where wilds' elementwise metrics look it up (as DataComp does at import)."""
    import wilds.common.metrics.metric as metric
    import wilds.common.utils as utils

    utils.avg_over_groups = metric.avg_over_groups = _avg_over_groups


def metadata_table(fields: Sequence[str], rows):
    """DataComp's `WILDSEvaluator`: a WILDSDataset holding only the metadata (fields and rows), which is all that
    wilds' grouper and `standard_group_eval` read; built without WILDSDataset.__init__, which wants its files."""
    from wilds.datasets.wilds_dataset import WILDSDataset

    wilds_ready()
    table = WILDSDataset.__new__(WILDSDataset)
    table._metadata_fields, table._metadata_array = list(fields), rows
    return table


def standard_group_eval(fields: Sequence[str], group_by: Sequence[str], metric, y_pred, y_true, metadata):
    """wilds' `standard_group_eval` of `metric` over the groups of the metadata columns `group_by`, as DataComp's
    evaluators call it: the results dictionary."""
    from wilds.common.grouper import CombinatorialGrouper

    table = metadata_table(fields, metadata)
    grouper = CombinatorialGrouper(dataset=table, groupby_fields=list(group_by))
    return table.standard_group_eval(metric, grouper, y_pred, y_true, metadata)[0]


def metadata_rows(pair: Pair, encoded, fields: Sequence[str]):
    """Each sample's metadata row (a tensor, samples x fields, in the features' order); a one-line error where the
    samples carry none or another number of fields."""
    import torch

    rows = encoded.members.get(METADATA_MEMBER)
    if rows is None or getattr(rows, "ndim", 0) != 2 or rows.shape[1] != len(fields):
        width = "none" if rows is None else f"shape {tuple(getattr(rows, 'shape', ()))}"
        raise DatasetTaskError(f"dataset {pair.dataset}: task {pair.task} reads {len(fields)} metadata fields per sample "
                               f"({', '.join(fields)}) from each sample's {METADATA_MEMBER}; found {width}")
    return torch.as_tensor(rows)


def metadata_outcomes(pair: Pair, encoded, fields: Sequence[str], keep: Sequence[str]) -> dict[str, Any]:
    """The metadata columns `keep` by name, one value per sample, for the per-sample outcomes."""
    rows = metadata_rows(pair, encoded, fields).numpy()
    return {name: rows[:, fields.index(name)] for name in keep}


def top_k(logits, k: int):
    """DataComp's `return_topk`: the k best classes per image, best first (torch.topk)."""
    import torch

    return torch.topk(logits, k, dim=1)[1]


def grouped_statistics(hits_of: str, average: str, groups_by_metric: dict[str, str]):
    """`average` a share of images; each worst-group metric the worst of the groups of its metadata column, drawn
    within those groups."""

    def statistics(samples, metric: str):
        from .statistics import has, share, worst_group

        if not has(samples, "target", hits_of):
            return None
        if metric == average:
            return share(metric, samples[hits_of], samples["target"])
        column = groups_by_metric.get(metric)
        return worst_group(metric, samples[hits_of], samples[column]) if column and has(samples, column) else None

    return statistics


def classification_task(name: str, metadata: Sequence[str], metrics: Sequence[str], main_metric: str, table: str,
                        wilds_eval: Callable, keep: Sequence[str], statistics: Callable, topk: int = 0) -> Task:
    """A DataComp classification task: zero-shot classification (acc1, acc5, mean per-class recall, as DataComp's
    `evaluate_webdataset`) plus `wilds_eval(y_pred, y_true, metadata)` on the top-1 (or top-`topk`) predictions, with
    the metadata columns `keep` in its per-sample outcomes."""

    def evaluate(pair: Pair, loaded, encoded, cache) -> dict[str, float]:
        rows = metadata_rows(pair, encoded, metadata)
        logits, target = zero_shot_logits(pair, loaded, encoded, cache)
        out = classification_metrics(logits, target, top5=len(encoded.classnames) >= 5)
        predicted = top_k(logits, topk) if topk else logits.argmax(axis=1)
        out.update(wilds_eval(predicted, target, rows))
        return out

    def outcomes(pair: Pair, loaded, encoded, cache) -> dict[str, Any]:
        return {**zero_shot_outcomes(pair, loaded, encoded, cache), **metadata_outcomes(pair, encoded, metadata, keep)}

    def statistics_or_zero_shot(samples, metric: str):
        found = statistics(samples, metric)
        return found if found is not None else zero_shot_statistics(samples, metric)

    return Task(name=name, dataset_type="classification", metrics=("acc1", "acc5", "mean_per_class_recall", *metrics),
                main_metric=main_metric, table=table, prompts=prompt_count, classifier=classifier_key,
                evaluate=evaluate, outcomes=outcomes, statistics=statistics_or_zero_shot, files=CLASS_FILES,
                members=("cls", METADATA_MEMBER), metadata=tuple(metadata), shares_data=True)
