"""Model A against model B on the same images: per dataset they share, the difference in main metric with a
paired test and its 95% interval, and the same on the average over those datasets. Pure numpy (scipy.stats for the binomial).

- exact McNemar (two-sided binomial test on the discordant images) where the metric is a share of images
  (acc1, acc5, text retrieval recall@k); the interval of the difference is the paired bootstrap's;
- paired bootstrap over images otherwise (mean per-class recall, image retrieval recall@k): both models are scored
  on the same resamples, the p-value is the two-sided bootstrap one, (1 + draws on the far side of 0) / (1 + draws);
- the average: the same paired bootstrap, the images of every dataset resampled together from one seeded generator.

A resample of paired 0/1 outcomes is drawn as the multinomial counts of the four (A, B) cells, which is the same
distribution as resampling the images themselves, at no cost per image.
"""

from __future__ import annotations

import csv
import io
import os
from dataclasses import dataclass, field
from typing import Iterable

import numpy as np

from ..catalog import Catalog
from ..core.errors import BenchmarkError, UnknownNameError
from .intervals import RESAMPLES, SEED, Outcomes, bootstrap_draws, metric_outcomes, percentile_interval
from .parse import (ParseReport, dataset_column, load_samples, preprocess_text, read_result_files,
                    read_samples_file)

Side = tuple[str, str, str]  # (model, pretrained, preprocess)


@dataclass(frozen=True)
class Cell:
    """One side's main metric on one dataset column, with what it is made of when its samples are there."""

    metric: str
    value: float
    outcomes: Outcomes | None


@dataclass(frozen=True)
class PairedDifference:
    """Model A's main metric against model B's on one dataset column (or their average), tested on the same images."""

    dataset: str  # the leaderboard's column (dataset, or dataset/language)
    metric: str
    a: float
    b: float
    n: int | None = None  # images both were scored on
    low: float | None = None  # 95% interval of a - b (a fraction)
    high: float | None = None
    p_value: float | None = None
    test: str = ""  # mcnemar_exact | paired_bootstrap | "" (no test)
    note: str = ""

    @property
    def points(self) -> float:
        return 100.0 * (self.a - self.b)


@dataclass
class PairedComparison:
    a: Side
    b: Side
    rows: list[PairedDifference] = field(default_factory=list)
    average: PairedDifference | None = None
    untested: list[str] = field(default_factory=list)  # columns without paired per-sample outcomes


def label(side: Side) -> str:
    model, pretrained, preprocess = side
    return f"{model}/{pretrained}" if pretrained else model + (f" [{preprocess}]" if preprocess else "")


def resolve(spec: str, sides: Iterable[Side]) -> Side:
    """The side a `model` or `model/pretrained` (or `model:pretrained`) names; native preprocessing wins."""
    sides = sorted(set(sides))
    matches = [s for s in sides if spec == s[0] or (s[1] and spec in (f"{s[0]}/{s[1]}", f"{s[0]}:{s[1]}"))]
    if not matches:
        raise UnknownNameError("model (no results)", spec, sorted({label(s) for s in sides}))
    named = sorted({s[:2] for s in matches})
    if len(named) > 1:
        raise BenchmarkError(f"{spec!r} is ambiguous: name one of {', '.join(label((*n, '')) for n in named)}")
    native = [s for s in matches if not s[2]]
    if native or len(matches) == 1:
        return (native or matches)[0]
    raise BenchmarkError(f"{spec!r} has results at several preprocessings ({', '.join(s[2] for s in matches)}) "
                         "and none native; compare takes like with like")


def read_cells(results_dir: str | os.PathLike, catalog: Catalog, specs: tuple[str, str],
               report: ParseReport | None = None) -> tuple[Side, Side, dict, dict]:
    """The two sides the specs name and their cells by dataset column; files skipped go into `report`."""
    found = read_result_files(results_dir, catalog, report)
    sides = {(f.record.pair.model, f.record.pair.pretrained, preprocess_text(f.record.pair.preprocess)) for f in found}
    a, b = (resolve(spec, sides) for spec in specs)
    if a == b:
        raise BenchmarkError(f"{specs[0]!r} and {specs[1]!r} name the same model ({label(a)})")
    cells: dict[Side, dict[str, Cell]] = {a: {}, b: {}}
    for result in found:
        record, pair = result.record, result.record.pair
        side = (pair.model, pair.pretrained, preprocess_text(pair.preprocess))
        metric = catalog.main_metric(pair.dataset, pair.task)
        value = record.metrics.get(metric)
        if side not in cells or not isinstance(value, (int, float)):
            continue
        samples = load_samples(read_samples_file(results_dir, result.rel), result.digest)
        outcomes = metric_outcomes(samples, metric, pair.task) if samples is not None else None
        cells[side][dataset_column(pair.dataset, pair.language, catalog, pair.task)] = Cell(metric, float(value),
                                                                                              outcomes)
    return a, b, cells[a], cells[b]


def paired_draws(a: Outcomes, b: Outcomes, rng: np.random.Generator, resamples: int = RESAMPLES) -> np.ndarray:
    """a - b on `resamples` paired resamples of their images."""
    if a.kind == "share":
        hit_a, hit_b = a.hits > 0, b.hits > 0
        cells = np.array([np.sum(hit_a & hit_b), np.sum(hit_a & ~hit_b), np.sum(~hit_a & hit_b), np.sum(~hit_a & ~hit_b)])
        counts = rng.multinomial(a.n, cells / a.n, size=resamples)
        return (counts[:, 1] - counts[:, 2]) / a.n
    both = bootstrap_draws([a, b], rng, resamples)
    return both[0] - both[1]


def bootstrap_p(draws: np.ndarray) -> float:
    far = min(int(np.sum(draws <= 0)), int(np.sum(draws >= 0)))
    return min(1.0, 2 * (1 + far) / (1 + len(draws)))


def mcnemar_p(a: Outcomes, b: Outcomes) -> float:
    """Exact McNemar: the two-sided binomial test (p = 1/2) on the images exactly one of the two gets right."""
    from scipy.stats import binom

    only_a, only_b = int(np.sum((a.hits > 0) & (b.hits == 0))), int(np.sum((a.hits == 0) & (b.hits > 0)))
    if only_a == only_b:
        return 1.0
    return min(1.0, 2 * float(binom.cdf(min(only_a, only_b), only_a + only_b, 0.5)))


def compare_cells(a: Side, b: Side, cells_a: dict[str, Cell], cells_b: dict[str, Cell], seed: int = SEED,
                  resamples: int = RESAMPLES) -> PairedComparison:
    common = sorted(set(cells_a) & set(cells_b))
    if not common:
        raise BenchmarkError(f"{label(a)} and {label(b)} have no dataset in common "
                             f"({label(a)}: {', '.join(sorted(cells_a)) or 'none'}; "
                             f"{label(b)}: {', '.join(sorted(cells_b)) or 'none'})")
    out = PairedComparison(a, b)
    paired: list[tuple[Outcomes, Outcomes]] = []
    for column in common:
        ca, cb = cells_a[column], cells_b[column]
        oa, ob = ca.outcomes, cb.outcomes
        if ca.metric != cb.metric:
            note = f"main metrics differ ({ca.metric} vs {cb.metric})"
        elif oa is None or ob is None:
            note = "no per-sample outcomes for " + " and ".join(label(s) for s, o in ((a, oa), (b, ob)) if o is None)
        elif not oa.pairs_with(ob):
            note = "the two were not scored on the same images in the same order"
        else:
            draws = paired_draws(oa, ob, np.random.default_rng(seed), resamples)
            low, high = percentile_interval(draws)
            test, p = ("mcnemar_exact", mcnemar_p(oa, ob)) if oa.kind == "share" else ("paired_bootstrap", bootstrap_p(draws))
            out.rows.append(PairedDifference(column, ca.metric, ca.value, cb.value, oa.n, low, high, p, test))
            paired.append((oa, ob))
            continue
        out.untested.append(column)
        out.rows.append(PairedDifference(column, ca.metric, ca.value, cb.value, note=note))
    mean_a, mean_b = (float(np.mean([r.a for r in out.rows])), float(np.mean([r.b for r in out.rows])))
    if out.untested:
        out.average = PairedDifference("average", "main metric", mean_a, mean_b,
                                       note=f"no test: {len(out.untested)} of {len(common)} datasets lack paired samples")
    else:
        rng = np.random.default_rng(seed)
        draws = np.mean([paired_draws(oa, ob, rng, resamples) for oa, ob in paired], axis=0)
        low, high = percentile_interval(draws)
        out.average = PairedDifference("average", "main metric", mean_a, mean_b, sum(oa.n for oa, _ in paired), low,
                                       high, bootstrap_p(draws), "paired_bootstrap")
    return out


COLUMNS = ["dataset", "metric", "n_samples", "a", "b", "difference_points", "ci_low_points", "ci_high_points",
           "p_value", "test", "note"]


def comparison_csv(comparison: PairedComparison) -> str:
    buf = io.StringIO(newline="")
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(COLUMNS)
    for d in [*comparison.rows, comparison.average]:
        writer.writerow([d.dataset, d.metric, "" if d.n is None else d.n, repr(d.a), repr(d.b), f"{d.points:.4f}",
                         *("" if v is None else f"{100 * v:.4f}" for v in (d.low, d.high)),
                         "" if d.p_value is None else f"{d.p_value:.6g}", d.test, d.note])
    return buf.getvalue()
