"""WinoGAViL as a webdataset: DataComp reads it with `datasets.load_dataset("nlphuji/winogavil", split="test")`, a
repository whose loading script today's `datasets` no longer runs; its examples (`cue`, `candidates`, `associations`,
`candidate_images`) become one sample per candidate image, in the layout `tasks/winogavil.py` reads.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any, Iterable, Mapping

from ..core.errors import BenchmarkError
from .captions import write_webdataset

DATASET_TYPE = "winogavil"


def _image_bytes(image: Any) -> tuple[str, bytes]:
    """(extension, bytes): encoded bytes as they are (PNG or JPEG by their signature), a PIL image as PNG."""
    if isinstance(image, Mapping) and isinstance(image.get("bytes"), bytes):  # `datasets`' undecoded Image feature
        image = image["bytes"]
    if isinstance(image, bytes):
        return ("png" if image.startswith(b"\x89PNG") else "jpg"), image
    if hasattr(image, "save"):
        buf = io.BytesIO()
        image.save(buf, format="PNG")
        return "png", buf.getvalue()
    raise BenchmarkError(f"a WinoGAViL candidate image is a {type(image).__name__}, not an image or its bytes")


def winogavil_samples(examples: Iterable[Mapping[str, Any]]) -> list[dict[str, bytes]]:
    """One sample per candidate image: the image and `json` = {instance, candidate, cue, association}."""
    samples = []
    for instance, example in enumerate(examples):
        candidates, images = list(example["candidates"]), list(example["candidate_images"])
        associations = set(example["associations"])
        if len(candidates) != len(images) or not associations <= set(candidates):
            raise BenchmarkError(f"WinoGAViL example {instance}: {len(candidates)} candidates, {len(images)} images, "
                                 f"associations {sorted(associations - set(candidates))} outside the candidates")
        for position, (name, image) in enumerate(zip(candidates, images)):
            ext, data = _image_bytes(image)
            meta = {"instance": instance, "candidate": position, "cue": example["cue"], "name": name,
                    "association": name in associations}
            samples.append({ext: data, "json": json.dumps(meta).encode("utf-8")})
    return samples


def write_winogavil(folder: str | Path, examples: Iterable[Mapping[str, Any]], shards: int = 1) -> Path:
    """`folder/test/{0..shards-1}.tar`, `test/nshards.txt` and `dataset_type.txt` from DataComp's examples."""
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    return write_webdataset(folder, winogavil_samples(examples), shards, DATASET_TYPE)
