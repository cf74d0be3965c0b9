"""Zero-shot image-text retrieval: image and text recall@k, as clip_benchmark computes them."""

from __future__ import annotations

from typing import Any

from ..core.errors import BenchmarkError
from ..core.pair import Pair
from . import Task

RECALL_K = (1, 5, 10)
FALLBACK_CAPTIONS = 5  # captions per image where the spec names none (COCO, Flickr)


def prompt_count(spec: Any, images: int) -> int:
    """Every caption goes through the text tower."""
    return images * int(getattr(spec, "captions_per_image", 0) or FALLBACK_CAPTIONS)


def evaluate(pair: Pair, loaded, encoded, cache, recall_k=RECALL_K) -> dict[str, float]:
    """An image or a text counts as found at k if any of its matches is in its top k (clip_benchmark's rule)."""
    import torch
    from clip_benchmark.metrics.zeroshot_retrieval import batchify, recall_at_k

    images_emb, texts_emb = torch.cat(encoded.image_features), torch.cat(encoded.text_features)
    scores = texts_emb @ images_emb.t()
    positive_pairs = torch.zeros_like(scores, dtype=bool)
    positive_pairs[torch.arange(len(scores)), encoded.text_image_index] = True
    batch_size = len(encoded.image_features[0])
    metrics = {}
    for k in recall_k:
        if k > len(images_emb):
            raise BenchmarkError(f"recall@{k} needs at least {k} images; the dataset has {len(images_emb)}")
        image_hits = batchify(recall_at_k, scores, positive_pairs, batch_size, loaded.device, k=k)
        text_hits = batchify(recall_at_k, scores.T, positive_pairs.T, batch_size, loaded.device, k=k)
        metrics[f"image_retrieval_recall@{k}"] = (image_hits > 0).float().mean().item()
        metrics[f"text_retrieval_recall@{k}"] = (text_hits > 0).float().mean().item()
    return metrics


TASK = Task(
    name="zeroshot_retrieval",
    dataset_type="retrieval",
    metrics=tuple(f"{side}_retrieval_recall@{k}" for side in ("image", "text") for k in RECALL_K),
    main_metric="image_retrieval_recall@5",
    table="retrieval_metrics",
    prompts=prompt_count,
    classifier=lambda pair: None,
    evaluate=evaluate,
    captions=True,
)
