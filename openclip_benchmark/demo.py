"""`benchmark demo`: the whole pipeline, offline, on synthetic webdatasets and tiny OpenCLIP models made on the spot.

The fixtures come from `synthetic` (clip_benchmark's webdataset layout, open_clip's `local-dir:` models), so
`clip_benchmark eval --dataset wds/<name>` reads them as it reads the Hugging Face copies. The flow then is the
real one: init (catalog + tracker), plan, the local backend (worker), parse, report.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from .catalog import load_catalog
from .core.errors import BenchmarkError
from .core.jsonio import atomic_write_json
from .core.manifest import RunSettings
from .pipeline import collect
from .pipeline.launch import PlanRequest, launch
from .pipeline.track import init_tracker
from .synthetic import make_classification_wds, make_multilabel_wds, make_retrieval_wds, make_tiny_model
from .tasks import get_task


MIN_IMAGES = 10
MARKER = ".openclip-benchmark-demo.json"  # only folders holding it are ever emptied by the demo


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
    precision: str = "fp32"  # as the worker resolved `auto` on this machine
    batch_size: int = 32
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
    """Fixtures, then the CLI's own use cases: init, launch on the local backend (which plans first), parse and
    report, in this one process (open_clip loads once)."""
    if images < MIN_IMAGES:
        raise BenchmarkError(f"--images must be at least {MIN_IMAGES} (retrieval reports recall@10)")
    started = time.perf_counter()
    layout = DemoLayout(Path(workdir))
    prepare_workdir(layout)
    say(f"fixtures: {len(DEMO_DATASETS)} synthetic webdatasets of {images} images, {len(DEMO_MODELS)} tiny models")
    _, models = build_fixtures(layout, images)
    catalog = load_catalog(layout.mapping)
    init = init_tracker(layout.tracker, catalog, models, [], [])  # `benchmark init --dataset-mapping ... -m ...`
    say(f"init: {init.added} pairs in {shown(layout.tracker)}")
    settings = RunSettings(batch_size=batch_size, num_workers=0, cache_dir=str(layout.cache),
                           dataset_root=str(layout.datasets))

    def show(preview) -> None:
        plan = preview.planned.plan
        gpus = ", ".join(sorted({s.gpu for s in plan.shards}))
        say(f"plan: {len(plan.shards)} shard(s); on a cloud {gpus} it would cost about ${plan.cost_spot:.4f} (spot)")
        say("launch --backend local: every shard runs here")

    launched = launch(  # `benchmark launch --backend local --store results --dataset-root datasets`
        layout.tracker, catalog, PlanRequest(batch_size=batch_size, results=layout.results), backend="local",
        budget=None, max_jobs=init.selected, dry_run=False, store_url=str(layout.results),
        endpoint_url=None, settings=settings, show=show, progress=progress,
    )
    parsed = collect.parse(layout.results, layout.workdir, layout.tracker, catalog)
    page = collect.report(layout.results, layout.workdir, layout.tracker, layout.report, catalog, parsed=parsed).page
    say(f"parse and report: metric CSVs in {shown(layout.workdir)}, the report at {shown(page)}")
    submission = launched.submission
    result = DemoResult(layout, shards=len(launched.preview.selected), batch_size=batch_size,
                        exit_code=submission.exit_code if submission else 0, written=[*parsed.written, page])
    for record in (found.record for found in parsed.found):
        result.precision = record.run.precision or result.precision
        metric = catalog.main_metric(record.pair.dataset, record.pair.task)
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


def parity_command(result: DemoResult) -> list[str]:
    """`clip_benchmark eval` on the demo's classification set and first model, with the settings the worker used,
    so it prints the same acc1: its loader workers at most the set's shards (webdataset refuses more), plain fp32
    where the worker ran fp32 (clip_benchmark's default is autocast, bf16 on a CPU), the same batch size."""
    w = result.layout
    dataset, model = DEMO_DATASETS[0].name, f"local-dir:{shown(w.models / DEMO_MODELS[0][0])}"
    return ["clip_benchmark", "eval", "--dataset", f"wds/{dataset}", "--dataset_root", shown(w.datasets / f"wds_{dataset}"),
            "--model", model, "--pretrained", "", "--output", shown(w.workdir / "cb.json"),
            "--batch_size", str(result.batch_size), "--num_workers", "0",
            *(["--no_amp"] if result.precision == "fp32" else [])]


def remove_workdir(layout: DemoLayout) -> None:
    """`--clean`: delete the working folder, only if the demo made it."""
    if (layout.workdir / MARKER).is_file():
        shutil.rmtree(layout.workdir)


def shown(path: Path) -> str:
    """Relative to the current folder when inside it: shorter, and what the user typed."""
    import os

    try:
        return os.path.relpath(path) if path.resolve().is_relative_to(Path.cwd().resolve()) else str(path)
    except ValueError:
        return str(path)
