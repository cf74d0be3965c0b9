"""Babel-ImageNet: zero-shot classification of ImageNet's validation images in ~90 languages, each with its own
subset of ImageNet's classes (the ones its translators could name) and its own 80 prompt templates.

clip_benchmark 1.6.2 (`datasets/builder.py`, `babel_imagenet.py`) takes, for a language L, `babel_imagenet.json[L]` =
(class indices, names) and `nllb_dist13b_prompts.json[L]` (`{}` marking the class), keeps the images of those classes
and numbers them by their position in the list; the metrics are its zero-shot classification's. Here the images are
ImageNet's webdataset (the data of `imagenet1k`), encoded once for every language, and each language's pair takes its
classes' rows; the arithmetic is `zeroshot_classification`'s. clip_benchmark writes these results as
`zeroshot_classification`, the alias this task answers to.
"""

from __future__ import annotations

import functools
import importlib.util
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

from ..core.errors import BenchmarkError
from ..core.pair import Pair
from . import no_classifier
from . import zeroshot_classification as zeroshot

IMAGENET_CLASSES = 1000


@functools.lru_cache(maxsize=1)
def _tables() -> tuple[dict, dict]:
    """(babel_imagenet.json, nllb_dist13b_prompts.json) from the installed clip_benchmark, read without importing it."""
    spec = importlib.util.find_spec("clip_benchmark")
    if spec is None or not spec.submodule_search_locations:
        raise BenchmarkError("Babel-ImageNet needs clip_benchmark's class lists: install clip-benchmark")
    folder = Path(list(spec.submodule_search_locations)[0]) / "datasets"
    return (json.loads((folder / "babel_imagenet.json").read_text("utf-8")),
            json.loads((folder / "nllb_dist13b_prompts.json").read_text("utf-8")))


def languages() -> tuple[str, ...]:
    """The languages clip_benchmark can evaluate: those with both class names and templates (90 of its 93)."""
    names, templates = _tables()
    return tuple(sorted(lang.lower() for lang in set(names) & set(templates)))


def babel_classes(language: str) -> tuple[list[int], list[str], list[str]]:
    """(ImageNet class indices, their names, templates) of one language, as clip_benchmark builds them."""
    names, templates = _tables()
    key = language.upper()
    if key not in names or key not in templates:
        raise BenchmarkError(f"Babel-ImageNet has no {language!r}; it has {', '.join(languages())}")
    idxs, classnames = names[key]
    return list(idxs), list(classnames), [t.replace("{}", "{c}") for t in templates[key]]


def babel_view(pair: Pair, encoded):
    """The encoding as clip_benchmark's Babel-ImageNet in the pair's language sees it: the images of its classes,
    labelled by their position in its class list, with its class names and templates."""
    import torch

    idxs, classnames, templates = babel_classes(pair.language)
    if len(encoded.classnames) not in (0, IMAGENET_CLASSES):
        raise BenchmarkError(f"Babel-ImageNet reads ImageNet's 1000 classes; dataset {pair.dataset} has "
                             f"{len(encoded.classnames)}")
    position = torch.full((IMAGENET_CLASSES,), -1, dtype=torch.long)
    position[torch.tensor(idxs)] = torch.arange(len(idxs))
    features, targets = [], []
    for batch, target in zip(encoded.image_features, encoded.targets):
        mapped = position[target]
        keep = mapped >= 0
        if keep.any():
            features.append(batch[keep.to(batch.device)])
            targets.append(mapped[keep])
    if not features:
        raise BenchmarkError(f"dataset {pair.dataset} has no image of Babel-ImageNet's {pair.language!r} classes")
    return replace(encoded, classnames=classnames, templates=templates, prompts_language=pair.language,
                   image_features=features, targets=targets)


def evaluate(pair: Pair, loaded, encoded, cache) -> dict[str, float]:
    return zeroshot.evaluate(pair, loaded, babel_view(pair, encoded), cache)


def outcomes(pair: Pair, loaded, encoded, cache) -> dict[str, Any]:
    return zeroshot.outcomes(pair, loaded, babel_view(pair, encoded), cache)


def prompt_count(spec: Any, images: int, language: str = "en") -> int:
    """The language's classes x its templates."""
    idxs, _, templates = babel_classes(language)
    return len(idxs) * len(templates)


# zero-shot classification with the language's own lists, on the classification data zero-shot reads
TASK = replace(zeroshot.TASK, name="babel_zeroshot_classification", files=(), aliases=("zeroshot_classification",),
               shares_data=True, classifier=no_classifier, evaluate=evaluate, outcomes=outcomes,
               language_prompts=prompt_count)
