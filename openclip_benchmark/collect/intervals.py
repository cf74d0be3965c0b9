"""95% confidence intervals of a result's main metric from its per-sample outcomes. Pure numpy, with scipy.stats for the exact binomial quantiles.

A metric is a function of the dataset's images (`Outcomes`); the interval says how far it could move on another
draw of as many images from the same distribution:
- `binomial`: exact Clopper-Pearson, where the metric is a plain share of images (acc1, acc5, text retrieval
  recall@k: an image counts as found when the best of its captions is in the top k);
- `bootstrap`: seeded percentile bootstrap over images otherwise (mean per-class recall; image retrieval recall@k,
  a share of captions, resampled by image so that the captions of one image move together; mean average precision).
Every number is a fraction (0..1), as the metric.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np

CONFIDENCE = 0.95
RESAMPLES = 1000
SEED = 0
_CHUNK = 4_000_000  # resampled indices held at once (32 MB of int64)
_RECALL = re.compile(r"(image|text)_retrieval_recall@([1-9][0-9]*)")


@dataclass(frozen=True)
class Outcomes:
    """One metric of one result as a function of its images.

    kind `share`: `hits` is 0/1 per image, the metric their mean; `mean`: `hits` a score per image (CIDEr), the metric
    their mean; `ratio`: `hits` per image over `weights` per image
    (captions found over captions); `class_mean`: `hits` 0/1 per image, the metric the mean over the classes present
    (`classes`, per image) of each class's share. `units` identifies the images in order (their classes, or each
    caption's image): two results can be paired only when theirs are equal. `average_precision`: `hits` is the
    multi-hot labels (images x classes), `ranking` each class's images best first, the metric clip_benchmark's
    mean over classes of average precision.
    """

    metric: str
    kind: str
    hits: np.ndarray
    units: np.ndarray
    weights: np.ndarray | None = None
    classes: np.ndarray | None = None
    ranking: np.ndarray | None = None

    @property
    def n(self) -> int:
        return len(self.hits)

    @property
    def value(self) -> float:
        return float(self.resampled(np.arange(self.n)[None, :])[0])

    def resampled(self, idx: np.ndarray) -> np.ndarray:
        """The metric on each row of image indices (resamples x images)."""
        hits = self.hits[idx]
        if self.kind in ("share", "mean"):
            return hits.mean(axis=1)
        if self.kind == "ratio":
            return hits.sum(axis=1) / self.weights[idx].sum(axis=1)
        if self.kind == "average_precision":
            return mean_average_precision(self.hits, self.ranking, _counts(idx, self.n))
        rows, k = idx.shape[0], int(self.classes.max()) + 1
        flat = (np.arange(rows)[:, None] * k + self.classes[idx]).ravel()
        total = np.bincount(flat, minlength=rows * k).reshape(rows, k)
        found = np.bincount(flat, weights=hits.ravel(), minlength=rows * k).reshape(rows, k)
        present = total > 0
        return np.where(present, found / np.maximum(total, 1), 0.0).sum(axis=1) / present.sum(axis=1)

    def pairs_with(self, other: "Outcomes") -> bool:
        return self.kind == other.kind and np.array_equal(self.units, other.units)


def _counts(idx: np.ndarray, n: int) -> np.ndarray:
    """(images x resamples): how often each resample drew each image, in the narrowest type that holds it."""
    rows = idx.shape[0]
    counts = np.bincount((idx * rows + np.arange(rows)[:, None]).ravel(), minlength=n * rows).reshape(n, rows)
    return counts.astype(np.uint8 if counts.max(initial=0) <= 255 else np.int32)


def mean_average_precision(labels: np.ndarray, ranking: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """clip_benchmark's mAP (tnt's average precision per class, then the mean) of each resample, a column of
    `counts`, with the ranking fixed: a drawn image's copies sit together in it, so one pass per class suffices.

    The j-th copy of a positive with `a` positives and `b` images ranked above it has precision (a+j)/(b+j); summed
    over its w copies that is w - (b-a)(H(b+w) - H(b)), H the harmonic numbers. Written by hand: no library takes
    sample weights with clip_benchmark's tie order.
    """
    n, resamples = counts.shape
    harmonic = np.concatenate([[0.0], np.cumsum(1.0 / np.arange(1, n + 1))])
    ap = np.zeros((labels.shape[1], resamples))
    for k, order in enumerate(ranking):
        positives = np.flatnonzero(labels[order, k])
        if not len(positives):
            continue  # clip_benchmark: no positive, average precision 0
        drawn = counts[order[:positives[-1] + 1]]
        starts = np.concatenate([[0], positives[:-1] + 1])
        seen = np.cumsum(np.add.reduceat(drawn, starts, axis=0, dtype=np.int64), axis=0)  # images up to each positive
        w = drawn[positives].astype(np.int64)
        found = np.cumsum(w, axis=0)
        above, hits_above = seen - w, found - w
        precision_sum = w - (above - hits_above) * (harmonic[seen] - harmonic[above])
        ap[k] = precision_sum.sum(axis=0) / np.maximum(w.sum(axis=0), 1)
    return ap.mean(axis=0)


def metric_outcomes(samples: Mapping[str, np.ndarray], metric: str) -> Outcomes | None:
    """The metric as a function of the images, from a result's samples; None where they cannot give it."""
    if metric in ("acc1", "acc5") and f"top{metric[-1]}" in samples and "target" in samples:
        return Outcomes(metric, "share", samples[f"top{metric[-1]}"].astype(float), samples["target"])
    if metric == "mean_per_class_recall" and {"target", "predicted"} <= set(samples):
        target = samples["target"]
        return Outcomes(metric, "class_mean", (samples["predicted"] == target).astype(float), target, classes=target)
    if metric == "mean_average_precision" and {"labels", "ranking", "classes"} <= set(samples):
        classes = int(samples["classes"][0]) if len(samples["classes"]) == 1 else 0
        labels, ranking = samples["labels"], samples["ranking"]
        if classes < 1 or labels.size % classes or ranking.size != labels.size:
            return None
        labels = labels.reshape(-1, classes).astype(bool)
        ranking = ranking.reshape(classes, -1)
        if not (np.sort(ranking, axis=1) == np.arange(len(labels))).all():
            return None  # not a ranking of these images
        return Outcomes(metric, "average_precision", labels, labels, ranking=ranking)
    found = _RECALL.fullmatch(metric)
    if found and {"image_retrieval_rank", "text_retrieval_rank", "caption_image"} <= set(samples):
        side, k = found.group(1), int(found.group(2))
        images, image_of = len(samples["text_retrieval_rank"]), samples["caption_image"]
        if side == "text":
            return Outcomes(metric, "share", (samples["text_retrieval_rank"] <= k).astype(float), image_of)
        hits = np.bincount(image_of, weights=samples["image_retrieval_rank"] <= k, minlength=images)
        captions = np.bincount(image_of, minlength=images).astype(float)
        keep = captions > 0  # an image without a caption holds no caption to find
        return Outcomes(metric, "ratio", hits[keep], image_of, weights=captions[keep])
    values = samples.get(metric)  # a task's per-sample array named as the metric, whose mean the metric is
    if values is not None and len(values) and (values.dtype == bool or np.isfinite(values).all()):
        return Outcomes(metric, "share" if values.dtype == bool else "mean", values.astype(float), np.arange(len(values)))
    return None


def bootstrap_draws(outcomes: Sequence[Outcomes], rng: np.random.Generator, resamples: int = RESAMPLES) -> np.ndarray:
    """(len(outcomes), resamples): each result's metric on the same resamples of their (common) images."""
    n = outcomes[0].n
    out = np.empty((len(outcomes), resamples))
    step = max(1, _CHUNK // max(n, 1))
    for start in range(0, resamples, step):
        idx = rng.integers(0, n, size=(min(step, resamples - start), n))
        for row, o in enumerate(outcomes):
            out[row, start:start + len(idx)] = o.resampled(idx)
    return out


def percentile_interval(draws: np.ndarray, confidence: float = CONFIDENCE) -> tuple[float, float]:
    low, high = np.quantile(draws, [(1 - confidence) / 2, (1 + confidence) / 2])
    return float(low), float(high)


@dataclass(frozen=True)
class Interval:
    metric: str
    value: float
    low: float
    high: float
    method: str  # binomial | bootstrap
    n: int  # images


def intervals(outcomes: Sequence[Outcomes | None], confidence: float = CONFIDENCE, resamples: int = RESAMPLES,
              seed: int = SEED) -> list[Interval | None]:
    """The interval of each (None stays None): the binomial ones in one vectorised pass, each bootstrap seeded by
    `seed` alone, so a result's interval never depends on which other results were parsed with it."""
    out: list[Interval | None] = [None] * len(outcomes)
    shares = [i for i, o in enumerate(outcomes) if o is not None and o.kind == "share"]
    if shares:
        found = np.array([outcomes[i].hits.sum() for i in shares])
        total = np.array([outcomes[i].n for i in shares], dtype=float)
        lows, highs = clopper_pearson(found, total, confidence)
        for i, low, high in zip(shares, lows, highs):
            o = outcomes[i]
            out[i] = Interval(o.metric, o.value, float(low), float(high), "binomial", o.n)
    for i, o in enumerate(outcomes):
        if o is not None and o.kind != "share":
            low, high = percentile_interval(bootstrap_draws([o], np.random.default_rng(seed), resamples)[0], confidence)
            out[i] = Interval(o.metric, o.value, low, high, "bootstrap", o.n)
    return out


def clopper_pearson(found, total, confidence: float = CONFIDENCE) -> tuple[np.ndarray, np.ndarray]:
    """Exact (Clopper-Pearson) bounds for `found` successes out of `total`, elementwise: the beta quantiles."""
    from scipy.stats import beta

    found, total = np.asarray(found, dtype=float), np.asarray(total, dtype=float)
    tail = (1 - confidence) / 2
    low = beta.ppf(tail, np.maximum(found, 1), total - found + 1)
    high = beta.ppf(1 - tail, found + 1, np.maximum(total - found, 1))
    return np.where(found == 0, 0.0, low), np.where(found == total, 1.0, high)
