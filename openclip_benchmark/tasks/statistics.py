"""A metric as a function of a result's per-sample outcomes: what an interval or a paired test resamples. Pure numpy.

Each task says, per metric, which `Outcomes` its samples make (its `statistics`); the kind says how the metric follows
from them and how `collect/` puts an interval on it: `share` (a plain share of samples: the exact binomial interval),
every other kind a seeded bootstrap over samples, drawn within groups for the worst-group kind so that every group
keeps its size, as the groups of the test set are fixed by its design.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import numpy as np

# the kinds whose value is a plain share of 0/1 samples (a binomial count); the others are bootstrapped
BINOMIAL_KINDS = ("share",)


@dataclass(frozen=True)
class Outcomes:
    """One metric of one result as a function of its samples (images, or instances).

    kind `share`: `hits` is 0/1 per sample, the metric their mean; `mean`: `hits` any number per sample, the metric
    their mean; `ratio`: `hits` per sample over `weights` per sample (captions found over captions); `class_mean`:
    `hits` 0/1 per sample, the metric the mean over the classes present (`classes`, per sample) of each class's share;
    `average_precision`: `hits` is the multi-hot labels (samples x classes), `ranking` each class's samples best first,
    the metric clip_benchmark's mean over classes of average precision; `macro_f1`: `classes` the true and `predicted`
    the predicted class per sample, the metric sklearn's F1 averaged over the classes present (wilds' `F1`);
    `worst_group`: `hits` per sample, `groups` per sample, the metric the lowest group mean (wilds' worst group), with
    resamples drawn within groups. `units` identifies the samples in order: two results pair only when theirs are equal.
    """

    metric: str
    kind: str
    hits: np.ndarray
    units: np.ndarray
    weights: np.ndarray | None = None
    classes: np.ndarray | None = None
    ranking: np.ndarray | None = None
    predicted: np.ndarray | None = None
    groups: np.ndarray | None = None

    @property
    def n(self) -> int:
        return len(self.hits)

    @property
    def value(self) -> float:
        return float(self.resampled(np.arange(self.n)[None, :])[0])

    @property
    def strata(self) -> np.ndarray | None:
        """Per sample, the group a resample draws it within (None: drawn from all samples)."""
        return self.groups if self.kind == "worst_group" else None

    def resampled(self, idx: np.ndarray) -> np.ndarray:
        """The metric on each row of sample indices (resamples x samples)."""
        hits = self.hits[idx]
        if self.kind in ("share", "mean"):
            return hits.mean(axis=1)
        if self.kind == "ratio":
            return hits.sum(axis=1) / self.weights[idx].sum(axis=1)
        if self.kind == "average_precision":
            return mean_average_precision(self.hits, self.ranking, _counts(idx, self.n))
        if self.kind == "macro_f1":
            return _macro_f1(self.classes[idx], self.predicted[idx])
        labels = self.groups if self.kind == "worst_group" else self.classes
        found, total = _per_label(hits, labels[idx], int(labels.max()) + 1)
        present = total > 0
        means = np.where(present, found / np.maximum(total, 1), 0.0)
        if self.kind == "worst_group":
            return np.where(present, means, np.inf).min(axis=1)
        return means.sum(axis=1) / present.sum(axis=1)

    def pairs_with(self, other: "Outcomes") -> bool:
        return self.kind == other.kind and np.array_equal(self.units, other.units)


def _per_label(hits: np.ndarray, labels: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(hits summed, samples counted) per row and label (0..k-1): two (rows x k) arrays."""
    rows = labels.shape[0]
    flat = (np.arange(rows)[:, None] * k + labels).ravel()
    total = np.bincount(flat, minlength=rows * k).reshape(rows, k)
    found = np.bincount(flat, weights=hits.ravel(), minlength=rows * k).reshape(rows, k)
    return found, total


def _macro_f1(true: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    """sklearn's `f1_score(average='macro', labels=<classes present in y_true>)` of each row: per class present,
    2 TP / (true + predicted), averaged (a class never predicted scores 0, as sklearn's zero division)."""
    rows, k = true.shape[0], int(max(true.max(initial=0), predicted.max(initial=0))) + 1
    base = np.arange(rows)[:, None] * k
    count = lambda values, weights=None: np.bincount((base + values).ravel(), weights, rows * k).reshape(rows, k)  # noqa: E731
    truth, guessed = count(true), count(predicted)
    correct = count(true, (true == predicted).ravel().astype(float))
    present = truth > 0
    f1 = np.where(present, 2 * correct / np.maximum(truth + guessed, 1), 0.0)
    return f1.sum(axis=1) / present.sum(axis=1)


def _counts(idx: np.ndarray, n: int) -> np.ndarray:
    """(samples x resamples): how often each resample drew each sample, in the narrowest type that holds it."""
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


def draw_indices(rng: np.random.Generator, n: int, rows: int, strata: np.ndarray | None = None) -> np.ndarray:
    """(rows x n) sample indices drawn with replacement: from all samples, or within each stratum (its size kept)."""
    if strata is None:
        return rng.integers(0, n, size=(rows, n))
    members = [np.flatnonzero(strata == s) for s in np.unique(strata)]
    return np.concatenate([m[rng.integers(0, len(m), size=(rows, len(m)))] for m in members], axis=1)


# ---------------------------------------------------------------- the outcomes the tasks' samples make


def has(samples: Mapping[str, np.ndarray], *names: str) -> bool:
    return set(names) <= set(samples)


def share(metric: str, hits: np.ndarray, units: np.ndarray) -> Outcomes:
    return Outcomes(metric, "share", np.asarray(hits, dtype=float), np.asarray(units))


def worst_group(metric: str, hits: np.ndarray, groups: np.ndarray) -> Outcomes:
    """The lowest mean of `hits` over the groups that hold a sample (wilds' `worst`, the minimum)."""
    groups = np.asarray(groups)
    return Outcomes(metric, "worst_group", np.asarray(hits, dtype=float), groups, groups=groups)


def per_sample(samples: Mapping[str, np.ndarray], metric: str) -> Outcomes | None:
    """A metric that is the mean of the per-sample array named as it (selection's 0/1 hits: a share; captioning's
    per-image CIDEr: a mean); None where there is no such array or it holds a non-finite value."""
    values = samples.get(metric)
    if values is None or not len(values) or not (values.dtype == bool or np.isfinite(values).all()):
        return None
    return Outcomes(metric, "share" if values.dtype == bool else "mean", values.astype(float), np.arange(len(values)))


def class_mean(metric: str, hits: np.ndarray, classes: np.ndarray) -> Outcomes:
    classes = np.asarray(classes)
    return Outcomes(metric, "class_mean", np.asarray(hits, dtype=float), classes, classes=classes)
