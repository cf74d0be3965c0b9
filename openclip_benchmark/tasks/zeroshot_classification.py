"""Zero-shot classification: a classifier of prompt embeddings, top-1/top-5 accuracy and mean per-class recall.

The arithmetic is clip_benchmark 1.6.2's (metrics/zeroshot_classification.py): the same logits batch by batch under
the same autocast, and its own `accuracy`; the numbers are equal, not close. The same task with CuPL's class-specific
prompts (clip_benchmark's `--custom_template_file cupl_prompts.json`) is a task of its own, so its pairs, results and
leaderboard columns never mix with the dataset's own templates'.
"""

from __future__ import annotations

import functools
import json
import warnings
from dataclasses import replace
from pathlib import Path
from typing import Any

from ..core.errors import BenchmarkError
from ..core.pair import Pair
from . import Task

LOGIT_SCALE = 100.0  # clip_benchmark's fixed zero-shot logit scale
CLASS_FILES = ("classnames.txt", "zeroshot_classification_templates.txt")
DEFAULT_TEMPLATES = 18  # clip_benchmark's cifar-style template set, for datasets whose spec names no count
FALLBACK_CLASSES = 1000  # conservative: about ImageNet
CUPL_FILE = "cupl_prompts.json"
CUPL_DEFAULT = "imagenet1k"  # clip_benchmark looks a dataset up in a custom template file, then takes imagenet1k's
CUPL_PROMPTS_PER_CLASS = 150  # clip_benchmark 1.6.2's cupl_prompts.json: 149,700 prompts for ImageNet's 1000 classes


def classifier_group(dataset: str) -> str:
    """ImageNet variants index one 1000-class classifier (the -a/-r/-o subsets take its rows)."""
    return "imagenet1k" if dataset.startswith("imagenet") else dataset


def prompt_count(spec: Any, images: int) -> int:
    """Classes x templates: one text per class and template goes through the text tower."""
    classes = int(getattr(spec, "num_classes", 0) or FALLBACK_CLASSES)
    return classes * int(getattr(spec, "templates", 0) or DEFAULT_TEMPLATES)


def cupl_prompt_count(spec: Any, images: int) -> int:
    """Classes x CuPL's prompts per class (a constant, so the plan needs no clip_benchmark)."""
    return int(getattr(spec, "num_classes", 0) or FALLBACK_CLASSES) * CUPL_PROMPTS_PER_CLASS


def classifier_key(pair: Pair) -> str:
    return f"{classifier_group(pair.dataset)}|{pair.language}"


def cupl_classifier_key(pair: Pair) -> str:
    return f"{classifier_group(pair.dataset)}|{pair.language}|cupl"


def class_prompts(pair: Pair, encoded) -> tuple[list[str], list[str]]:
    """Class names and templates in the pair's language.

    A webdataset carries English ones only, and clip_benchmark keeps using them whatever `--language` says unless
    its own `<lang>_classnames.json` / `<lang>_zeroshot_classification_templates.json` are passed as custom files.
    We always take those files for another language, so a `jp` result is really scored with Japanese prompts.
    """
    if pair.language == encoded.prompts_language:  # English, or a task's own lists in the pair's language (Babel)
        return encoded.classnames, encoded.templates
    import clip_benchmark.datasets

    folder = Path(clip_benchmark.datasets.__file__).parent
    try:
        classnames = json.loads((folder / f"{pair.language}_classnames.json").read_text("utf-8"))[pair.dataset]
        templates = json.loads(
            (folder / f"{pair.language}_zeroshot_classification_templates.json").read_text("utf-8")
        )[pair.dataset]
    except (FileNotFoundError, KeyError):
        raise BenchmarkError(f"clip_benchmark has no {pair.language!r} class names or templates for {pair.dataset}") from None
    if len(classnames) != len(encoded.classnames):
        raise BenchmarkError(
            f"{pair.dataset} has {len(encoded.classnames)} classes but clip_benchmark's {pair.language!r} list has {len(classnames)}"
        )
    return list(classnames), list(templates)


@functools.lru_cache(maxsize=1)
def _cupl_file() -> dict[str, Any]:
    import clip_benchmark.datasets

    return json.loads((Path(clip_benchmark.datasets.__file__).parent / CUPL_FILE).read_text("utf-8"))


def cupl_prompts(pair: Pair, encoded) -> tuple[list[str], dict[str, list[str]]]:
    """Class names and CuPL's prompts for each, as clip_benchmark's `--custom_template_file cupl_prompts.json` picks
    them: the dataset's entry, else ImageNet's (the file holds only that, so ImageNet's variants take its prompts)."""
    prompts = _cupl_file()
    by_class = prompts.get(pair.dataset, prompts.get(CUPL_DEFAULT, {}))
    missing = [c for c in encoded.classnames if c not in by_class]
    if missing:
        raise BenchmarkError(f"CuPL has no prompts for class {missing[0]!r} of {pair.dataset} "
                             f"({len(missing)} of {len(encoded.classnames)} classes lack them)")
    return encoded.classnames, by_class


def zero_shot_logits(pair: Pair, loaded, encoded, cache, prompts=class_prompts):
    """(logits, targets) on the CPU: the pair's classifier (from the cache where it can) applied batch by batch;
    `prompts` gives the class names and their templates (or class-specific prompts)."""
    import torch

    if not encoded.classnames or not encoded.templates:
        raise BenchmarkError(f"dataset {pair.dataset} lacks {' or '.join(CLASS_FILES)}")
    classnames, templates = prompts(pair, encoded)
    language = None
    if "nllb-clip" in pair.model:  # NLLB-CLIP tokenizes per language, as clip_benchmark sets it
        from clip_benchmark.models.nllb_clip import set_language

        set_language(loaded.tokenizer, pair.language)
        language = pair.language
    classifier = cache.classifier(loaded, classnames, templates, language)
    return classifier_logits(loaded, encoded, classifier), torch.cat(encoded.targets)


def classifier_logits(loaded, encoded, classifier):
    """clip_benchmark's logits of a zero-shot classifier, batch by batch under the autocast, as floats on the CPU."""
    import torch

    with torch.no_grad():
        pred = []
        for image_features in encoded.image_features:
            with loaded.autocast():
                logits = LOGIT_SCALE * image_features @ classifier
            pred.append(logits.float().cpu())
    return torch.cat(pred)


def evaluate(pair: Pair, loaded, encoded, cache, prompts=class_prompts) -> dict[str, float]:
    """acc1, acc5 (NaN under five classes, as clip_benchmark) and mean per-class recall."""
    logits, target = zero_shot_logits(pair, loaded, encoded, cache, prompts)
    return classification_metrics(logits, target, top5=len(encoded.classnames) >= 5)


def classification_metrics(logits, target, top5: bool) -> dict[str, float]:
    """clip_benchmark's acc1, acc5 (NaN without `top5`) and mean per-class recall of float logits, shared by the
    zero-shot and linear-probe families."""
    from clip_benchmark.metrics.zeroshot_classification import accuracy
    from sklearn.metrics import balanced_accuracy_score

    if top5:
        acc1, acc5 = accuracy(logits, target, topk=(1, 5))
    else:
        (acc1,), acc5 = accuracy(logits, target, topk=(1,)), float("nan")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "y_pred contains classes not in y_true" on small sets
        recall = balanced_accuracy_score(target, logits.argmax(axis=1))
    return {"acc1": acc1, "acc5": acc5, "mean_per_class_recall": float(recall)}


def outcomes(pair: Pair, loaded, encoded, cache, prompts=class_prompts) -> dict[str, Any]:
    """Per image: its class, the predicted class (argmax, as mean per-class recall takes it) and whether the true class
    is in the top 1 and top 5 (clip_benchmark's `accuracy`: the same topk, so ties break the same way)."""
    logits, target = zero_shot_logits(pair, loaded, encoded, cache, prompts)
    return classification_outcomes(logits, target, top5=len(encoded.classnames) >= 5)


def classification_outcomes(logits, target, top5: bool) -> dict[str, Any]:
    """Per image, in order: its class, the argmax and the top-1 (and top-5) hits of the logits."""
    k = 5 if top5 else 1
    hit = logits.topk(k, 1, True, True)[1].eq(target.view(-1, 1))
    arrays = {"target": target.numpy(), "predicted": logits.argmax(axis=1).numpy(), "top1": hit[:, 0].numpy()}
    if k == 5:
        arrays["top5"] = hit.any(axis=1).numpy()
    return arrays


def statistics(samples, metric: str):
    """acc1 and acc5: the share of images with the true class in the top 1 or 5; mean per-class recall: the mean
    over the classes present of each class's share of right argmaxes."""
    from .statistics import class_mean, has, share

    if metric in ("acc1", "acc5") and has(samples, f"top{metric[-1]}", "target"):
        return share(metric, samples[f"top{metric[-1]}"], samples["target"])
    if metric == "mean_per_class_recall" and has(samples, "target", "predicted"):
        return class_mean(metric, samples["predicted"] == samples["target"], samples["target"])
    return None


TASK = Task(name="zeroshot_classification", dataset_type="classification", table="classification_metrics",
            metrics=("acc1", "acc5", "mean_per_class_recall"), main_metric="acc1", files=CLASS_FILES,
            prompts=prompt_count, classifier=classifier_key, evaluate=evaluate, outcomes=outcomes, statistics=statistics)

# zero-shot classification on the same data with CuPL's prompts: a pair of its own, in English only
CUPL = replace(TASK, name="zeroshot_classification_cupl", prompts=cupl_prompt_count, classifier=cupl_classifier_key,
               evaluate=functools.partial(evaluate, prompts=cupl_prompts),
               outcomes=functools.partial(outcomes, prompts=cupl_prompts), shares_data=True, languages=("en",),
               label="cupl")
