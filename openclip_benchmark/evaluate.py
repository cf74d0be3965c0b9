"""Evaluation with clip_benchmark's arithmetic, without its per-pair overheads.

clip_benchmark loads the model, builds the zero-shot classifier and reads the dataset again for every pair. Here a
model is loaded once, a dataset is encoded once per model (all pairs on it reuse the image features), and classifier
columns are cached per class. Every tensor operation that reaches a metric is the one clip_benchmark 1.6.2 performs,
in the same order, batch by batch and under the same autocast, and the metric functions are clip_benchmark's own:
the numbers are equal, not close. torch and open_clip are imported inside the functions that need them.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from .core.errors import BenchmarkError
from .core.pair import Pair, Preprocess

LOGIT_SCALE = 100.0  # clip_benchmark's fixed zero-shot logit scale
RECALL_K = (1, 5, 10)
SPLIT = "test"
DATASET_TYPE_FOR_TASK = {
    "zeroshot_classification": "classification",
    "multilabel": "multilabel",
    "zeroshot_retrieval": "retrieval",
}


class DatasetTaskError(BenchmarkError):
    """The dataset folder holds another kind of data than the pair's task needs."""


def resolve_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise BenchmarkError(f"device {device} was asked for, but torch sees no CUDA GPU")
    return device


def resolve_precision(precision: str, device: str) -> str:
    """`auto` is clip_benchmark's autocast on GPU (its `--amp` default) and plain fp32 on CPU."""
    if precision != "auto":
        return precision
    return "amp" if device.startswith("cuda") else "fp32"


@dataclass
class LoadedModel:
    text_key: tuple[str, str]  # what the text tower depends on: (model, pretrained), not the image preprocessing
    model: Any
    transform: Any
    tokenizer: Any
    device: str
    precision: str  # resolved: fp32 | amp | amp_bf16

    def autocast(self):
        import torch

        kind = torch.device(self.device).type
        if self.precision == "fp32":
            return torch.autocast(kind, enabled=False)
        if self.precision == "amp_bf16":
            return torch.autocast(kind, dtype=torch.bfloat16)
        return torch.autocast(kind)


def load_model(model: str, pretrained: str, preprocess: Preprocess, device: str, precision: str,
               cache_dir: str | None = None) -> LoadedModel:
    """An OpenCLIP model (tag, `local-dir:`, `hf-hub:` or checkpoint path) with the preprocessing overrides applied."""
    import open_clip

    net, _, transform = open_clip.create_model_and_transforms(
        model,
        pretrained=pretrained or None,
        cache_dir=cache_dir,
        device=device,
        force_image_size=preprocess.image_size,
        image_mean=preprocess.mean,
        image_std=preprocess.std,
        image_interpolation=preprocess.interpolation,
        image_resize_mode=preprocess.resize_mode,
    )
    net.eval()
    tokenizer = open_clip.get_tokenizer(model, cache_dir=cache_dir)
    return LoadedModel((model, pretrained), net, transform, tokenizer, device, precision)


class ClassifierCache:
    """Zero-shot classifier columns of one text tower, one per (language, templates, class name).

    clip_benchmark computes each class's column from that class's prompts alone, so a classifier is a stack of
    independent columns: datasets with the same classes (imagenet1k, imagenetv2, imagenet_sketch) or a subset of
    them (imagenet-a/-r/-o) reuse them, and so does every image-size variant of the same model.
    """

    def __init__(self):
        self._columns: dict[tuple, Any] = {}
        self.hits = 0
        self.misses = 0

    def classifier(self, loaded: LoadedModel, classnames: list[str], templates: list[str], language: str | None = None):
        """`language` matters only to tokenizers that depend on it (NLLB-CLIP)."""
        import torch
        import torch.nn.functional as F

        prefix = (loaded.precision, loaded.device, language, tuple(templates))
        with torch.no_grad(), loaded.autocast():
            columns = []
            for classname in classnames:
                key = prefix + (classname,)
                column = self._columns.get(key)
                if column is None:
                    self.misses += 1
                    texts = loaded.tokenizer([template.format(c=classname) for template in templates]).to(loaded.device)
                    class_embeddings = loaded.model.encode_text(texts)
                    column = F.normalize(class_embeddings, dim=-1).mean(dim=0)
                    column /= column.norm()
                    self._columns[key] = column
                else:
                    self.hits += 1
                columns.append(column)
            return torch.stack(columns, dim=1).to(loaded.device)


@dataclass
class EncodedDataset:
    """One pass over a dataset with one model: per-batch features exactly as clip_benchmark computes them."""

    kind: str  # classification | multilabel | retrieval
    classnames: list[str] = field(default_factory=list)
    templates: list[str] = field(default_factory=list)
    image_features: list[Any] = field(default_factory=list)  # per batch, on the device
    targets: list[Any] = field(default_factory=list)  # per batch, on the CPU
    text_features: list[Any] = field(default_factory=list)  # retrieval: per batch, on the CPU
    text_image_index: list[int] = field(default_factory=list)
    num_samples: int = 0
    seconds: float = 0.0

    @property
    def images_per_s(self) -> float:
        return self.num_samples / self.seconds if self.seconds > 0 else 0.0


def dataset_type(folder: Path) -> str:
    """clip_benchmark's reading of `dataset_type.txt` (absent means classification)."""
    path = folder / "dataset_type.txt"
    return path.read_text().strip().lower() if path.is_file() else "classification"


def folder_task(folder: Path) -> str:
    """The task a dataset folder's data serves, for datasets the catalog does not know."""
    kind = dataset_type(folder)
    for task, wanted in DATASET_TYPE_FOR_TASK.items():
        if kind == wanted:
            return task
    raise DatasetTaskError(f"{folder}: unknown dataset_type.txt value {kind!r}")


def check_task(pair: Pair, kind: str) -> None:
    wanted = DATASET_TYPE_FOR_TASK[pair.task]
    if kind != wanted:
        raise DatasetTaskError(f"dataset {pair.dataset} holds {kind} data, but the pair's task is {pair.task}")


def _read_lines(path: Path) -> list[str]:
    return [line.strip() for line in path.read_text().splitlines()] if path.is_file() else []


def encode_dataset(loaded: LoadedModel, folder: Path, batch_size: int, num_workers: int,
                   on_batch: Callable[[int], None] | None = None) -> EncodedDataset:
    """Read a webdataset folder once with clip_benchmark's own reader and encode it with the model."""
    import torch
    import torch.nn.functional as F
    from clip_benchmark.datasets.builder import build_wds_dataset

    folder = Path(folder)
    kind = dataset_type(folder)
    out = EncodedDataset(kind, _read_lines(folder / "classnames.txt"),
                         _read_lines(folder / "zeroshot_classification_templates.txt"))
    nshards = int((folder / SPLIT / "nshards.txt").read_text().strip())
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*shardshuffle.*")
        dataset = build_wds_dataset(folder.name, transform=loaded.transform, split=SPLIT, data_dir=str(folder))
        # webdataset gives each loader worker whole shards: more workers than shards would idle or fail
        loader = torch.utils.data.DataLoader(dataset.batched(batch_size), batch_size=None, shuffle=False,
                                             num_workers=min(num_workers, nshards))
        start = time.perf_counter()
        with torch.no_grad():
            for images, labels in loader:
                images = images.to(loaded.device)
                if kind == "retrieval":
                    tokens = loaded.tokenizer([text for texts in labels for text in texts]).to(loaded.device)
                    with loaded.autocast():
                        image_emb = F.normalize(loaded.model.encode_image(images), dim=-1)
                        text_emb = F.normalize(loaded.model.encode_text(tokens), dim=-1)
                    out.image_features.append(image_emb.cpu())
                    out.text_features.append(text_emb.cpu())
                    out.text_image_index.extend(out.num_samples + i for i, texts in enumerate(labels) for _ in texts)
                else:
                    with loaded.autocast():
                        out.image_features.append(F.normalize(loaded.model.encode_image(images), dim=-1))
                    out.targets.append(labels.cpu())
                out.num_samples += len(images)
                if on_batch:
                    on_batch(len(images))
        if loaded.device.startswith("cuda"):
            torch.cuda.synchronize()
        out.seconds = time.perf_counter() - start
    if out.num_samples == 0:
        raise BenchmarkError(f"dataset folder {folder} has no samples in its {SPLIT} split")
    return out


def classification_metrics(loaded: LoadedModel, encoded: EncodedDataset, classifier) -> dict[str, float]:
    """acc1/acc5/mean per-class recall, or mean average precision for multilabel data, as clip_benchmark reports."""
    import torch
    from clip_benchmark.metrics.zeroshot_classification import accuracy, average_precision_per_class
    from sklearn.metrics import balanced_accuracy_score

    with torch.no_grad():
        pred = []
        for image_features in encoded.image_features:
            with loaded.autocast():
                logits = LOGIT_SCALE * image_features @ classifier
            pred.append(logits.float().cpu())
    logits, target = torch.cat(pred), torch.cat(encoded.targets)
    if encoded.kind == "multilabel":
        if target.dim() != 2:
            raise DatasetTaskError("multilabel data must have one multi-hot label vector per image")
        return {"mean_average_precision": average_precision_per_class(logits, target).mean().item()}
    if len(encoded.classnames) >= 5:
        acc1, acc5 = accuracy(logits, target, topk=(1, 5))
    else:
        (acc1,), acc5 = accuracy(logits, target, topk=(1,)), float("nan")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "y_pred contains classes not in y_true" on small sets
        recall = balanced_accuracy_score(target, logits.argmax(axis=1))
    return {"acc1": acc1, "acc5": acc5, "mean_per_class_recall": float(recall)}


def retrieval_metrics(loaded: LoadedModel, encoded: EncodedDataset, recall_k=RECALL_K) -> dict[str, float]:
    """Image and text recall@k as clip_benchmark computes them (an image or text counts if any match is in the top k)."""
    import torch
    from clip_benchmark.metrics.zeroshot_retrieval import batchify, recall_at_k

    images_emb, texts_emb = torch.cat(encoded.image_features), torch.cat(encoded.text_features)
    scores = texts_emb @ images_emb.t()
    positive_pairs = torch.zeros_like(scores, dtype=bool)
    positive_pairs[torch.arange(len(scores)), encoded.text_image_index] = True
    batch_size = len(encoded.image_features[0])
    metrics = {}
    for k in recall_k:
        if k > len(images_emb):
            raise BenchmarkError(f"recall@{k} needs at least {k} images; the dataset has {len(images_emb)}")
        image_hits = batchify(recall_at_k, scores, positive_pairs, batch_size, loaded.device, k=k)
        text_hits = batchify(recall_at_k, scores.T, positive_pairs.T, batch_size, loaded.device, k=k)
        metrics[f"image_retrieval_recall@{k}"] = (image_hits > 0).float().mean().item()
        metrics[f"text_retrieval_recall@{k}"] = (text_hits > 0).float().mean().item()
    return metrics


def pair_metrics(pair: Pair, loaded: LoadedModel, encoded: EncodedDataset, cache: ClassifierCache) -> dict[str, float]:
    """The metrics of one pair from its dataset's encoding; classification uses (and fills) the classifier cache."""
    check_task(pair, encoded.kind)
    if encoded.kind == "retrieval":
        return retrieval_metrics(loaded, encoded)
    if not encoded.classnames or not encoded.templates:
        raise BenchmarkError(f"dataset {pair.dataset} lacks classnames.txt or zeroshot_classification_templates.txt")
    classnames, templates = class_prompts(pair, encoded)
    language = None
    if "nllb-clip" in pair.model:  # NLLB-CLIP tokenizes per language, as clip_benchmark sets it
        from clip_benchmark.models.nllb_clip import set_language

        set_language(loaded.tokenizer, pair.language)
        language = pair.language
    classifier = cache.classifier(loaded, classnames, templates, language)
    return classification_metrics(loaded, encoded, classifier)


def class_prompts(pair: Pair, encoded: EncodedDataset) -> tuple[list[str], list[str]]:
    """Class names and templates in the pair's language.

    A webdataset carries English ones only, and clip_benchmark keeps using them whatever `--language` says unless
    its own `<lang>_classnames.json` / `<lang>_zeroshot_classification_templates.json` are passed as custom files.
    We always take those files for another language, so a `jp` result is really scored with Japanese prompts.
    """
    if pair.language == "en":
        return encoded.classnames, encoded.templates
    import json

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
