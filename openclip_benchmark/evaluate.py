"""Evaluation with clip_benchmark's arithmetic, without its per-pair overheads.

clip_benchmark loads the model, builds the zero-shot classifier and reads the dataset again for every pair. Here a
model is loaded once, each split of a dataset is encoded once per model (all pairs on it reuse the image features:
zero-shot and linear-probe pairs share the test split's pass), and classifier columns are cached per class. Every
tensor operation that reaches a metric is the one clip_benchmark 1.6.2 performs, in the same order, batch by batch
and under the same autocast, and the metric functions (in the task modules, `tasks/`) are clip_benchmark's own: the
numbers are equal, not close. torch and open_clip are imported inside the functions that need them.
"""

from __future__ import annotations

import contextlib
import platform
import time
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Iterable

from .core.errors import BenchmarkError
from .core.pair import Pair, Preprocess
from .tasks import DatasetTaskError, get_task, task_for_dataset_type

SPLIT = "test"  # the split a dataset the catalog lacks is scored on


def versions() -> dict[str, str]:
    """What a measurement depends on: the versions of torch, open_clip, clip_benchmark, this package and python."""
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for key, dist in (("torch", "torch"), ("open_clip", "open_clip_torch"), ("clip_benchmark", "clip_benchmark"),
                      ("openclip_benchmark", "openclip-benchmark")):
        try:
            out[key] = version(dist)
        except PackageNotFoundError:
            out[key] = ""
    out["python"] = platform.python_version()
    return out


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

    if model.startswith("hf-hub:"):  # fetched first: open_clip goes on with random weights when this download fails
        open_clip.pretrained.download_pretrained_from_hf(model.removeprefix("hf-hub:"), cache_dir=cache_dir)
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

    def classifier(self, loaded: LoadedModel, classnames: list[str], templates: list[str] | dict[str, list[str]],
                   language: str | None = None):
        """`templates` as clip_benchmark takes them: `{c}` templates, or each class's own prompts (CuPL); `language`
        matters only to tokenizers that depend on it (NLLB-CLIP)."""
        import torch
        import torch.nn.functional as F

        prefix = (loaded.precision, loaded.device, language)
        shared = None if isinstance(templates, dict) else tuple(templates)
        with torch.no_grad(), loaded.autocast():
            columns = []
            for classname in classnames:
                key = prefix + (shared if shared is not None else tuple(templates[classname]), classname)
                column = self._columns.get(key)
                if column is None:
                    self.misses += 1
                    prompts = [t.format(c=classname) for t in shared] if shared is not None else templates[classname]
                    texts = loaded.tokenizer(prompts).to(loaded.device)
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

    kind: str  # the dataset_type.txt value: classification | multilabel | retrieval | a registered task's
    classnames: list[str] = field(default_factory=list)
    templates: list[str] = field(default_factory=list)
    prompts_language: str = "en"  # the language of `classnames` and `templates`
    image_features: list[Any] = field(default_factory=list)  # per batch, on the device
    targets: list[Any] = field(default_factory=list)  # per batch, on the CPU
    text_features: list[Any] = field(default_factory=list)  # retrieval: per batch, on the CPU
    text_image_index: list[int] = field(default_factory=list)
    # the sample members its tasks asked for beyond clip_benchmark's tuple (`npy`: DataComp's metadata rows),
    # name -> one value per sample: an array (rows in sample order) or a list
    members: dict[str, Any] = field(default_factory=dict)
    # retrieval in further languages: language -> (its captions' features per batch, each caption's image)
    languages: dict[str, tuple[list[Any], list[int]]] = field(default_factory=dict)
    extras: dict[str, dict[str, list]] = field(default_factory=dict)  # task -> what its `batch` hook gathered
    num_samples: int = 0
    seconds: float = 0.0
    split: str = SPLIT
    spec: Any = None  # the catalog's entry of the dataset (None: a dataset it lacks)
    # the same model's encodings of the dataset's other splits a pair learns from (a linear probe's train split)
    fit: dict[str, "EncodedDataset"] = field(default_factory=dict)
    fitted: dict[Pair, Any] = field(default_factory=dict)  # what a task learned from them per pair, for its outcomes

    @property
    def images_per_s(self) -> float:
        return self.num_samples / self.seconds if self.seconds > 0 else 0.0

    def in_language(self, language: str) -> "EncodedDataset":
        """The encoding with the captions of `language` in place of the English ones (the same image features)."""
        if language not in self.languages:
            if language != "en" and (self.languages or self.text_image_index):
                raise DatasetTaskError(f"the encoding holds no {language} captions (English: `txt`, others `<lang>.txt`)")
            return self
        features, index = self.languages[language]
        return replace(self, text_features=features, text_image_index=index)

    def features(self):
        """(image features, targets) of the whole split on the CPU, in the order read."""
        import torch

        return torch.cat([f.cpu() for f in self.image_features]), torch.cat(self.targets)


def dataset_type(folder: Path) -> str:
    """clip_benchmark's reading of `dataset_type.txt` (absent means classification)."""
    path = folder / "dataset_type.txt"
    return path.read_text().strip().lower() if path.is_file() else "classification"


def folder_task(folder: Path) -> str:
    """The task a dataset folder's data serves, for datasets the catalog does not know."""
    try:
        return task_for_dataset_type(dataset_type(folder)).name
    except DatasetTaskError as exc:
        raise DatasetTaskError(f"{folder}: {exc}") from None


def check_task(pair: Pair, kind: str) -> None:
    if get_task(pair.task).dataset_type != kind:
        raise DatasetTaskError(f"dataset {pair.dataset} holds {kind} data, but the pair's task is {pair.task}")


def _read_lines(path: Path) -> list[str]:
    return [line.strip() for line in path.read_text().splitlines()] if path.is_file() else []


def encode_captioned(loaded: LoadedModel, images, texts: list[str]):
    """One batch of images (on the device) and their captions, flattened: L2-normalised embeddings on the CPU, as
    clip_benchmark's retrieval computes them (captions over the context are truncated by the model's tokenizer)."""
    import torch
    import torch.nn.functional as F

    tokens = loaded.tokenizer(texts).to(loaded.device)
    with torch.no_grad(), loaded.autocast():
        image_emb = F.normalize(loaded.model.encode_image(images), dim=-1)
        text_emb = F.normalize(loaded.model.encode_text(tokens), dim=-1)
    return image_emb.cpu(), text_emb.cpu()


def sample_members(pairs: Iterable[Pair]) -> tuple[str, ...] | None:
    """The members one pass over a dataset keeps for these pairs' tasks: None where every task reads clip_benchmark's
    tuple, else those the tasks declare (plus `cls`, the labels, for a task that declares none)."""
    declared = [get_task(p.task).members for p in pairs]
    if all(m is None for m in declared):
        return None
    plain = ("cls",) if any(m is None for m in declared) else ()
    return tuple(dict.fromkeys(name for m in [plain, *declared] if m for name in m))


IMAGE_EXTENSIONS = ["webp", "png", "jpg", "jpeg"]  # clip_benchmark's wds reader's, in its order


def _with_members(dataset, transform, members: tuple[str, ...]):
    """clip_benchmark's reader of the folder, its tuple stage replaced: the image as it decodes and transforms it,
    then each member as decoded (its last two stages are always `to_tuple` and `map_tuple`)."""
    import copy

    decoded = copy.copy(dataset)
    decoded.pipeline = dataset.pipeline[:-2]
    return decoded.to_tuple(IMAGE_EXTENSIONS, *members).map_tuple(transform, *(None for _ in members))


def encode_captions(loaded: LoadedModel, texts: list[str], language: str):
    """Captions of one language through the text tower, as clip_benchmark's retrieval in that language encodes them
    (NLLB-CLIP tokenizes per language, set as its CLI sets it)."""
    import torch
    import torch.nn.functional as F

    if "nllb-clip" in loaded.text_key[0]:
        from clip_benchmark.models.nllb_clip import set_language

        set_language(loaded.tokenizer, language)
    tokens = loaded.tokenizer(texts).to(loaded.device)
    with torch.no_grad(), loaded.autocast():
        return F.normalize(loaded.model.encode_text(tokens), dim=-1).cpu()


def caption_key(language: str) -> str:
    """English captions are `txt` (what clip_benchmark's reader reads); another language's are `<language>.txt`."""
    return "txt" if language == "en" else f"{language}.txt"


def read_multilingual(folder: Path, transform, languages: list[str], split: str = SPLIT):
    """clip_benchmark's retrieval reader (same decoding, same order) yielding each language's captions of an image."""
    import webdataset as wds

    nshards = int((folder / split / "nshards.txt").read_text().strip())
    pattern = str(folder / split / ("{0..%d}.tar" % (nshards - 1)))

    def prepare(sample):
        image = next((sample[ext] for ext in IMAGE_EXTENSIONS if ext in sample), None)
        missing = [lang for lang in languages if caption_key(lang) not in sample]
        if image is None or missing:
            what = f"{', '.join(missing)} captions ({', '.join(map(caption_key, missing))})" if missing else "an image"
            raise DatasetTaskError(f"dataset {folder.name}: sample {sample.get('__key__')!r} has no {what}")
        return transform(image), {lang: sample[caption_key(lang)].splitlines() for lang in languages}

    return (wds.WebDataset(pattern, nodesplitter=lambda src: src, shardshuffle=False)
            .decode(wds.autodecode.ImageHandler("pil", extensions=IMAGE_EXTENSIONS)).map(prepare))


def encode_dataset(loaded: LoadedModel, folder: Path, batch_size: int, num_workers: int,
                   on_batch: Callable[[int], None] | None = None, split: str = SPLIT, tasks: tuple[str, ...] = (),
                   languages: tuple[str, ...] = (), members: tuple[str, ...] | None = None) -> EncodedDataset:
    """Read a split of a webdataset folder once with clip_benchmark's own reader and encode it with the model, for
    the pairs' `tasks` (all of the folder's when empty) and caption `languages` (English when empty); `members` (see
    `sample_members`) are kept per sample, so metadata reaches the metrics in the order of the features."""
    import torch
    import torch.nn.functional as F
    from clip_benchmark.datasets.builder import build_wds_dataset

    folder = Path(folder)
    kind = dataset_type(folder)
    reader = task_for_dataset_type(kind)
    captions = reader.captions and members is None
    out = EncodedDataset(kind, _read_lines(folder / "classnames.txt"),
                         _read_lines(folder / "zeroshot_classification_templates.txt"), split=split)
    nshards = int((folder / split / "nshards.txt").read_text().strip())
    if reader.encode is not None:  # samples of a layout of their own (several images each)
        reader.encode(loaded, folder, batch_size, num_workers, out, on_batch)
        return _checked(out, folder)
    scoring = [get_task(name) for name in dict.fromkeys(tasks)] or [reader]
    features = any(task.features for task in scoring)
    hooks = [task for task in scoring if task.batch is not None]
    others = [lang for lang in dict.fromkeys(languages) if lang != "en"] if captions else []
    kept: dict[str, list] = {name: [] for name in members or () if name != "cls"}
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*shardshuffle.*")
        if others:
            dataset = read_multilingual(folder, loaded.transform, list(dict.fromkeys(languages)), split)
        else:
            dataset = build_wds_dataset(folder.name, transform=loaded.transform, split=split, data_dir=str(folder))
            if members is not None:
                dataset = _with_members(dataset, loaded.transform, members)
        # webdataset gives each loader worker whole shards: more workers than shards would idle or fail
        loader = torch.utils.data.DataLoader(dataset.batched(batch_size), batch_size=None, shuffle=False,
                                             num_workers=min(num_workers, nshards))
        start = time.perf_counter()
        with torch.no_grad(), _missing_member(folder, members):
            for images, *values in loader:
                images = images.to(loaded.device)
                if members is not None:
                    by_name = dict(zip(members, values))
                    for name, batch in kept.items():
                        batch.append(by_name[name])
                    labels = by_name.get("cls")
                else:
                    (labels,) = values
                for task in hooks:
                    gathered = out.extras.setdefault(task.name, {})
                    for name, values in task.batch(loaded, images, labels).items():
                        gathered.setdefault(name, []).extend(values)
                if others:
                    _encode_languages(loaded, images, labels, out, features)
                elif captions and features:
                    image_emb, text_emb = encode_captioned(loaded, images, [text for texts in labels for text in texts])
                    out.image_features.append(image_emb)
                    out.text_features.append(text_emb)
                    out.text_image_index.extend(out.num_samples + i for i, texts in enumerate(labels) for _ in texts)
                elif features:
                    with loaded.autocast():
                        out.image_features.append(F.normalize(loaded.model.encode_image(images), dim=-1))
                    if labels is not None:
                        out.targets.append(labels.cpu())
                out.num_samples += len(images)
                if on_batch:
                    on_batch(len(images))
        if loaded.device.startswith("cuda"):
            torch.cuda.synchronize()
        out.seconds = time.perf_counter() - start
    out.members = {name: _joined(batches) for name, batches in kept.items()}
    return _checked(out, folder)


def _encode_languages(loaded: LoadedModel, images, labels: list[dict[str, list[str]]], out: EncodedDataset,
                      features: bool) -> None:
    """One batch of a multilingual retrieval set: the images once, each language's captions in turn."""
    import torch
    import torch.nn.functional as F

    if not features:
        return
    with torch.no_grad(), loaded.autocast():
        out.image_features.append(F.normalize(loaded.model.encode_image(images), dim=-1).cpu())
    for language in labels[0]:
        texts = [caps[language] for caps in labels]
        index = [out.num_samples + i for i, caps in enumerate(texts) for _ in caps]
        encoded = encode_captions(loaded, [text for caps in texts for text in caps], language)
        if language == "en":
            out.text_features.append(encoded)
            out.text_image_index.extend(index)
        else:
            batches, image_index = out.languages.setdefault(language, ([], []))
            batches.append(encoded)
            image_index.extend(index)


def _checked(out: EncodedDataset, folder: Path) -> EncodedDataset:
    if out.num_samples == 0:
        raise BenchmarkError(f"dataset folder {folder} has no samples in its {out.split} split")
    return out


@contextlib.contextmanager
def _missing_member(folder: Path, members: tuple[str, ...] | None):
    """webdataset's error for a sample without a member a task reads, as one line naming the folder and the task's
    members (a DataComp metric on data without its metadata)."""
    try:
        yield
    except ValueError as exc:  # from a loader process, the message carries the worker's traceback: take its line
        found = [line for line in str(exc).splitlines() if "didn't find" in line]
        if members is None or not found:
            raise
        raise DatasetTaskError(f"dataset folder {folder.name}: a sample lacks a member its task reads "
                               f"({', '.join(members)}): {found[-1].removeprefix('ValueError: ')}") from None


def _joined(batches: list) -> Any:
    """Per-batch values as one per-sample sequence: tensors and arrays as one numpy array, anything else a list."""
    import numpy as np
    import torch

    if batches and all(isinstance(b, (torch.Tensor, np.ndarray)) for b in batches):
        return np.concatenate([b.numpy() if isinstance(b, torch.Tensor) else b for b in batches])
    return [value for batch in batches for value in batch]


def pair_metrics(pair: Pair, loaded: LoadedModel, encoded: EncodedDataset, cache: ClassifierCache) -> dict[str, float]:
    """The metrics of one pair from its dataset's encoding, by its task; zero-shot classifiers use the cache."""
    check_task(pair, encoded.kind)
    return get_task(pair.task).evaluate(pair, loaded, encoded.in_language(pair.language), cache)


def pair_outcomes(pair: Pair, loaded: LoadedModel, encoded: EncodedDataset, cache: ClassifierCache) -> dict[str, Any] | None:
    """The per-sample outcomes of one pair (name -> 1-D array), or None where its task records none."""
    outcomes = get_task(pair.task).outcomes
    return outcomes(pair, loaded, encoded.in_language(pair.language), cache) if outcomes is not None else None


def model_profile(loaded: LoadedModel) -> dict[str, Any]:
    """Parameters and GFLOPs per sample of the loaded model, for models the catalog lacks (local-dir:, hf-hub:,
    checkpoints): counted as the catalog counts them, on the meta device (the weights are swapped for meta tensors, so
    nothing runs and nothing is copied). A tower that cannot run on meta (a Hugging Face text tower) counts as None."""
    import torch
    from torch.func import functional_call
    from torch.utils.flop_counter import FlopCounterMode

    net = loaded.model
    visual = net.visual
    size = getattr(visual, "image_size", None) or 224
    height, width = (size, size) if isinstance(size, int) else tuple(size)

    def gflops(module, **inputs) -> float | None:
        state = {k: torch.empty_like(v, device="meta") for k, v in (*module.named_parameters(), *module.named_buffers())}
        try:
            with FlopCounterMode(display=False) as counter:
                functional_call(module, state, (), inputs)
        except Exception:  # noqa: BLE001 - a tower that branches on tensor values
            return None
        return round(counter.get_total_flops() / 1e9, 3)

    def count(module) -> int:
        return int(sum(p.numel() for p in module.parameters()))

    image_params, params = count(visual), count(net)
    context = int(getattr(net, "context_length", 77) or 77)
    return {
        "params": params,
        "image_params": image_params,
        "text_params": params - image_params,
        "image_gflops": gflops(visual, x=torch.empty(1, 3, height, width, device="meta")),
        "text_gflops": gflops(net, text=torch.zeros(1, context, dtype=torch.long, device="meta")),  # CLIP(text=...)
        "image_size": int(height),
    }

