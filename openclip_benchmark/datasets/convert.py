"""Benchmark data that has no published webdataset, converted from the files its authors publish into one.

clip_benchmark reads these from their original files (`datasets/builder.py`): SugarCrepe from COCO's `val2017/` and
its json files, Winoground through the `datasets` library (the `facebook/winoground` repo), XTD10, XTD200,
Flickr30k-200 and multilingual MSCOCO from an image folder and one caption file per language fetched from GitHub,
Crossmodal-3600 from its image folder and `captions.jsonl`. Each becomes a webdataset here, so that the download,
layout check, worker and plan treat it as any other dataset (`--dataset-root ROOT`, or your own Hugging Face repo):

- `image_caption_selection` (SugarCrepe's seven splits, Winoground): per sample the images `0.<ext>`, `1.<ext>`, ...
  with the bytes the source holds, `txt` with the captions, caption i matching image i (SugarCrepe: the caption, then
  its negative), and `json` with the source's id (and Winoground's tags);
- `retrieval` in several languages (XTD10, XTD200, Flickr30k-200, multilingual MSCOCO, Crossmodal-3600): per image
  its bytes, `txt` holding the English caption (what clip_benchmark's wds reader reads) and `<lang>.txt` holding each
  other language's, exactly the caption clip_benchmark's annotation file takes (Crossmodal-3600: the first of each
  language's). Images missing from the folder are left out, as clip_benchmark leaves them out.
Samples keep the source's order; the folder is written aside and renamed into place.
"""

from __future__ import annotations

import io
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

from ..core.errors import BenchmarkError, UnknownNameError
from .captions import WDS_EXTENSIONS, _recover, write_webdataset

SUGAR_CREPE_SPLITS = ("add_att", "add_obj", "replace_att", "replace_obj", "replace_rel", "swap_att", "swap_obj")
IMAGE_EXTENSIONS = {".jpg": "jpg", ".jpeg": "jpg", ".png": "png", ".webp": "webp"}
SHARD_SIZE = 1000


@dataclass
class Converted:
    name: str
    folder: Path
    samples: int
    languages: tuple[str, ...] = ()
    missing_images: int = 0
    notes: list[str] = field(default_factory=list)


class _Lazy(Sequence):
    """Samples read when the shard writer reaches them, so a large image folder never sits in memory."""

    def __init__(self, items: list, make: Callable[[object], dict[str, bytes]]):
        self.items, self.make = items, make

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i):
        return self.make(self.items[i])


def _write(root: Path, wds_name: str, samples: Sequence[dict[str, bytes]], dataset_type: str,
           shard_size: int) -> Path:
    if not len(samples):
        raise BenchmarkError(f"{wds_name}: the source holds no sample")
    root.mkdir(parents=True, exist_ok=True)
    final = root / wds_name
    _recover(final)
    return write_webdataset(final, samples, -(-len(samples) // shard_size), dataset_type)


def _image_ext(name: str, data: bytes) -> str:
    ext = IMAGE_EXTENSIONS.get(Path(name).suffix.lower())
    if ext:
        return ext
    from PIL import Image

    with Image.open(io.BytesIO(data)) as img:
        found = WDS_EXTENSIONS.get(img.format or "")
    if not found:
        raise BenchmarkError(f"{name}: not a JPEG, PNG or WebP image")
    return found


def _one_line(text: str, where: str) -> str:
    if "\n" in text or "\r" in text:
        raise BenchmarkError(f"{where}: a caption spans several lines")
    return text


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise BenchmarkError(f"{what}: {path} does not exist") from None


# ---------------------------------------------------------------- image-caption selection


def convert_sugar_crepe(source: Path, root: Path, splits: Sequence[str] = SUGAR_CREPE_SPLITS,
                        shard_size: int = SHARD_SIZE) -> list[Converted]:
    """`source/<split>.json` (github.com/RAIVNLab/sugar-crepe `data/`) and `source/val2017/` (COCO) ->
    `root/wds_sugar_crepe-<split>/`, one per split."""
    out = []
    for split in splits:
        if split not in SUGAR_CREPE_SPLITS:
            raise BenchmarkError(f"SugarCrepe has no split {split!r}; it has {', '.join(SUGAR_CREPE_SPLITS)}")
        where = f"SugarCrepe {split}"
        try:
            ann = json.loads(_read(source / f"{split}.json", where))
        except ValueError as exc:
            raise BenchmarkError(f"{where}: {source / f'{split}.json'} is not JSON ({exc})") from None
        if not isinstance(ann, dict) or not ann:
            raise BenchmarkError(f"{where}: {source / f'{split}.json'} holds no annotation")

        def sample(item, where=where) -> dict[str, bytes]:
            key, entry = item
            image = _read(source / "val2017" / entry["filename"], where)
            captions = [_one_line(entry["caption"], where), _one_line(entry["negative_caption"], where)]
            return {f"0.{_image_ext(entry['filename'], image)}": image, "txt": "\n".join(captions).encode("utf-8"),
                    "json": json.dumps({"id": key, "filename": entry["filename"]}).encode("utf-8")}

        folder = _write(root, f"wds_sugar_crepe-{split}", _Lazy(list(ann.items()), sample), "image_caption_selection",
                        shard_size)
        out.append(Converted(f"sugar_crepe-{split}", folder, len(ann)))
    return out


WINOGROUND_TAGS = ("tag", "secondary_tag", "num_main_preds", "collapsed_tag")


def convert_winoground(source: Path, root: Path, shard_size: int = SHARD_SIZE) -> list[Converted]:
    """The `facebook/winoground` dataset repo (`data/test-*.parquet`, what `datasets.load_dataset` reads) ->
    `root/wds_winoground/`."""
    import pyarrow.parquet as pq

    files = sorted((source / "data").glob("test-*.parquet"))
    if not files:
        raise BenchmarkError(f"Winoground: no data/test-*.parquet under {source} (a snapshot of facebook/winoground)")
    rows = [row for path in files for row in pq.read_table(path).to_pylist()]

    def sample(row) -> dict[str, bytes]:
        out: dict[str, bytes] = {}
        for i in (0, 1):
            image = row[f"image_{i}"]
            if not isinstance(image, dict) or not image.get("bytes"):
                raise BenchmarkError(f"Winoground example {row.get('id')}: image_{i} holds no bytes")
            out[f"{i}.{_image_ext(image.get('path') or '', image['bytes'])}"] = image["bytes"]
        where = f"Winoground example {row.get('id')}"
        out["txt"] = "\n".join(_one_line(row[f"caption_{i}"], where) for i in (0, 1)).encode("utf-8")
        out["json"] = json.dumps({"id": row.get("id"), **{k: row.get(k) for k in WINOGROUND_TAGS}}).encode("utf-8")
        return out

    folder = _write(root, "wds_winoground", _Lazy(rows, sample), "image_caption_selection", shard_size)
    return [Converted("winoground", folder, len(rows))]


# ---------------------------------------------------------------- multilingual retrieval


def flores_languages() -> tuple[str, ...]:
    """The FLORES-200 codes of XTD200 and Flickr30k-200, as clip_benchmark lists them."""
    from clip_benchmark.datasets.flores_langs import flores_languages as codes

    return tuple(codes)


XTD10_LANGUAGES = ("de", "en", "es", "fr", "it", "jp", "ko", "pl", "ru", "tr", "zh")
CROSSMODAL3600_LANGUAGES = ("ar", "bn", "cs", "da", "de", "el", "en", "es", "fa", "fi", "fil", "fr", "he", "hi", "hr",
                            "hu", "id", "it", "ja", "ko", "mi", "nl", "no", "pl", "pt", "quz", "ro", "ru", "sv", "sw",
                            "te", "th", "tr", "uk", "vi", "zh")


def _xtd10_captions(lang: str) -> str:
    """XTD10's repository: German and French captions under MIC/, Japanese under STAIR/, the rest under XTD10/."""
    folder = "MIC" if lang in ("de", "fr") else "STAIR" if lang == "jp" else "XTD10"
    return f"{folder}/test_1kcaptions_{lang}.txt"


@dataclass(frozen=True)
class IndexedCaptions:
    """An image list and one caption file per language, line by line (XTD10's and NLLB-CLIP's repositories)."""

    index: str  # the image names, relative to the source
    captions: Callable[[str], str]  # language -> its caption file, relative to the source
    languages: Callable[[], tuple[str, ...]]


MULTILINGUAL = {
    "xtd10": IndexedCaptions("XTD10/test_image_names.txt", _xtd10_captions, lambda: XTD10_LANGUAGES),
    "multilingual_mscoco_captions": IndexedCaptions("XTD10/test_image_names.txt", _xtd10_captions,
                                                    lambda: XTD10_LANGUAGES),
    "xtd200": IndexedCaptions("test_image_names.txt", "{}.txt".format, flores_languages),
    "flickr30k-200": IndexedCaptions("filenames.txt", "{}.txt".format, flores_languages),
}
ENGLISH = ("en", "eng_Latn")


def _lines(path: Path, what: str) -> list[str]:
    return _read(path, what).decode("utf-8").splitlines()


def _multilingual_samples(images: list[tuple[Path, dict[str, str]]]) -> Sequence:
    return _Lazy(images, lambda item: _image_sample(*item))


def _image_sample(path: Path, captions: dict[str, str]) -> dict[str, bytes]:
    image = path.read_bytes()
    sample = {_image_ext(path.name, image): image}
    english = next((captions[lang] for lang in ENGLISH if lang in captions), None)
    if english is not None:
        sample["txt"] = english.encode("utf-8")
    for lang, text in captions.items():
        if lang != "en":
            sample[f"{lang}.txt"] = text.encode("utf-8")
    return sample


def convert_indexed(name: str, source: Path, root: Path, shard_size: int = SHARD_SIZE) -> list[Converted]:
    """`source/images/` and the caption repository's files -> `root/wds_<name>/`, with every language whose caption
    file is there."""
    layout = MULTILINGUAL[name]
    index = _lines(source / layout.index, name)
    languages = [lang for lang in layout.languages() if (source / layout.captions(lang)).is_file()]
    if not languages:
        raise BenchmarkError(f"{name}: no caption file under {source} (e.g. {layout.captions(layout.languages()[0])})")
    captions = {}
    for lang in languages:
        lines = _lines(source / layout.captions(lang), name)
        if len(lines) < len(index):  # clip_benchmark would evaluate this language on fewer images than the others
            raise BenchmarkError(f"{name}: {layout.captions(lang)} has {len(lines)} captions for {len(index)} images")
        captions[lang] = lines
    items, missing = [], 0
    for i, image in enumerate(index):
        path = source / "images" / image
        if not path.is_file():
            missing += 1
            continue
        items.append((path, {lang: _one_line(captions[lang][i], name) for lang in languages}))
    folder = _write(root, f"wds_{name}", _multilingual_samples(items), "retrieval", shard_size)
    return [Converted(name, folder, len(items), tuple(languages), missing)]


def convert_crossmodal3600(source: Path, root: Path, shard_size: int = SHARD_SIZE) -> list[Converted]:
    """`source/images/<key>.jpg` and `source/captions.jsonl` (Crossmodal-3600) -> `root/wds_crossmodal3600/`, with each
    language's first caption of each image, as clip_benchmark's annotation takes it."""
    items, missing, languages = [], 0, None
    for n, line in enumerate(_lines(source / "captions.jsonl", "crossmodal3600")):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
            key = entry["image/key"]
        except (ValueError, KeyError, TypeError):
            raise BenchmarkError(f"crossmodal3600: captions.jsonl line {n + 1} is not an image's captions") from None
        have = [lang for lang in CROSSMODAL3600_LANGUAGES if isinstance(entry.get(lang), dict)]
        languages = have if languages is None else [lang for lang in languages if lang in have]
        path = source / "images" / f"{key}.jpg"
        if not path.is_file():
            missing += 1
            continue
        items.append((path, {lang: _one_line(entry[lang]["caption"][0], "crossmodal3600") for lang in have}))
    if not languages:
        raise BenchmarkError(f"crossmodal3600: {source / 'captions.jsonl'} holds no language of all its images")
    items = [(path, {lang: caps[lang] for lang in languages}) for path, caps in items]
    folder = _write(root, "wds_crossmodal3600", _multilingual_samples(items), "retrieval", shard_size)
    return [Converted("crossmodal3600", folder, len(items), tuple(languages), missing)]


# ---------------------------------------------------------------- entry point

CONVERTERS: dict[str, Callable[..., list[Converted]]] = {
    "sugar_crepe": convert_sugar_crepe,
    "winoground": convert_winoground,
    "crossmodal3600": convert_crossmodal3600,
    **{name: (lambda source, root, shard_size=SHARD_SIZE, name=name: convert_indexed(name, source, root, shard_size))
       for name in MULTILINGUAL},
}


def convert(kind: str, source: str | os.PathLike, root: str | os.PathLike, shard_size: int = SHARD_SIZE) -> list[Converted]:
    """The webdataset(s) of `kind` (a key of CONVERTERS) from its original files in `source`, under `root`."""
    if kind not in CONVERTERS:
        raise UnknownNameError("source layout", kind, CONVERTERS)
    source = Path(source).expanduser()
    if not source.is_dir():
        raise BenchmarkError(f"{kind}: source folder {source} does not exist")
    return CONVERTERS[kind](source, Path(root).expanduser(), shard_size=shard_size)
