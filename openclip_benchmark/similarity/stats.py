"""The arithmetic of `similarity`, on embeddings already computed: pair scores and ranks, the summary statistics, the
seeded heatmap sample and distractor draws. Pure: numpy only, no torch, no I/O; the same arrays give the same bytes.

Embeddings are L2-normalised, so a dot product is the cosine similarity. Captions are in dataset order and
`text_image[j]` is the image of caption j (non-decreasing: an image's captions are contiguous).
"""

from __future__ import annotations

import numpy as np

QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)
QUANTILE_COLUMNS = ("q05", "q25", "median", "q75", "q95")
CHUNK = 1024  # images per block of the caption x image score matrix


def pair_scores(image_emb: np.ndarray, text_emb: np.ndarray, text_image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each caption j: its cosine similarity with its own image, and the rank of that score among the scores of
    every caption of the set against that image (1 = no caption scores higher; ties share the better rank)."""
    text_image = np.asarray(text_image)
    scores = np.empty(len(text_emb), dtype=np.float32)
    ranks = np.empty(len(text_emb), dtype=np.int64)
    for start in range(0, len(image_emb), CHUNK):
        stop = min(start + CHUNK, len(image_emb))
        block = text_emb @ image_emb[start:stop].T  # captions x images of the block
        own = np.flatnonzero((text_image >= start) & (text_image < stop))
        columns = block[:, text_image[own] - start]  # captions x (the own captions' images)
        true = block[own, text_image[own] - start]
        scores[own] = true
        ranks[own] = 1 + (columns > true[None, :]).sum(axis=0)
    return scores, ranks


def summary(scores: np.ndarray, threshold: float) -> dict[str, float]:
    """Mean, std (population), min, quantiles, max and the share of scores under `threshold`."""
    scores = np.asarray(scores, dtype=np.float64)
    out = {"mean": float(scores.mean()), "std": float(scores.std()), "min": float(scores.min())}
    out.update(zip(QUANTILE_COLUMNS, (float(q) for q in np.quantile(scores, QUANTILES))))
    out["max"] = float(scores.max())
    out["share_under_threshold"] = float((scores < threshold).mean())
    return out


def sample_images(images: int, size: int, seed: int) -> np.ndarray:
    """`size` distinct images (all when fewer), drawn with `seed`, in dataset order."""
    if size >= images:
        return np.arange(images)
    return np.sort(np.random.default_rng(seed).choice(images, size=size, replace=False))


def caption_spans(text_image: np.ndarray, images: int) -> np.ndarray:
    """(start, stop) of each image's captions."""
    text_image = np.asarray(text_image)
    starts = np.searchsorted(text_image, np.arange(images), side="left")
    stops = np.searchsorted(text_image, np.arange(images), side="right")
    return np.stack([starts, stops], axis=1)


def draw_distractors(text_image: np.ndarray, images: int, k: int, seed: int) -> list[np.ndarray]:
    """For each image, `k` captions of other images (fewer when the set has fewer), drawn without replacement with
    one generator seeded `seed`, image after image."""
    rng = np.random.default_rng(seed)
    total = len(text_image)
    out = []
    for start, stop in caption_spans(text_image, images):
        others = total - (stop - start)
        picks = rng.choice(others, size=min(k, others), replace=False)
        out.append(np.where(picks >= start, picks + (stop - start), picks))  # skip the image's own block
    return out


def distractor_top(own: np.ndarray, distractors: np.ndarray) -> bool:
    """Whether every own caption scores above every distractor."""
    return bool(len(distractors) == 0 or own.min() > distractors.max())
