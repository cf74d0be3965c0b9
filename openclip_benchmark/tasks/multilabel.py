"""Multilabel classification (VOC2007): zero-shot logits as for classification, scored by mean average precision.

clip_benchmark has no task of this name: its zero-shot classification switches to average precision when the labels
are multi-hot, and it writes such results as `zeroshot_classification` (hence the alias).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from ..core.pair import Pair
from . import DatasetTaskError
from . import zeroshot_classification as zeroshot
from .zeroshot_classification import zero_shot_logits


def evaluate(pair: Pair, loaded, encoded, cache) -> dict[str, float]:
    from clip_benchmark.metrics.zeroshot_classification import average_precision_per_class

    logits, target = zero_shot_logits(pair, loaded, encoded, cache)
    if target.dim() != 2:
        raise DatasetTaskError("multilabel data must have one multi-hot label vector per image")
    return {"mean_average_precision": average_precision_per_class(logits, target).mean().item()}


def outcomes(pair: Pair, loaded, encoded, cache) -> dict[str, Any]:
    """The multi-hot labels (images x classes, flattened) and, per class, its images best first as clip_benchmark's
    `torch.sort` ranks them (so ties fall as there): the mean average precision of any resample follows from these."""
    import numpy as np
    import torch

    logits, target = zero_shot_logits(pair, loaded, encoded, cache)
    ranking = [torch.sort(logits[:, k], 0, True)[1].numpy() for k in range(logits.size(1))]
    return {"labels": target.bool().numpy().ravel(), "ranking": np.concatenate(ranking),
            "classes": np.array([logits.size(1)])}


def statistics(samples, metric: str):
    """Mean average precision from the labels and the fixed per-class ranking (each resample weighs the images it
    drew); None where the arrays are not a ranking of these images."""
    import numpy as np

    from .statistics import Outcomes, has

    if metric != "mean_average_precision" or not has(samples, "labels", "ranking", "classes"):
        return None
    classes = int(samples["classes"][0]) if len(samples["classes"]) == 1 else 0
    labels, ranking = samples["labels"], samples["ranking"]
    if classes < 1 or labels.size % classes or ranking.size != labels.size:
        return None
    labels = labels.reshape(-1, classes).astype(bool)
    ranking = ranking.reshape(classes, -1)
    if not (np.sort(ranking, axis=1) == np.arange(len(labels))).all():
        return None  # not a ranking of these images
    return Outcomes(metric, "average_precision", labels, labels, ranking=ranking)


# zero-shot's classifier, prompts and files, scored by mean average precision
TASK = replace(zeroshot.TASK, name="multilabel", dataset_type="multilabel", metrics=("mean_average_precision",),
               main_metric="mean_average_precision", evaluate=evaluate, outcomes=outcomes, statistics=statistics,
               aliases=("zeroshot_classification",))
