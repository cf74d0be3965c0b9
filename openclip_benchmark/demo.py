"""`benchmark demo`: the whole pipeline, offline, on synthetic webdatasets and tiny OpenCLIP models made on the spot.

The builders write clip_benchmark's webdataset layout (`wds_<name>/test/{0..N-1}.tar`, `nshards.txt`,
`classnames.txt`, `zeroshot_classification_templates.txt`, `dataset_type.txt`), so `clip_benchmark eval --dataset
wds/<name>` reads them as it reads the Hugging Face copies, and save models in open_clip's `local-dir:` layout.
The flow then is the real one: init (catalog + tracker), plan, the local backend (worker), parse, report.
"""

from __future__ import annotations

import io
import json
import random
import shutil
import tarfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from .core.errors import BenchmarkError
from .core.jsonio import atomic_write_json
from .tasks import get_task

TEMPLATES = ("a photo of a {c}.", "a blurry photo of the {c}.", "itap of a {c}.")
WORDS = ("red", "blue", "small", "large", "striped", "dotted", "bright", "dark", "round", "square", "old", "new")
NOUNS = ("cat", "dog", "bird", "car", "tree", "boat", "house", "flower")
MIN_IMAGES = 10
MARKER = ".openclip-benchmark-demo.json"  # only folders holding it are ever emptied by the demo

# ---------------------------------------------------------------- synthetic webdatasets and models


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


def _write_dataset(root, name: str, n: int, shards: int, seed: int, sample, files: dict[str, Sequence[str]]) -> Path:
    """`root/wds_<name>/`: `n` samples drawn in order from one seeded generator, then the metadata files."""
    rng = random.Random(seed)
    folder = Path(root) / f"wds_{name}"
    folder.mkdir(parents=True, exist_ok=True)
    _write_shards(folder, [sample(rng, i) for i in range(n)], shards)
    for filename, lines in files.items():
        _write_lines(folder / filename, lines)
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

    def sample(rng: random.Random, i: int) -> dict[str, bytes]:
        label = i % len(classes) if i < len(classes) else rng.randrange(len(classes))
        return {"png": _image_png(rng, image_size, _tint(label, len(classes))), "cls": str(label).encode()}

    files = {"classnames.txt": classes, "zeroshot_classification_templates.txt": templates}
    return _write_dataset(root, name, n, shards, seed, sample, files)


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

    def sample(rng: random.Random, i: int) -> dict[str, bytes]:
        hot = np.zeros(len(classes), dtype=np.int64)
        for k in rng.sample(range(len(classes)), rng.randint(1, min(3, len(classes)))):
            hot[k] = 1
        buf = io.BytesIO()
        np.save(buf, hot)
        return {"png": _image_png(rng, image_size, _tint(int(hot.argmax()), len(classes))), "npy": buf.getvalue()}

    files = {"classnames.txt": classes, "zeroshot_classification_templates.txt": templates,
             "dataset_type.txt": ["multilabel"]}
    return _write_dataset(root, name, n, shards, seed, sample, files)


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

    def sample(rng: random.Random, i: int) -> dict[str, bytes]:
        noun = NOUNS[i % len(NOUNS)]
        captions = [f"a {rng.choice(WORDS)} {rng.choice(WORDS)} {noun} number {i} {j}" for j in range(captions_per_image)]
        png = _image_png(rng, image_size, _tint(i % len(NOUNS), len(NOUNS)))
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


# ---------------------------------------------------------------- the demo run


@dataclass(frozen=True)
class DemoDataset:
    name: str
    task: str
    metric: str
    classes: tuple[str, ...] = ()
    captions_per_image: int | None = None


DEMO_DATASETS = (
    DemoDataset("demo_shapes", "zeroshot_classification", "acc1", ("cat", "dog", "bird", "car")),
    DemoDataset("demo_captions", "zeroshot_retrieval", "image_retrieval_recall@5", captions_per_image=3),
    DemoDataset("demo_tags", "multilabel", "mean_average_precision", ("person", "car", "dog", "chair")),
)
DEMO_MODELS = (  # (folder name, seed, width, layers, patch size)
    ("tiny-vit-a", 0, 64, 2, 8),
    ("tiny-vit-b", 1, 96, 2, 16),
)


@dataclass
class DemoLayout:
    """Where the demo puts everything: the same files a real project keeps at its top level."""

    workdir: Path

    def __post_init__(self):
        self.workdir = Path(self.workdir).expanduser().resolve()
        w = self.workdir
        self.datasets, self.models, self.cache = w / "datasets", w / "models", w / "cache"
        self.mapping, self.tracker, self.results = w / "dataset_mapping.json", w / "results.csv", w / "results"
        self.report = w / "report"


@dataclass
class DemoResult:
    layout: DemoLayout
    rows: list[dict[str, Any]] = field(default_factory=list)  # one per evaluated pair: model, dataset, task, metric, value
    shards: int = 0
    exit_code: int = 0
    seconds: float = 0.0
    written: list[Path] = field(default_factory=list)


def prepare_workdir(layout: DemoLayout) -> None:
    """An empty folder, or a previous demo's (recognised by its marker); never someone else's files."""
    w = layout.workdir
    if w.exists() and not w.is_dir():
        raise BenchmarkError(f"{w} exists and is not a folder")
    if w.is_dir() and any(w.iterdir()):
        if not (w / MARKER).is_file():
            raise BenchmarkError(f"{w} is not empty and was not made by `benchmark demo`; choose another --workdir")
        shutil.rmtree(w)
    w.mkdir(parents=True, exist_ok=True)
    atomic_write_json(w / MARKER, {"made_by": "benchmark demo", "note": "this folder is removed by the next demo run here"})


def build_fixtures(layout: DemoLayout, images: int, image_size: int = 32) -> tuple[dict[str, Any], list[str]]:
    """The synthetic datasets with their mapping file, and the tiny models as `local-dir:` references."""
    shards = 2
    entries = {}
    for i, ds in enumerate(DEMO_DATASETS):
        kind = get_task(ds.task).dataset_type
        if kind == "retrieval":
            make_retrieval_wds(layout.datasets, ds.name, n=images, captions_per_image=ds.captions_per_image or 3,
                               shards=shards, image_size=image_size, seed=i)
        elif kind == "multilabel":
            make_multilabel_wds(layout.datasets, ds.name, n=images, classes=ds.classes, shards=shards,
                                image_size=image_size, seed=i)
        else:
            make_classification_wds(layout.datasets, ds.name, n=images, classes=ds.classes, shards=shards,
                                    image_size=image_size, seed=i)
        entries[ds.name] = {
            "wds_name": f"wds_{ds.name}",
            "url": (layout.datasets / f"wds_{ds.name}").as_uri(),
            "task": ds.task,
            "split": "test",
            "size": images,
            "num_classes": len(ds.classes) or None,
            "captions_per_image": ds.captions_per_image,
            "metric": ds.metric,
            "collections": ["demo"],
            "languages": ["en"],
        }
    mapping = {"source": "synthetic data made by `benchmark demo`", "datasets": entries}
    atomic_write_json(layout.mapping, mapping)
    models = [
        make_tiny_model(layout.models, name, seed, image_size, width=width, layers=layers, patch_size=patch)
        for name, seed, width, layers, patch in DEMO_MODELS
    ]
    return mapping, models


def run_demo(
    workdir: str | Path = "demo", *, images: int = 64, batch_size: int = 32, progress: bool = True,
    say: Callable[[str], None] = lambda line: None,
) -> DemoResult:
    """Fixtures, then init, plan, the local backend, parse and report, in this one process (open_clip loads once)."""
    from .catalog import enumerate_pairs, load_datasets, load_models, select_models
    from .pipeline.launch import record_plan
    from .backends.local import run_local
    from .core.manifest import RunSettings
    from .collect.parse import parse_results
    from .planning.plan import ModelIndex, PlanOptions, plan_shards
    from .planning.pricing import load_gpus, load_prices
    from .collect.report import build_report
    from .storage.store import LocalStore
    from .core.records import Result
    from .tracker import open_tracker

    if images < MIN_IMAGES:
        raise BenchmarkError(f"--images must be at least {MIN_IMAGES} (retrieval reports recall@10)")
    started = time.perf_counter()
    layout = DemoLayout(Path(workdir))
    prepare_workdir(layout)
    say(f"fixtures: {len(DEMO_DATASETS)} synthetic webdatasets of {images} images, {len(DEMO_MODELS)} tiny models")
    _, models = build_fixtures(layout, images)
    datasets = load_datasets(layout.mapping)
    pairs = enumerate_pairs(select_models(models, load_models()), datasets.values())  # what `benchmark init` does
    with open_tracker(layout.tracker, create=True) as tracker:
        tracker.add(pairs)
    say(f"init: {len(pairs)} pairs in {_shown(layout.tracker)}")
    plan = plan_shards(
        pairs, models=ModelIndex(load_models()), datasets=datasets, gpus=load_gpus(), prices=load_prices(),
        options=PlanOptions(batch_size=batch_size),
    )
    record_plan(layout.tracker, plan.shards, spot=True)
    gpus = ", ".join(sorted({s.gpu for s in plan.shards}))
    say(f"plan: {len(plan.shards)} shard(s); on a cloud {gpus} it would cost about ${plan.cost_spot:.4f} (spot)")
    settings = RunSettings(batch_size=batch_size, num_workers=0, cache_dir=str(layout.cache),
                           dataset_root=str(layout.datasets))
    say("run: the local backend evaluates every shard here")
    local = run_local(list(plan.shards), store=LocalStore(layout.results), settings=settings,
                      tracker_path=layout.tracker, spot=True, progress=progress)
    parsed = parse_results(layout.results, layout.workdir, layout.tracker)
    page = build_report(layout.workdir, layout.report, layout.tracker)
    say(f"parse and report: metric CSVs in {_shown(layout.workdir)}, the report at {_shown(page)}")
    result = DemoResult(layout, shards=len(plan.shards), exit_code=local.exit_code,
                        written=[*parsed.written, page])
    for shard in local.reports:
        for record in shard.records:
            if isinstance(record, Result):
                metric = datasets[record.pair.dataset].metric
                result.rows.append({
                    "model": Path(record.pair.model.removeprefix("local-dir:")).name,
                    "dataset": record.pair.dataset,
                    "task": record.pair.task,
                    "metric": metric,
                    "value": record.metrics.get(metric),
                })
    result.rows.sort(key=lambda r: (r["dataset"], r["model"]))
    result.seconds = time.perf_counter() - started
    return result


def remove_workdir(layout: DemoLayout) -> None:
    """`--clean`: delete the working folder, only if the demo made it."""
    if (layout.workdir / MARKER).is_file():
        shutil.rmtree(layout.workdir)


def print_demo(result: DemoResult, console, kept: bool = True) -> None:
    """The metric table (models x datasets, each dataset's main metric), then what is where and what to try next."""
    from rich.table import Table

    datasets = list(dict.fromkeys((r["dataset"], r["metric"]) for r in result.rows))
    values = {(r["model"], r["dataset"]): r["value"] for r in result.rows}
    table = Table(title=f"demo: {len(result.rows)} pairs in {result.shards} shard(s), {result.seconds:.0f} s")
    table.add_column("model")
    for dataset, metric in datasets:
        table.add_column(f"{dataset}\n[dim]{metric}[/dim]", justify="right")
    for model in dict.fromkeys(r["model"] for r in result.rows):
        cells = [values.get((model, d)) for d, _ in datasets]
        table.add_row(model, *("—" if v is None else f"{v:.4f}" for v in cells))
    console.print(table)
    w = result.layout
    if not kept:
        console.print(f"{_shown(w.workdir)} removed (--clean); run with --keep to inspect its files")
        return
    where = Table.grid(padding=(0, 2))
    for path, what in (
        (w.mapping, "the demo's datasets, in the format of the top-level dataset_mapping.json"),
        (w.datasets, "synthetic webdatasets in clip_benchmark's layout (wds_<name>/test/*.tar)"),
        (w.models, "two tiny OpenCLIP models for open_clip's local-dir: loader"),
        (w.tracker, "the tracker: one row per pair, its status, shard and estimates"),
        (w.results, "result JSONs; the shard manifests under _manifests/"),
        (w.workdir / "leaderboard.csv", "also classification_metrics.csv, retrieval_metrics.csv"),
        (w.report / "index.html", "the HTML report with its plots"),
    ):
        where.add_row(_shown(path), f"[dim]{what}[/dim]")
    console.print(f"\n[bold]Everything is in {_shown(w.workdir)}[/bold]")
    console.print(where)
    shapes, model = DEMO_DATASETS[0].name, f"local-dir:{w.models / DEMO_MODELS[0][0]}"
    console.print("\n[bold]Try next[/bold]")
    for command in (
        f"benchmark status --tracker {_shown(w.tracker)}",
        f"benchmark run --models {model} --datasets {shapes} --dataset-root {_shown(w.datasets)} "
        f"--store {_shown(w.results)} --tracker {_shown(w.tracker)}   # resumes: the result exists, nothing runs",
        f"benchmark report --results {_shown(w.results)} --metrics {_shown(w.workdir)} --tracker {_shown(w.tracker)} "
        f"--out {_shown(w.report)}",
        f"clip_benchmark eval --dataset wds/{shapes} --dataset_root {_shown(w.datasets / f'wds_{shapes}')} "
        f"--model {model} --pretrained '' --output {_shown(w.workdir / 'cb.json')}   # clip_benchmark itself: same acc1",
    ):
        console.print(f"  {command}", soft_wrap=True, highlight=False, markup=False)


def _shown(path: Path) -> str:
    """Relative to the current folder when inside it: shorter, and what the user typed."""
    import os

    try:
        return os.path.relpath(path) if path.resolve().is_relative_to(Path.cwd().resolve()) else str(path)
    except ValueError:
        return str(path)
