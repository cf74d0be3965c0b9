"""Multilabel classification (VOC2007): zero-shot logits as for classification, scored by mean average precision.

clip_benchmark has no task of this name: its zero-shot classification switches to average precision when the labels
are multi-hot, and it writes such results as `zeroshot_classification` (hence the alias).
"""

from __future__ import annotations

from ..core.pair import Pair
from . import DatasetTaskError, Task
from .zeroshot_classification import CLASS_FILES, classifier_key, prompt_count, zero_shot_logits


def evaluate(pair: Pair, loaded, encoded, cache) -> dict[str, float]:
    from clip_benchmark.metrics.zeroshot_classification import average_precision_per_class

    logits, target = zero_shot_logits(pair, loaded, encoded, cache)
    if target.dim() != 2:
        raise DatasetTaskError("multilabel data must have one multi-hot label vector per image")
    return {"mean_average_precision": average_precision_per_class(logits, target).mean().item()}


TASK = Task(
    name="multilabel",
    dataset_type="multilabel",
    metrics=("mean_average_precision",),
    main_metric="mean_average_precision",
    table="classification_metrics",
    prompts=prompt_count,
    classifier=classifier_key,
    evaluate=evaluate,
    files=CLASS_FILES,
    aliases=("zeroshot_classification",),
)
