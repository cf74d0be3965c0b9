"""Tiny, deterministic stand-ins for real benchmark data and models, built on the spot (nothing is downloaded).

Datasets are written in clip_benchmark's webdataset layout (`wds_<name>/test/{0..N-1}.tar`, `nshards.txt`,
`classnames.txt`, `zeroshot_classification_templates.txt`, `dataset_type.txt`), so the real `clip_benchmark eval
--dataset wds/<name>` reads them exactly as it reads the Hugging Face copies. Models are saved in open_clip's
`local-dir:` layout (`open_clip_config.json` + weights).
"""

from __future__ import annotations

import io
import json
import random
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

TEMPLATES = ("a photo of a {c}.", "a blurry photo of the {c}.", "itap of a {c}.")
WORDS = ("red", "blue", "small", "large", "striped", "dotted", "bright", "dark", "round", "square", "old", "new")
NOUNS = ("cat", "dog", "bird", "car", "tree", "boat", "house", "flower")


def _image_png(rng: random.Random, size: int, tint: tuple[int, int, int]) -> bytes:
    """A noisy, tinted image with a few rectangles: different per sample, loosely tied to its label."""
    from PIL import Image, ImageDraw

    noise = bytes(min(255, max(0, t + rng.randint(-60, 60))) for _ in range(size * size) for t in tint)
    img = Image.frombytes("RGB", (size, size), noise)
    draw = ImageDraw.Draw(img)
    for _ in range(3):
        x0, y0 = rng.randrange(size), rng.randrange(size)
        x1, y1 = min(size, x0 + rng.randint(2, size // 2)), min(size, y0 + rng.randint(2, size // 2))
        draw.rectangle((x0, y0, x1, y1), fill=tuple(rng.randrange(256) for _ in range(3)))
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def _tint(index: int, count: int) -> tuple[int, int, int]:
    import colorsys

    r, g, b = colorsys.hsv_to_rgb(index / max(count, 1), 0.7, 0.8)
    return int(r * 255), int(g * 255), int(b * 255)


def _write_shards(folder: Path, samples: Sequence[dict[str, bytes]], shards: int) -> None:
    """Samples split into `shards` tar files, in order, like webdataset's ShardWriter."""
    test = folder / "test"
    test.mkdir(parents=True, exist_ok=True)
    shards = max(1, min(shards, len(samples)))
    per = -(-len(samples) // shards)
    for s in range(shards):
        with tarfile.open(test / f"{s}.tar", "w", format=tarfile.USTAR_FORMAT) as tar:
            for i in range(s * per, min(len(samples), (s + 1) * per)):
                for ext, data in samples[i].items():
                    info = tarfile.TarInfo(f"s{i:07d}.{ext}")
                    info.size, info.mtime, info.mode = len(data), 0, 0o644
                    tar.addfile(info, io.BytesIO(data))
    (test / "nshards.txt").write_text(f"{shards}\n")


def _write_lines(path: Path, lines: Iterable[str]) -> None:
    path.write_text("".join(f"{line}\n" for line in lines))


def _dataset_folder(root, name: str) -> Path:
    folder = Path(root) / f"wds_{name}"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def make_classification_wds(
    root,
    name: str = "fixture_cls",
    n: int = 24,
    classes: Sequence[str] = ("cat", "dog", "bird"),
    shards: int = 2,
    image_size: int = 32,
    seed: int = 0,
    templates: Sequence[str] = TEMPLATES,
) -> Path:
    """Single-label classification: `png` + `cls` per sample, class names and templates beside."""
    rng = random.Random(seed)
    folder = _dataset_folder(root, name)
    samples = []
    for i in range(n):
        label = i % len(classes) if i < len(classes) else rng.randrange(len(classes))
        png = _image_png(rng, image_size, _tint(label, len(classes)))
        samples.append({"png": png, "cls": str(label).encode()})
    _write_shards(folder, samples, shards)
    _write_lines(folder / "classnames.txt", classes)
    _write_lines(folder / "zeroshot_classification_templates.txt", templates)
    return folder


def make_multilabel_wds(
    root,
    name: str = "fixture_ml",
    n: int = 24,
    classes: Sequence[str] = ("person", "car", "dog", "chair"),
    shards: int = 2,
    image_size: int = 32,
    seed: int = 0,
    templates: Sequence[str] = TEMPLATES,
) -> Path:
    """Multilabel (like wds_voc2007_multilabel): `png` + multi-hot `npy` per sample, `dataset_type.txt` = multilabel."""
    import numpy as np

    rng = random.Random(seed)
    folder = _dataset_folder(root, name)
    samples = []
    for i in range(n):
        hot = np.zeros(len(classes), dtype=np.int64)
        for k in rng.sample(range(len(classes)), rng.randint(1, min(3, len(classes)))):
            hot[k] = 1
        buf = io.BytesIO()
        np.save(buf, hot)
        png = _image_png(rng, image_size, _tint(int(hot.argmax()), len(classes)))
        samples.append({"png": png, "npy": buf.getvalue()})
    _write_shards(folder, samples, shards)
    _write_lines(folder / "classnames.txt", classes)
    _write_lines(folder / "zeroshot_classification_templates.txt", templates)
    _write_lines(folder / "dataset_type.txt", ["multilabel"])
    return folder


def make_retrieval_wds(
    root,
    name: str = "fixture_ret",
    n: int = 24,
    captions_per_image: int = 3,
    shards: int = 2,
    image_size: int = 32,
    seed: int = 0,
) -> Path:
    """Image-text retrieval (like wds_mscoco_captions): `png` + `txt` (one caption per line), type = retrieval."""
    rng = random.Random(seed)
    folder = _dataset_folder(root, name)
    samples = []
    for i in range(n):
        noun = NOUNS[i % len(NOUNS)]
        captions = [f"a {rng.choice(WORDS)} {rng.choice(WORDS)} {noun} number {i} {j}" for j in range(captions_per_image)]
        png = _image_png(rng, image_size, _tint(i % len(NOUNS), len(NOUNS)))
        samples.append({"png": png, "txt": "\n".join(captions).encode()})
    _write_shards(folder, samples, shards)
    _write_lines(folder / "dataset_type.txt", ["retrieval"])
    return folder


def make_tiny_model(
    root,
    name: str = "tiny",
    seed: int = 0,
    image_size: int = 32,
    *,
    width: int = 64,
    layers: int = 2,
    patch_size: int = 8,
    embed_dim: int = 32,
) -> str:
    """A randomly initialised tiny ViT CLIP saved for open_clip's `local-dir:` loader; returns `local-dir:<path>`."""
    import open_clip
    import torch

    folder = Path(root) / name
    folder.mkdir(parents=True, exist_ok=True)
    model_cfg = {
        "embed_dim": embed_dim,
        "vision_cfg": {"image_size": image_size, "layers": layers, "width": width, "patch_size": patch_size,
                       "head_width": 32},
        "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": width, "heads": max(1, width // 32),
                     "layers": layers},
    }
    preprocess_cfg = {
        "size": image_size,
        "mean": [0.48145466, 0.4578275, 0.40821073],
        "std": [0.26862954, 0.26130258, 0.27577711],
        "interpolation": "bicubic",
        "resize_mode": "shortest",
    }
    torch.manual_seed(seed)
    model = open_clip.CLIP(**model_cfg)
    with torch.no_grad():  # spread the random init so that features, and so predictions, differ between samples
        for param in model.parameters():
            if param.dim() >= 2:
                param.mul_(3.0)
    torch.save(model.state_dict(), folder / "open_clip_pytorch_model.bin")
    config = {"model_cfg": model_cfg, "preprocess_cfg": preprocess_cfg}
    (folder / "open_clip_config.json").write_text(json.dumps(config, indent=2))
    return f"local-dir:{folder}"


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
