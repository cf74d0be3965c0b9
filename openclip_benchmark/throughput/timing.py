"""Timing OpenCLIP towers in this process: warm-up, then timed batches under `torch.inference_mode` and the run's
autocast, the GPU synchronised after every batch, so that the per-batch times and samples/s are what the device did.

A batch size that runs out of memory is recorded as `oom` and the larger ones of that model, mode and precision as
`skipped`; the sweep goes on. Inputs are random tensors at the model's input size and captions of realistic length
(tokenised before timing), or a webdataset folder read through clip_benchmark's reader, decode and preprocessing
included, as an evaluation sees it. torch and open_clip are imported inside the functions."""

from __future__ import annotations

import gc
import os
import platform
import random
import resource
import time
import warnings
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable

from ..core.errors import BenchmarkError
from ..core.pair import Preprocess
from ..evaluate import SPLIT, LoadedModel, load_model, resolve_device, resolve_precision, versions
from ..synthetic import NOUNS, WORDS
from .records import Measurement
from .settings import SOURCE_RANDOM, Sweep

Step = Callable[[], int]  # runs one batch, returns its sample count


def is_oom(exc: BaseException) -> bool:
    """CUDA's OutOfMemoryError, or the RuntimeError a CPU allocation failure raises."""
    import torch

    if isinstance(exc, torch.cuda.OutOfMemoryError):
        return True
    text = str(exc).lower()
    return isinstance(exc, RuntimeError) and ("out of memory" in text or "can't allocate memory" in text)


def random_captions(n: int, seed: int = 0) -> list[str]:
    """Captions of 8 to 16 words, about the length of an MSCOCO caption (10.5 words on average)."""
    rng = random.Random(seed)
    vocab = (*WORDS, *NOUNS, "a", "the", "with", "on", "in", "next", "to", "of")
    return [" ".join(rng.choice(vocab) for _ in range(rng.randint(8, 16))) for _ in range(n)]


def input_size(loaded: LoadedModel) -> tuple[int, int]:
    import open_clip

    size = open_clip.get_model_preprocess_cfg(loaded.model)["size"]
    return (size, size) if isinstance(size, int) else tuple(size)


def _random_feed(loaded: LoadedModel, mode: str, batch_size: int) -> Step:
    """The same device tensors every batch: the tower's work alone, no input pipeline."""
    import torch

    images = tokens = None
    if mode in ("image", "pair"):
        generator = torch.Generator().manual_seed(batch_size)
        images = torch.randn(batch_size, 3, *input_size(loaded), generator=generator).to(loaded.device)
    if mode in ("text", "pair"):
        tokens = loaded.tokenizer(random_captions(batch_size, seed=batch_size)).to(loaded.device)
    return _forward(loaded, lambda: (images, tokens))


def _dataset_feed(loaded: LoadedModel, mode: str, batch_size: int, folder: Path, num_workers: int) -> Step:
    """Batches from a webdataset folder, decoded and preprocessed by loader workers (cycled when it ends); texts are
    each image's first caption (retrieval) or its class's first prompt (classification), tokenised in the step."""
    import torch
    from clip_benchmark.datasets.builder import build_wds_dataset

    classnames = _lines(folder / "classnames.txt")
    template = (_lines(folder / "zeroshot_classification_templates.txt") or ["a photo of a {c}."])[0]
    nshards = int((folder / SPLIT / "nshards.txt").read_text().strip())
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*shardshuffle.*")
        dataset = build_wds_dataset(folder.name, transform=loaded.transform, split=SPLIT, data_dir=str(folder))
    loader = torch.utils.data.DataLoader(dataset.batched(batch_size), batch_size=None, shuffle=False,
                                         num_workers=min(num_workers, nshards), persistent_workers=num_workers > 0)
    batches = iter(loader)

    def feed():
        nonlocal batches
        try:
            images, labels = next(batches)
        except StopIteration:
            batches = iter(loader)
            images, labels = next(batches)
        tokens = None
        if mode in ("text", "pair"):
            texts = [_text(label, classnames, template) for label in labels]
            tokens = loaded.tokenizer(texts).to(loaded.device)
        return (images.to(loaded.device) if mode in ("image", "pair") else None), tokens

    return _forward(loaded, feed)


def _text(label: Any, classnames: list[str], template: str) -> str:
    if isinstance(label, (list, tuple)):
        return label[0]
    return template.format(c=classnames[int(label)])


def _lines(path: Path) -> list[str]:
    return [line.strip() for line in path.read_text().splitlines() if line.strip()] if path.is_file() else []


def _forward(loaded: LoadedModel, feed: Callable[[], tuple[Any, Any]]) -> Step:
    import torch

    model = loaded.model

    def step() -> int:
        images, tokens = feed()
        with torch.inference_mode(), loaded.autocast():
            if images is not None:
                model.encode_image(images)
            if tokens is not None:
                model.encode_text(tokens)
        return len(images) if images is not None else len(tokens)

    return step


def _synchronize(device: str) -> Callable[[], None]:
    import torch

    if device.startswith("cuda"):
        return lambda: torch.cuda.synchronize(device)
    return lambda: None


def time_steps(step: Step, warmup: int, iters: int | None, seconds: float | None, sync: Callable[[], None],
               before_timing: Callable[[], None] = lambda: None) -> tuple[list[float], int, float]:
    """Warm-up batches, then `iters` timed ones or as many as start within `seconds` (at least one); returns every
    batch's seconds, the samples timed and the wall time of the timed phase."""
    for _ in range(warmup):
        step()
    sync()
    before_timing()
    times, samples = [], 0
    start = time.perf_counter()
    while True:
        t0 = time.perf_counter()
        samples += step()
        sync()
        t1 = time.perf_counter()
        times.append(t1 - t0)
        if (iters is not None and len(times) >= iters) or (seconds is not None and t1 - start >= seconds):
            return times, samples, t1 - start


def _peak_memory(device: str) -> tuple[int, str]:
    import torch

    if device.startswith("cuda"):
        return int(torch.cuda.max_memory_allocated(device)), "cuda_max_allocated"
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, "cpu_max_rss"


def _free(device: str) -> None:
    """After an out-of-memory error or a model: give the allocator's cached blocks back (gc.collect is slow, so not
    between batch sizes, where reference counting frees the previous inputs anyway)."""
    import torch

    gc.collect()
    if device.startswith("cuda"):
        torch.cuda.empty_cache()


def _reset_peak(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats(device)


def measure(loaded: LoadedModel, mode: str, batch_size: int, sweep: Sweep, *, pretrained: str,
            before_timing: Callable[[], None] = lambda: None) -> Measurement:
    """One batch size of one model, mode and precision; an out-of-memory error is the measurement's status."""
    size = input_size(loaded)[0] if mode != "text" else None
    out = Measurement(loaded.text_key[0], pretrained, mode, loaded.precision, batch_size, size)
    _reset_peak(loaded.device)
    timed = False
    try:
        if sweep.source == SOURCE_RANDOM:
            step = _random_feed(loaded, mode, batch_size)
        else:
            step = _dataset_feed(loaded, mode, batch_size, Path(sweep.source), sweep.num_workers)

        def start():
            nonlocal timed
            timed = True
            before_timing()

        times, samples, wall = time_steps(step, sweep.warmup, sweep.iters, sweep.seconds,
                                          _synchronize(loaded.device), start)
    except Exception as exc:
        if not is_oom(exc):
            raise
        out.status, out.error = "oom", " ".join(str(exc).split())[:300]
        if not timed:  # workers in lock-step wait for every step's start, an out-of-memory one too
            before_timing()
        _free(loaded.device)
        return out
    out.timings_s, out.samples, out.seconds = times, samples, wall
    out.samples_per_s = samples / wall if wall > 0 else 0.0
    out.peak_memory_bytes, out.memory = _peak_memory(loaded.device)
    return out


def _skipped(loaded: LoadedModel, mode: str, batch_size: int, pretrained: str) -> Measurement:
    size = input_size(loaded)[0] if mode != "text" else None
    return Measurement(loaded.text_key[0], pretrained, mode, loaded.precision, batch_size, size, status="skipped",
                       error="a smaller batch size ran out of memory")


def load(model: str, pretrained: str, image_size: int | None, sweep: Sweep, device: str) -> LoadedModel:
    """The model as `benchmark run` loads it (open_clip, preprocessing overrides), without weights for random init."""
    tag = "" if sweep.random_init else pretrained
    try:
        return load_model(model, tag, Preprocess(image_size=image_size), device, "fp32", sweep.cache_dir)
    except BenchmarkError:
        raise
    except Exception as exc:
        hint = "" if sweep.random_init else " (offline? --random-init measures the architecture without weights)"
        raise BenchmarkError(f"cannot load {model}{':' + tag if tag else ''}: {type(exc).__name__}: {exc}{hint}")


def run_sweep(sweep: Sweep, *, say: Callable[[str], None] = lambda line: None,
              before_timing: Callable[[], None] = lambda: None) -> list[Measurement]:
    """Every model x image size x mode x precision x batch size (ascending) of the sweep, in that order. The text
    tower does not depend on the image size, so text is measured at the first image size only."""
    device = resolve_device(sweep.device)
    precisions = list(dict.fromkeys(resolve_precision(p, device) for p in sweep.precisions))
    batch_sizes = sorted(sweep.batch_sizes)
    out: list[Measurement] = []
    for model, pretrained in sweep.models:
        for k, image_size in enumerate(sweep.image_sizes):
            loaded = load(model, pretrained, image_size, sweep, device)
            for mode in sweep.modes:
                if mode == "text" and k > 0:
                    continue
                for precision in precisions:
                    run = replace(loaded, precision=precision)
                    tag = "" if sweep.random_init else pretrained
                    failed = False
                    for batch_size in batch_sizes:
                        if failed:
                            before_timing()
                            out.append(_skipped(run, mode, batch_size, tag))
                            continue
                        m = measure(run, mode, batch_size, sweep, pretrained=tag, before_timing=before_timing)
                        failed = m.status == "oom"
                        say(f"{model} {mode} {precision} batch {batch_size}: "
                            + (f"{m.samples_per_s:,.1f} samples/s" if m.status == "ok" else m.status))
                        out.append(m)
            del loaded
            _free(device)
    return out


def environment(device: str) -> dict[str, Any]:
    """Where the numbers were measured: device and its name, CPU, threads, affinity and versions."""
    import torch

    device = resolve_device(device)
    gpu = torch.cuda.get_device_name(torch.device(device)) if device.startswith("cuda") else ""
    cpu = cpu_name()
    return {
        "device": device, "device_name": gpu or cpu, "gpu_name": gpu, "cpu_name": cpu, "cpu_count": os.cpu_count(),
        "affinity": sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "torch_threads": torch.get_num_threads(), "platform": platform.platform(), "versions": versions(),
    }


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()
