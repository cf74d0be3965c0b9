"""Zero-shot image-text retrieval: image and text recall@k, as clip_benchmark computes them."""

from __future__ import annotations

import re
from typing import Any

from ..core.errors import BenchmarkError
from ..core.pair import Pair
from . import Task

RECALL_K = (1, 5, 10)
FALLBACK_CAPTIONS = 5  # captions per image where the spec names none (COCO, Flickr)


def prompt_count(spec: Any, images: int) -> int:
    """Every caption goes through the text tower."""
    return images * int(getattr(spec, "captions_per_image", 0) or FALLBACK_CAPTIONS)


def _scores(encoded):
    """(texts x images) similarities, as clip_benchmark computes them."""
    import torch

    return torch.cat(encoded.text_features) @ torch.cat(encoded.image_features).t()


def evaluate(pair: Pair, loaded, encoded, cache, recall_k=RECALL_K) -> dict[str, float]:
    """An image or a text counts as found at k if any of its matches is in its top k (clip_benchmark's rule)."""
    import torch
    from clip_benchmark.metrics.zeroshot_retrieval import batchify, recall_at_k

    scores = _scores(encoded)
    images = scores.shape[1]
    positive_pairs = torch.zeros_like(scores, dtype=bool)
    positive_pairs[torch.arange(len(scores)), encoded.text_image_index] = True
    batch_size = len(encoded.image_features[0])
    metrics = {}
    for k in recall_k:
        if k > images:
            raise BenchmarkError(f"recall@{k} needs at least {k} images; the dataset has {images}")
        image_hits = batchify(recall_at_k, scores, positive_pairs, batch_size, loaded.device, k=k)
        text_hits = batchify(recall_at_k, scores.T, positive_pairs.T, batch_size, loaded.device, k=k)
        metrics[f"image_retrieval_recall@{k}"] = (image_hits > 0).float().mean().item()
        metrics[f"text_retrieval_recall@{k}"] = (text_hits > 0).float().mean().item()
    return metrics


def outcomes(pair: Pair, loaded, encoded, cache, rows: int = 1024) -> dict[str, Any]:
    """Ranks (1 = first) of the true match: per caption, of its image among all images (image retrieval); per image,
    of the best of its captions among all captions (text retrieval); and each caption's image. Recall@k is the share
    of ranks <= k. A tie with the true match counts in its favour (clip_benchmark's topk breaks ties arbitrarily)."""
    import torch

    scores = _scores(encoded)
    texts, images = scores.shape
    image_of = torch.as_tensor(encoded.text_image_index, dtype=torch.long, device=scores.device)
    true = scores[torch.arange(texts, device=scores.device), image_of]
    image_rank = torch.cat([(scores[s:s + rows] > true[s:s + rows, None]).sum(1) for s in range(0, texts, rows)]) + 1
    best = torch.full((images,), float("-inf"), dtype=scores.dtype, device=scores.device).scatter_reduce(0, image_of, true, "amax")
    columns = scores.T
    text_rank = torch.cat([(columns[s:s + rows] > best[s:s + rows, None]).sum(1) for s in range(0, images, rows)]) + 1
    text_rank[torch.isneginf(best)] = texts + 1  # an image without a caption is never found
    return {"image_retrieval_rank": image_rank.cpu().numpy(), "text_retrieval_rank": text_rank.cpu().numpy(),
            "caption_image": image_of.cpu().numpy()}


_RECALL = re.compile(r"(image|text)_retrieval_recall@([1-9][0-9]*)")


def statistics(samples, metric: str):
    """Text recall@k: the share of images whose best caption ranks in the top k. Image recall@k: captions found over
    captions, per image (resampled by image, so that the captions of one image move together)."""
    import numpy as np

    from .statistics import Outcomes, has, share

    found = _RECALL.fullmatch(metric)
    if not found or not has(samples, "image_retrieval_rank", "text_retrieval_rank", "caption_image"):
        return None
    side, k = found.group(1), int(found.group(2))
    images, image_of = len(samples["text_retrieval_rank"]), samples["caption_image"]
    if side == "text":
        return share(metric, samples["text_retrieval_rank"] <= k, image_of)
    hits = np.bincount(image_of, weights=samples["image_retrieval_rank"] <= k, minlength=images)
    captions = np.bincount(image_of, minlength=images).astype(float)
    keep = captions > 0  # an image without a caption holds no caption to find
    return Outcomes(metric, "ratio", hits[keep], image_of, weights=captions[keep])


TASK = Task(name="zeroshot_retrieval", dataset_type="retrieval", table="retrieval_metrics", captions=True,
            metrics=tuple(f"{side}_retrieval_recall@{k}" for side in ("image", "text") for k in RECALL_K),
            main_metric="image_retrieval_recall@5", prompts=prompt_count, evaluate=evaluate, outcomes=outcomes,
            statistics=statistics)
