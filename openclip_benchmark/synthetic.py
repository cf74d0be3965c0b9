"""Tiny, deterministic stand-ins for real benchmark data and models, made on the spot (nothing is downloaded): what
`benchmark demo` runs on (the tests and benchmarks build from here too; their own doubles live under tests/).

Datasets are written in clip_benchmark's webdataset layout (`wds_<name>/test/{0..N-1}.tar`, `nshards.txt`,
`classnames.txt`, `zeroshot_classification_templates.txt`, `dataset_type.txt`), so the real
`clip_benchmark eval --dataset wds/<name>` reads them exactly as it reads the Hugging Face copies; models are saved in
open_clip's `local-dir:` layout. Above core only: PIL, numpy, torch and open_clip are imported by the builders that
need them.
"""

from __future__ import annotations

import io
import json
import random
from pathlib import Path
from typing import Iterable, Sequence

from .core.wds import write_shards

TEMPLATES = ("a photo of a {c}.", "a blurry photo of the {c}.", "itap of a {c}.")
WORDS = ("red", "blue", "small", "large", "striped", "dotted", "bright", "dark", "round", "square", "old", "new")
NOUNS = ("cat", "dog", "bird", "car", "tree", "boat", "house", "flower")

# ---------------------------------------------------------------- webdatasets and models


def image_png(rng: random.Random, size: int, colour: tuple[int, int, int]) -> bytes:
    """A noisy, tinted image with a few rectangles: different per sample, loosely tied to its label."""
    from PIL import Image, ImageDraw

    noise = bytes(min(255, max(0, t + rng.randint(-60, 60))) for _ in range(size * size) for t in colour)
    img = Image.frombytes("RGB", (size, size), noise)
    draw = ImageDraw.Draw(img)
    for _ in range(3):
        x0, y0 = rng.randrange(size), rng.randrange(size)
        x1, y1 = min(size, x0 + rng.randint(2, size // 2)), min(size, y0 + rng.randint(2, size // 2))
        draw.rectangle((x0, y0, x1, y1), fill=tuple(rng.randrange(256) for _ in range(3)))
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def tint(index: int, count: int) -> tuple[int, int, int]:
    """The colour of label `index` of `count`: evenly spaced hues."""
    import colorsys

    r, g, b = colorsys.hsv_to_rgb(index / max(count, 1), 0.7, 0.8)
    return int(r * 255), int(g * 255), int(b * 255)


def _write_lines(path: Path, lines: Iterable[str]) -> None:
    path.write_text("".join(f"{line}\n" for line in lines))


def _write_dataset(root, name: str, n: int, shards: int, seed: int, sample, files: dict[str, Sequence[str]]) -> Path:
    """`root/wds_<name>/`: `n` samples drawn in order from one seeded generator, then the metadata files."""
    rng = random.Random(seed)
    folder = Path(root) / f"wds_{name}"
    folder.mkdir(parents=True, exist_ok=True)
    write_shards(folder, [sample(rng, i) for i in range(n)], shards)
    for filename, lines in files.items():
        _write_lines(folder / filename, lines)
    return folder


def make_classification_wds(root, name: str = "fixture_cls", n: int = 24,
                            classes: Sequence[str] = ("cat", "dog", "bird"), shards: int = 2, image_size: int = 32,
                            seed: int = 0, templates: Sequence[str] = TEMPLATES) -> Path:
    """Single-label classification: `png` + `cls` per sample, class names and templates beside."""

    def sample(rng: random.Random, i: int) -> dict[str, bytes]:
        label = i % len(classes) if i < len(classes) else rng.randrange(len(classes))
        return {"png": image_png(rng, image_size, tint(label, len(classes))), "cls": str(label).encode()}

    files = {"classnames.txt": classes, "zeroshot_classification_templates.txt": templates}
    return _write_dataset(root, name, n, shards, seed, sample, files)


def make_multilabel_wds(root, name: str = "fixture_ml", n: int = 24,
                        classes: Sequence[str] = ("person", "car", "dog", "chair"), shards: int = 2, image_size: int = 32,
                        seed: int = 0, templates: Sequence[str] = TEMPLATES) -> Path:
    """Multilabel (like wds_voc2007_multilabel): `png` + multi-hot `npy` per sample, `dataset_type.txt` = multilabel."""
    import numpy as np

    def sample(rng: random.Random, i: int) -> dict[str, bytes]:
        hot = np.zeros(len(classes), dtype=np.int64)
        for k in rng.sample(range(len(classes)), rng.randint(1, min(3, len(classes)))):
            hot[k] = 1
        buf = io.BytesIO()
        np.save(buf, hot)
        return {"png": image_png(rng, image_size, tint(int(hot.argmax()), len(classes))), "npy": buf.getvalue()}

    files = {"classnames.txt": classes, "zeroshot_classification_templates.txt": templates,
             "dataset_type.txt": ["multilabel"]}
    return _write_dataset(root, name, n, shards, seed, sample, files)


def make_retrieval_wds(root, name: str = "fixture_ret", n: int = 24, captions_per_image: int = 3, shards: int = 2,
                       image_size: int = 32, seed: int = 0) -> Path:
    """Image-text retrieval (like wds_mscoco_captions): `png` + `txt` (one caption per line), type = retrieval."""

    def sample(rng: random.Random, i: int) -> dict[str, bytes]:
        noun = NOUNS[i % len(NOUNS)]
        captions = [f"a {rng.choice(WORDS)} {rng.choice(WORDS)} {noun} number {i} {j}" for j in range(captions_per_image)]
        png = image_png(rng, image_size, tint(i % len(NOUNS), len(NOUNS)))
        return {"png": png, "txt": "\n".join(captions).encode()}

    return _write_dataset(root, name, n, shards, seed, sample, {"dataset_type.txt": ["retrieval"]})


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
