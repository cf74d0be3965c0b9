"""Image-caption selection (SugarCrepe, Winoground): in each sample, does every image pick its own caption and every
caption its own image? clip_benchmark 1.6.2's `metrics/image_caption_selection.py`, batch by batch.

clip_benchmark reads SugarCrepe from COCO's val2017 folder and its json files, and Winoground through the `datasets`
library; neither has a published webdataset. `datasets/convert.py` writes them as one (`dataset_type.txt` =
`image_caption_selection`): per sample the images `0.<ext>`, `1.<ext>`, ... exactly as the source stored them, and `txt`
holding the captions one per line, caption i matching image i (SugarCrepe: the caption, then its negative). This module
reads that layout and encodes it as clip_benchmark does: the images of a batch through the image tower in one call, all
its captions through the text tower in another.
"""

from __future__ import annotations

import io
import re
import time
from pathlib import Path
from typing import Any

from ..core.errors import BenchmarkError
from ..core.pair import Pair
from . import Task

DATASET_TYPE = "image_caption_selection"
IMAGE_KEY = re.compile(r"([0-9]+)\.(jpg|jpeg|png|webp)")
METRICS = ("text_acc", "image_acc", "acc")  # Winoground's text, image and group scores; SugarCrepe's is `acc`


def _decode(sample: dict) -> tuple[list, list[str]]:
    """The sample's images in order, opened as their source's reader opens them (no mode conversion), and captions."""
    from PIL import Image

    found = sorted((int(m.group(1)), key) for key in sample if (m := IMAGE_KEY.fullmatch(key)))
    if not found or [i for i, _ in found] != list(range(len(found))):
        raise BenchmarkError(f"selection sample {sample.get('__key__')!r} lacks images 0.<ext>, 1.<ext>, ...")
    images = []
    for _, key in found:
        image = Image.open(io.BytesIO(sample[key]))
        image.load()
        images.append(image)
    captions = sample.get("txt", b"").decode("utf-8").splitlines()
    if len(captions) < len(images):
        raise BenchmarkError(f"selection sample {sample['__key__']!r} has {len(images)} images but {len(captions)} captions")
    return images, captions


def read_selection(folder: Path, transform, split: str = "test"):
    """(images of the sample stacked, captions) per sample, in shard order."""
    import torch
    import webdataset as wds

    nshards = int((Path(folder) / split / "nshards.txt").read_text().strip())
    pattern = str(Path(folder) / split / ("{0..%d}.tar" % (nshards - 1)))

    def prepare(sample):
        images, captions = _decode(sample)
        return torch.stack([transform(image) for image in images]), captions

    return wds.WebDataset(pattern, nodesplitter=lambda src: src, shardshuffle=False).map(prepare), nshards


def _collate(samples):
    import torch

    shapes = {(len(images), len(captions)) for images, captions in samples}
    if len(shapes) > 1:
        raise BenchmarkError(f"selection samples of one batch differ in images or captions per sample: {sorted(shapes)}")
    return torch.stack([images for images, _ in samples]), [captions for _, captions in samples]


def encode(loaded, folder: Path, batch_size: int, num_workers: int, out, on_batch=None, split: str = "test"):
    """Fills the empty encoding `out`, per batch as clip_benchmark: (batch, images, dim) and (batch, captions, dim)
    L2-normalised features, on the device (its scores are taken there)."""
    import torch
    import torch.nn.functional as F

    dataset, nshards = read_selection(folder, loaded.transform, split)
    loader = torch.utils.data.DataLoader(dataset.batched(batch_size, collation_fn=_collate), batch_size=None,
                                         shuffle=False, num_workers=min(num_workers, nshards))
    start = time.perf_counter()
    for images, captions in loader:
        b, nim, c, h, w = images.shape
        nt = len(captions[0])
        tokens = loaded.tokenizer([text for texts in captions for text in texts]).to(loaded.device)
        with torch.no_grad(), loaded.autocast():
            image_emb = F.normalize(loaded.model.encode_image(images.to(loaded.device).view(b * nim, c, h, w)), dim=-1)
            text_emb = F.normalize(loaded.model.encode_text(tokens), dim=-1)
        out.image_features.append(image_emb.view(b, nim, -1))
        out.text_features.append(text_emb.view(b, nt, -1))
        out.num_samples += b
        if on_batch:
            on_batch(b)
    if loaded.device.startswith("cuda"):
        torch.cuda.synchronize()
    out.seconds = time.perf_counter() - start


def outcomes(pair: Pair, loaded, encoded, cache) -> dict[str, Any]:
    """Per sample, as clip_benchmark decides it: every image's best caption is its own (`text_acc`), every caption's
    best image is its own (`image_acc`), both (`acc`). Each metric is the share of its array."""
    import numpy as np
    import torch

    if encoded.kind != DATASET_TYPE:
        raise BenchmarkError(f"dataset {pair.dataset} holds {encoded.kind} data, not {DATASET_TYPE}")
    text, image = [], []
    for images_emb, texts_emb in zip(encoded.image_features, encoded.text_features):
        gt = torch.arange(min(images_emb.shape[1], texts_emb.shape[1]), device=images_emb.device)
        for i in range(len(images_emb)):
            scores = images_emb[i] @ texts_emb[i].t()
            text.append((scores.argmax(dim=1)[:len(gt)] == gt).all().item())
            image.append((scores.argmax(dim=0)[:len(gt)] == gt).all().item())
    text, image = np.array(text, dtype=bool), np.array(image, dtype=bool)
    return {"text_acc": text, "image_acc": image, "acc": text & image}


def evaluate(pair: Pair, loaded, encoded, cache) -> dict[str, float]:
    """clip_benchmark's means: `torch.Tensor(list of bools).float().mean().item()`."""
    import torch

    return {name: torch.Tensor(values.tolist()).float().mean().item()
            for name, values in outcomes(pair, loaded, encoded, cache).items()}


def prompt_count(spec: Any, images: int) -> int:
    """Every caption of every sample (SugarCrepe two, Winoground two)."""
    return images * int(getattr(spec, "captions_per_image", 0) or 2)



def statistics(samples, metric: str):
    """Each metric is the mean of its own per-sample array (see `outcomes`)."""
    from .statistics import per_sample

    return per_sample(samples, metric)


TASK = Task(name="image_caption_selection", dataset_type=DATASET_TYPE, table="selection_metrics", metrics=METRICS,
            main_metric="acc", prompts=prompt_count, encode=encode, evaluate=evaluate,
            outcomes=outcomes, statistics=statistics)
