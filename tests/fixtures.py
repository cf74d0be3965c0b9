"""The tests' suite of stand-ins: catalog-named tiny datasets and models (built with `openclip_benchmark.synthetic`,
re-exported so a test imports its fixtures from one place), the images a loopback image host serves, and valid
result records with plausible metrics (not evaluated). The benchmarks build from here too."""

from __future__ import annotations

import itertools
import random
from dataclasses import dataclass, field
from pathlib import Path

from openclip_benchmark.core.pair import Pair, Preprocess
from openclip_benchmark.core.records import make_result
from openclip_benchmark.synthetic import (  # noqa: F401  (re-exported for the tests)
    NOUNS,
    TEMPLATES,
    image_png,
    make_classification_wds,
    make_multilabel_wds,
    make_retrieval_wds,
    make_tiny_model,
    tint,
)
from openclip_benchmark.tasks import get_task

HANG_S = 1800  # how long a subprocess or thread may run before a test calls it hung: a bound on hangs, never a speed
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


def sample_image(index: int, size: int = 32) -> bytes:
    """A PNG of its own for each index: the images a loopback image host serves for captions."""
    return image_png(random.Random(index), size, tint(index % len(NOUNS), len(NOUNS)))


# ---------------------------------------------------------------- result records

RESULT_MODELS = (
    ("ViT-B-32", "openai"),
    ("ViT-B-32", "laion2b_s34b_b79k"),
    ("ViT-B-16", "openai"),
    ("ViT-B-16", "laion2b_s34b_b88k"),
    ("ViT-L-14", "openai"),
    ("ViT-L-14", "laion2b_s32b_b82k"),
    ("RN50", "openai"),
    ("convnext_base_w", "laion2b_s13b_b82k"),
)
RESULT_DATASETS = {
    **dict.fromkeys(("cifar10", "cifar100", "imagenet1k", "imagenetv2", "imagenet-r", "stl10", "dtd", "eurosat",
                     "gtsrb", "pets"), "zeroshot_classification"),
    "mscoco_captions": "zeroshot_retrieval",
    "flickr30k": "zeroshot_retrieval",
    "voc2007_multilabel": "multilabel",
}


def synthetic_pairs(n: int) -> list[Pair]:
    """n distinct pairs over real model and dataset names (resolution overrides make as many as needed)."""
    pairs = []
    for size in itertools.chain([None], itertools.count(160, 32)):
        for model, pretrained in RESULT_MODELS:
            for dataset, task in RESULT_DATASETS.items():
                pairs.append(Pair(model, pretrained, dataset, task=task, preprocess=Preprocess(image_size=size)))
                if len(pairs) == n:
                    return pairs


def synthetic_result(pair: Pair, seed: int = 0) -> dict:
    """A valid result record with plausible metrics and run data (not evaluated)."""
    rng = random.Random(f"{pair.id}-{seed}")
    metrics = {name: rng.random() for name in get_task(pair.task).metrics}
    seconds = 30 + 300 * rng.random()
    run = {
        "started": "2026-11-20T10:00:00+00:00",
        "finished": f"2026-11-20T10:{seed % 60:02d}:00+00:00",
        "seconds": seconds,
        "images_per_s": 10000 / seconds,
        "device": "cuda",
        "gpu_name": "NVIDIA A10G",
        "precision": "amp",
        "batch_size": 64,
        "shard_id": f"shard-{rng.randrange(50):03d}",
    }
    return make_result(pair, metrics, run)
