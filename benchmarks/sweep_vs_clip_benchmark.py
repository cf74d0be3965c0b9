"""The same sweep three ways, side by side in one run, on CPU with fixture models and datasets:

1. per pair, as the source project ran it: one `clip_benchmark eval` process per (model, dataset) pair;
2. `benchmark run`: one process, each model loaded once, each dataset read once per model, classifier columns cached;
3. the compute lower bound: pure forward passes over the same images and prompts (decoded and tokenized
   beforehand, untimed) in this process.

It also times `benchmark run`'s worker in-process, which is the same work without process start-up and imports.

Prints the wall times and their ratios, and checks that both ways wrote the same metrics. `--smoke` runs the same
steps at toy sizes on one dataset (tests/test_benchmarks.py runs it, so the script cannot rot).

    uv run python benchmarks/sweep_vs_clip_benchmark.py [--models 2] [--images 200] [--workers 0] [--repeats 2]
    uv run python benchmarks/sweep_vs_clip_benchmark.py --smoke
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import math
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

from openclip_benchmark.synthetic import (
    make_classification_wds,
    make_multilabel_wds,
    make_retrieval_wds,
    make_tiny_model,
)

BIN = Path(sys.executable).parent
CLASSES = tuple(f"object {i}" for i in range(20))
TEMPLATES = tuple(f"{prefix} {{c}}." for prefix in (
    "a photo of a", "a blurry photo of a", "a photo of the large", "a photo of the small", "a sketch of a",
    "a rendering of a", "a cropped photo of the", "a bright photo of a", "a dark photo of the", "itap of a"))
# (dataset, task for clip_benchmark): imagenetv2 shares imagenet1k's classes, imagenet-r uses half of them
DATASETS = {"imagenet1k": "zeroshot_classification", "imagenetv2": "zeroshot_classification",
            "imagenet-r": "zeroshot_classification", "voc2007_multilabel": "zeroshot_classification",
            "mscoco_captions": "zeroshot_retrieval"}
SMOKE = dict(models=1, images=16, image_size=32, width=64, layers=1, patch_size=16, batch_size=16, repeats=1,
             datasets="imagenet1k")  # one pair: each process here costs an `import open_clip`


def build(root: Path, args) -> list[str]:
    size, n = args.image_size, args.images
    make_classification_wds(root, "imagenet1k", n=n, classes=CLASSES, image_size=size, templates=TEMPLATES, seed=1)
    make_classification_wds(root, "imagenetv2", n=n, classes=CLASSES, image_size=size, templates=TEMPLATES, seed=2)
    make_classification_wds(root, "imagenet-r", n=n, classes=CLASSES[::2], image_size=size, templates=TEMPLATES,
                            seed=3)
    make_multilabel_wds(root, "voc2007_multilabel", n=n, image_size=size, templates=TEMPLATES, seed=4)
    make_retrieval_wds(root, "mscoco_captions", n=n, image_size=size, seed=5)
    return [make_tiny_model(root, f"vit{i}", seed=i, image_size=size, width=args.width, layers=args.layers,
                            patch_size=args.patch_size, embed_dim=128) for i in range(args.models)]


def per_pair(root: Path, models: list[str], out: Path, args) -> float:
    start = time.perf_counter()
    for model in models:
        for dataset, task in args.datasets.items():
            target = out / dataset / f"{model}.json"
            target.parent.mkdir(parents=True, exist_ok=True)
            subprocess.run([str(BIN / "clip_benchmark"), "eval", "--model_type", "open_clip",
                            "--pretrained_model", f"{model},", "--dataset", f"wds/{dataset}",
                            "--dataset_root", str(root / f"wds_{dataset}"), "--task", task, "--no_amp",
                            "--num_workers", str(args.workers), "--batch_size", str(args.batch_size),
                            "--recall_k", "1", "5", "10", "--output", str(target), "--quiet"],
                           check=True, capture_output=True)
    return time.perf_counter() - start


def ours(root: Path, models: list[str], store: Path, args) -> float:
    start = time.perf_counter()
    subprocess.run([str(BIN / "benchmark"), "run", "--models", ",".join(models), "--datasets", ",".join(args.datasets),
                    "--dataset-root", str(root), "--store", str(store), "--precision", "fp32",
                    "--tracker", str(store.parent / "results.csv"),  # never the repository's tracker
                    "--num-workers", str(args.workers), "--batch-size", str(args.batch_size), "--no-progress"],
                   check=True, capture_output=True)
    return time.perf_counter() - start


def lower_bound(root: Path, models: list[str], args) -> tuple[float, float]:
    """Forward passes only, images decoded and text tokenized beforehand: every image once per model, every caption
    once, every distinct prompt once. Two floors: prompts one class per forward pass, the shape clip_benchmark's
    arithmetic (and so ours) needs for equal numbers; and prompts packed `batch_size` at a time, which is faster
    but changes the last bits of the classifier."""
    import open_clip
    import torch
    from clip_benchmark.datasets.builder import build_wds_dataset

    exact = packed = 0.0
    for model_name in models:
        model, _, transform = open_clip.create_model_and_transforms(model_name)
        model.eval()
        tokenizer = open_clip.get_tokenizer(model_name)
        images, captions, classes = [], [], {}
        for dataset in args.datasets:
            ds = build_wds_dataset(dataset, transform=transform, data_dir=str(root / f"wds_{dataset}"))
            for image, label in ds.batched(args.batch_size):
                images.append(image)
                if isinstance(label, list):
                    captions.append(tokenizer([caption for texts in label for caption in texts]))
            classes.update(dict.fromkeys(ds.classes or []))
        per_class = [tokenizer([t.format(c=c) for t in TEMPLATES]) for c in classes]
        prompts = [t.format(c=c) for c in classes for t in TEMPLATES]
        packed_prompts = [tokenizer(prompts[i:i + args.batch_size]) for i in range(0, len(prompts), args.batch_size)]
        with torch.no_grad():
            start = time.perf_counter()
            for batch in images:
                model.encode_image(batch)
            for batch in captions:
                model.encode_text(batch)
            shared = time.perf_counter() - start
            start = time.perf_counter()
            for batch in per_class:
                model.encode_text(batch)
            exact += shared + time.perf_counter() - start
            start = time.perf_counter()
            for batch in packed_prompts:
                model.encode_text(batch)
            packed += shared + time.perf_counter() - start
    return exact, packed


def in_process(root: Path, models: list[str], store: Path, args) -> float:
    """`benchmark run`'s work without its process start and imports (what the worker itself costs)."""
    from openclip_benchmark.core.manifest import Manifest, RunSettings
    from openclip_benchmark.core.pair import Pair
    from openclip_benchmark.worker import run_shard

    tasks = {"voc2007_multilabel": "multilabel", "mscoco_captions": "zeroshot_retrieval"}
    pairs = tuple(Pair(m, "", d, task=tasks.get(d, "zeroshot_classification")) for m in models for d in args.datasets)
    settings = RunSettings(batch_size=args.batch_size, num_workers=args.workers, precision="fp32",
                           dataset_root=str(root))
    start = time.perf_counter()
    with contextlib.redirect_stderr(io.StringIO()):  # its per-pair lines
        report = run_shard(Manifest(shard_id="in-process", store=str(store), pairs=pairs, settings=settings), progress=False)
    assert report.exit_code == 0, report.failed
    return time.perf_counter() - start


def same_metrics(models: list[str], datasets: dict[str, str], cb_out: Path, store: Path) -> tuple[int, int]:
    """Pairs whose metrics are equal to clip_benchmark's; our results read as `benchmark parse` reads them (the
    store also holds shard bundles and manifests, which are not results)."""
    from openclip_benchmark.catalog import load_catalog
    from openclip_benchmark.collect.parse import read_results

    ours_by_pair = {(record.pair.model, record.pair.dataset): record.metrics for record, _ in read_results(store, load_catalog())}
    equal = 0
    for model in models:
        for dataset in datasets:
            theirs = json.loads((cb_out / dataset / f"{model}.json").read_text())["metrics"]
            mine = ours_by_pair[(model, dataset)]
            equal += all((mine[k] is None) if (v is None or math.isnan(v)) else mine[k] == v for k, v in theirs.items())
    return equal, len(models) * len(datasets)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", type=int, default=2)
    parser.add_argument("--images", type=int, default=200, help="images per dataset")
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--width", type=int, default=128)
    parser.add_argument("--layers", type=int, default=3)
    parser.add_argument("--patch-size", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--workers", type=int, default=0, help="data loader workers, the same for both ways")
    parser.add_argument("--repeats", type=int, default=2, help="timings of the fast ways: the best of this many")
    parser.add_argument("--datasets", default=",".join(DATASETS), help=f"a subset of {', '.join(DATASETS)}")
    parser.add_argument("--smoke", action="store_true", help="toy sizes, one pair: that the script still runs")
    args = parser.parse_args()
    if args.smoke:  # the smoke sizes become the defaults; options given explicitly still win
        parser.set_defaults(**SMOKE)
        args = parser.parse_args()
    names = [name.strip() for name in args.datasets.split(",") if name.strip()]
    if not names or any(name not in DATASETS for name in names):
        parser.error(f"--datasets: choose among {', '.join(DATASETS)}")
    args.datasets = {name: DATASETS[name] for name in names}
    warnings.filterwarnings("ignore", message=".*shardshuffle.*")  # webdataset's, on clip_benchmark's reader

    with tempfile.TemporaryDirectory(prefix="sweep-") as tmp:
        root = Path(tmp)
        models = build(root / "data", args)
        pairs = len(models) * len(args.datasets)
        print(f"sweep: {len(models)} models x {len(args.datasets)} datasets = {pairs} pairs, {args.images} images of "
              f"{args.image_size} px each, ViT width {args.width} x {args.layers} layers, CPU, fp32", flush=True)
        t_pair = per_pair(root / "data", models, root / "cb", args)
        print(f"per pair (one clip_benchmark eval process per pair): {t_pair:8.1f} s", flush=True)
        # this machine may be shared: the fastest of a few interleaved repeats is the least disturbed
        t_ours = min(ours(root / "data", models, root / f"ours{i}", args) for i in range(args.repeats))
        print(f"benchmark run (one process):                         {t_ours:8.1f} s", flush=True)
        t_inproc, t_low, t_packed = math.inf, math.inf, math.inf
        for i in range(args.repeats):
            t_inproc = min(t_inproc, in_process(root / "data", models, root / f"inproc{i}", args))
            exact, packed = lower_bound(root / "data", models, args)
            t_low, t_packed = min(t_low, exact), min(t_packed, packed)
        print(f"benchmark run's worker in-process (no start-up):     {t_inproc:8.1f} s", flush=True)
        print(f"compute lower bound (pure forward passes):           {t_low:8.1f} s", flush=True)
        print(f"  same, prompts packed {args.batch_size} per pass (not bit-equal):   {t_packed:8.1f} s", flush=True)
        equal, total = same_metrics(models, args.datasets, root / "cb", root / "ours0")
        print(f"speed-up of benchmark run over per pair:  {t_pair / t_ours:6.2f}x")
        print(f"benchmark run / lower bound:              {t_ours / t_low:6.2f}x  ({t_ours / t_packed:.2f}x packed)")
        print(f"worker in-process / lower bound:          {t_inproc / t_low:6.2f}x  ({t_inproc / t_packed:.2f}x packed)")
        print(f"pairs with identical metrics:             {equal}/{total}")


if __name__ == "__main__":
    main()
