"""The tests' suite of stand-ins: catalog-named tiny datasets and models, built with `openclip_benchmark.synthetic`.

The builders are re-exported so a test imports its fixtures from one place."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from openclip_benchmark.synthetic import (  # noqa: F401  (re-exported for the tests)
    TEMPLATES,
    make_classification_wds,
    make_multilabel_wds,
    make_retrieval_wds,
    make_tiny_model,
)

SUITE_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog")
SUITE_TASKS = {"imagenet1k": "zeroshot_classification", "voc2007_multilabel": "multilabel",
               "mscoco_captions": "zeroshot_retrieval"}


@dataclass(frozen=True)
class Suite:
    """Two tiny models and one dataset per task, named like the catalog's so that names resolve as in production."""

    root: Path
    models: tuple[str, ...]
    tasks: dict = field(default_factory=lambda: dict(SUITE_TASKS))


def make_suite(root, n: int = 24) -> Suite:
    make_classification_wds(root, "imagenet1k", n=n, classes=SUITE_CLASSES)
    make_multilabel_wds(root, "voc2007_multilabel", n=n)
    make_retrieval_wds(root, "mscoco_captions", n=n)
    models = (make_tiny_model(root, "tiny_a", seed=0), make_tiny_model(root, "tiny_b", seed=1))
    return Suite(Path(root), models)
