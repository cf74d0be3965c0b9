"""Tiny copies of the original files of SugarCrepe, Winoground, XTD10 and Crossmodal-3600, and of ImageNet's
validation folder (Babel-ImageNet), laid out exactly as clip_benchmark reads them (and `benchmark dataset convert`
converts them): the real data's folders, names and formats, with small generated images and captions."""

from __future__ import annotations

import io
import json
import random
from pathlib import Path

from fixtures import sample_image
from openclip_benchmark.synthetic import NOUNS, WORDS

XTD10_CAPTION_FOLDERS = {"de": "MIC", "fr": "MIC", "jp": "STAIR"}  # the rest under XTD10/
XTD10_REPO = "https://raw.githubusercontent.com/adobe-research/Cross-lingual-Test-Dataset-XTD10/main"


def jpeg(index: int, size: int = 40) -> bytes:
    """A JPEG of its own for each index (COCO's and Open Images' files are JPEGs)."""
    from PIL import Image

    buf = io.BytesIO()
    Image.open(io.BytesIO(sample_image(index, size))).convert("RGB").save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def caption(rng: random.Random, index: int, language: str = "en") -> str:
    return f"{language} a {rng.choice(WORDS)} {rng.choice(WORDS)} {NOUNS[index % len(NOUNS)]} {index}"


def make_sugar_crepe(root: Path, splits=("add_att", "swap_obj"), n: int = 10, images: int = 12) -> Path:
    """`root/val2017/<12-digit id>.jpg` and `root/<split>.json` ({id: {filename, caption, negative_caption}}, ids not
    contiguous), as github.com/RAIVNLab/sugar-crepe `data/` and COCO's val2017.zip give them."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "val2017").mkdir(exist_ok=True)
    names = [f"{139 + 7 * i:012d}.jpg" for i in range(images)]
    for i, name in enumerate(names):
        (root / "val2017" / name).write_bytes(jpeg(i))
    for s, split in enumerate(splits):
        rng = random.Random(s)
        ann = {}
        for k in range(n):
            image = rng.randrange(images)
            ann[str(3 * k + s)] = {"filename": names[image], "caption": caption(rng, image),
                                   "negative_caption": caption(rng, image + 1)}
        (root / f"{split}.json").write_text(json.dumps(ann, indent=4))
    return root


def make_winoground(root: Path, n: int = 10) -> Path:
    """`root/data/test-00000-of-00001.parquet`: the facebook/winoground repo's table (id, image_0/1 as the `datasets`
    Image feature stores them: {bytes, path}, caption_0/1 and the tags)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = random.Random(7)
    image = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
    rows = {"id": [], "image_0": [], "image_1": [], "caption_0": [], "caption_1": [], "tag": [], "secondary_tag": [],
            "num_main_preds": [], "collapsed_tag": []}
    for i in range(n):
        words = rng.sample(WORDS, 2)
        rows["id"].append(i)
        rows["image_0"].append({"bytes": sample_image(100 + 2 * i, 36), "path": f"ex_{i}_img_0.png"})
        rows["image_1"].append({"bytes": sample_image(101 + 2 * i, 36), "path": f"ex_{i}_img_1.png"})
        rows["caption_0"].append(f"the {words[0]} {NOUNS[i % 8]} is beside the {words[1]} one")
        rows["caption_1"].append(f"the {words[1]} {NOUNS[i % 8]} is beside the {words[0]} one")
        rows["tag"].append(rng.choice(["Object", "Relation", "Both"]))
        rows["secondary_tag"].append("")
        rows["num_main_preds"].append(1)
        rows["collapsed_tag"].append(rows["tag"][-1])
    schema = pa.schema([("id", pa.int32()), ("image_0", image), ("image_1", image), ("caption_0", pa.string()),
                        ("caption_1", pa.string()), ("tag", pa.string()), ("secondary_tag", pa.string()),
                        ("num_main_preds", pa.int32()), ("collapsed_tag", pa.string())])
    (root / "data").mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table(rows, schema=schema), root / "data" / "test-00000-of-00001.parquet")
    return root


def winoground_rows(root: Path) -> list[dict]:
    """The rows as `datasets.load_dataset("facebook/winoground")["test"]` hands them: images decoded by PIL from
    their bytes (its Image feature: `PIL.Image.open(BytesIO(bytes)); image.load()`)."""
    import pyarrow.parquet as pq
    from PIL import Image

    rows = []
    for row in pq.read_table(root / "data" / "test-00000-of-00001.parquet").to_pylist():
        for key in ("image_0", "image_1"):
            image = Image.open(io.BytesIO(row[key]["bytes"]))
            image.load()
            row[key] = image
        rows.append(row)
    return rows


def make_xtd10(root: Path, languages=("en", "de", "fr", "jp", "it"), n: int = 14, missing: int = 1) -> Path:
    """`root/images/<name>.jpg` (nllb-data.com's images.tar.gz) and the caption repository's files: the image list
    `XTD10/test_image_names.txt` and one caption file per language (XTD10/, MIC/ for de and fr, STAIR/ for jp);
    the last `missing` listed images are absent, as clip_benchmark tolerates."""
    (root / "images").mkdir(parents=True, exist_ok=True)
    names = [f"COCO_val2014_{400 + 13 * i:012d}.jpg" for i in range(n)]
    for i, name in enumerate(names[: n - missing]):
        (root / "images" / name).write_bytes(jpeg(200 + i))
    (root / "XTD10").mkdir(exist_ok=True)
    (root / "XTD10" / "test_image_names.txt").write_text("\n".join(names) + "\n")
    for lang in languages:
        rng = random.Random(lang)
        folder = root / XTD10_CAPTION_FOLDERS.get(lang, "XTD10")
        folder.mkdir(exist_ok=True)
        (folder / f"test_1kcaptions_{lang}.txt").write_text("\n".join(caption(rng, i, lang) for i in range(n)) + "\n",
                                                            encoding="utf-8")
    return root


def xtd10_lines(root: Path):
    """clip_benchmark's `_get_lines(url)` answered from the repository files under `root` instead of GitHub."""

    def get_lines(url: str) -> list[str]:
        assert url.startswith(XTD10_REPO + "/"), url
        return (root / url[len(XTD10_REPO) + 1:]).read_text("utf-8").splitlines()

    return get_lines


def make_crossmodal3600(root: Path, languages=("en", "de", "ja", "sw"), n: int = 14, missing: int = 1) -> Path:
    """`root/images/<key>.jpg` (images.tgz) and `root/captions.jsonl` (captions.zip): per image its key and, per
    language, {caption: [...], caption/tokenized: [...]}; several captions for some languages."""
    (root / "images").mkdir(parents=True, exist_ok=True)
    lines = []
    for i in range(n):
        key = f"{0xA0B1C2 + 97 * i:016x}"
        if i < n - missing:
            (root / "images" / f"{key}.jpg").write_bytes(jpeg(300 + i))
        entry = {"image/key": key}
        for lang in languages:
            rng = random.Random(f"{lang}{i}")
            captions = [caption(rng, i, lang) for _ in range(1 + (i + len(lang)) % 3)]
            entry[lang] = {"caption": captions, "caption/tokenized": [c.lower() for c in captions]}
        lines.append(json.dumps(entry, ensure_ascii=False))
    (root / "captions.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return root


def noise_jpeg(index: int, size: int = 16) -> bytes:
    """A small seeded noise JPEG, quick to make by the thousand."""
    import numpy as np
    from PIL import Image

    pixels = np.random.default_rng(index).integers(0, 256, (size, size, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def make_imagenet_val(root: Path, wds_root: Path, per_class: int = 1, size: int = 16) -> tuple[Path, Path]:
    """ImageNet's validation set twice, `per_class` images of each of its 1000 classes: torchvision's `ImageNet`
    folder (`meta.bin`, `val/<wnid>/*.JPEG`, what clip_benchmark's Babel-ImageNet reads) and `wds_imagenet1k/` in
    clip_benchmark's webdataset layout (labels = class indices in wnid order, the same images in the same order)."""
    import torch
    from clip_benchmark.datasets.builder import all_imagenet_wordnet_ids

    from openclip_benchmark.core.wds import write_shards

    wnids = sorted(all_imagenet_wordnet_ids)
    samples = []
    for label, wnid in enumerate(wnids):
        (root / "val" / wnid).mkdir(parents=True, exist_ok=True)
        for k in range(per_class):
            data = noise_jpeg(label * per_class + k, size)
            (root / "val" / wnid / f"ILSVRC2012_val_{label * per_class + k:08d}.JPEG").write_bytes(data)
            samples.append({"jpg": data, "cls": str(label).encode()})
    torch.save(({wnid: (f"class {i}",) for i, wnid in enumerate(wnids)}, []), root / "meta.bin")
    folder = wds_root / "wds_imagenet1k"
    write_shards(folder, samples, 2)
    (folder / "classnames.txt").write_text("".join(f"class {i}\n" for i in range(len(wnids))))
    (folder / "zeroshot_classification_templates.txt").write_text("a photo of a {c}.\n")
    return root, folder
