"""95% confidence intervals of a result's main metric from its per-sample outcomes. Pure numpy, with scipy.stats for the exact binomial quantiles.

A metric is a function of the dataset's samples (`Outcomes`), as the result's task declares it (`Task.statistics`:
no metric name is matched here); the interval says how far it could move on another draw of as many samples from the
same distribution, by the outcomes' kind:
- `binomial`: exact Clopper-Pearson, where the metric is a plain share of samples (acc1, acc5, text retrieval
  recall@k: an image counts as found when the best of its captions is in the top k);
- `bootstrap`: seeded percentile bootstrap over samples otherwise (mean per-class recall; image retrieval recall@k,
  a share of captions, resampled by image so that the captions of one image move together; mean average precision;
  macro F1; means of per-instance scores), drawn within each group for worst-group metrics, so every group keeps
  its size.
Every number is a fraction (0..1), as the metric.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np

from ..tasks import get_task, tasks
from ..tasks.statistics import BINOMIAL_KINDS, Outcomes, draw_indices, mean_average_precision  # noqa: F401 (re-exported)

CONFIDENCE = 0.95
RESAMPLES = 1000
SEED = 0
_CHUNK = 4_000_000  # resampled indices held at once (32 MB of int64)


def metric_outcomes(samples: Mapping[str, np.ndarray], metric: str, task: str | None = None) -> Outcomes | None:
    """The metric as a function of the samples, as the result's task declares it (its `statistics`); without a task,
    as the first task that can make it from these samples. None where they cannot give it."""
    asked = [get_task(task)] if task is not None else tasks()
    for owner in asked:
        found = owner.statistics(samples, metric) if owner.statistics is not None else None
        if found is not None:
            return found
    return None


def bootstrap_draws(outcomes: Sequence[Outcomes], rng: np.random.Generator, resamples: int = RESAMPLES) -> np.ndarray:
    """(len(outcomes), resamples): each result's metric on the same resamples of their (common) samples, drawn
    within the first one's groups where its kind keeps groups whole."""
    n, strata = outcomes[0].n, outcomes[0].strata
    out = np.empty((len(outcomes), resamples))
    step = max(1, _CHUNK // max(n, 1))
    for start in range(0, resamples, step):
        idx = draw_indices(rng, n, min(step, resamples - start), strata)
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
    shares = [i for i, o in enumerate(outcomes) if o is not None and o.kind in BINOMIAL_KINDS]
    if shares:
        found = np.array([outcomes[i].hits.sum() for i in shares])
        total = np.array([outcomes[i].n for i in shares], dtype=float)
        lows, highs = clopper_pearson(found, total, confidence)
        for i, low, high in zip(shares, lows, highs):
            o = outcomes[i]
            out[i] = Interval(o.metric, o.value, float(low), float(high), "binomial", o.n)
    for i, o in enumerate(outcomes):
        if o is not None and o.kind not in BINOMIAL_KINDS:
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
