"""The cost model: what a pair's work is (images, prompts, FLOPs) and how long and how much memory it takes on a GPU.

Pure: no network, no torch, no SkyPilot. Speeds come from the GPU's datasheet, scaled by calibration (observed runs)
or replaced by `benchmark throughput` measurements (see calibration.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

from ..catalog import model_family
from ..core.errors import BenchmarkError
from ..core.pair import Pair
from ..tasks import get_task
from .pricing import GpuSpec

GIB = 2**30
POOL_JOB_OVERHEAD_S = 30.0  # a job on a warm pool worker: scheduling only, setup was paid when the worker started


@dataclass(frozen=True)
class CostModel:
    """Overheads and rates shared by every estimate (ours, the source project's baseline, the lower bound)."""

    job_overhead_s: float = 300.0  # provisioning + setup (uv sync, CUDA init): paid once per job
    model_load_s: float = 15.0  # build the model, move it to the GPU: paid per model load
    weights_download_bps: float = 150e6  # bytes/s from the Hugging Face Hub
    dataset_download_bps: float = 150e6
    bytes_per_sample: float = 60e3  # average webdataset sample over the benchmark suite
    decode_per_core_s: float = 200.0  # images decoded + preprocessed per vCPU per second
    cuda_context_gib: float = 1.0
    activation_bytes_per_gflop: float = 0.1e6  # live inference activations per sample per image GFLOP (ViT-B/32: ~0.1 MB)
    memory_margin: float = 1.25
    weight_bytes_per_param: float = 6.0  # fp32 weights + fp16 autocast copies
    # one optimiser step of a task that learns on features (a linear probe: 64 features through a linear layer,
    # backward, AdamW, and its loader's collation); calibrate() learns it from the fit_seconds results record
    fit_step_s: float = 2e-3
    gpu_speed: Mapping[str, float] = field(default_factory=dict)  # observed / estimated time, from calibrate()
    measured: Mapping[tuple[str, str], "MeasuredSpeed"] = field(default_factory=dict)  # (family, GPU), from throughput

    def speed(self, gpu: str) -> float:
        return float(self.gpu_speed.get(gpu, 1.0))

    def flops(self, model: str, gpu: GpuSpec, tower: str) -> tuple[float, bool]:
        """FLOP/s of a tower (`image` or `text`) of this model's family on this GPU, and whether `benchmark
        throughput` measured it (else it is the datasheet's assumed fraction of peak, for calibrate()'s factor)."""
        speed = self.measured.get((model_family(model), gpu.name))
        value = getattr(speed, tower) if speed is not None else None
        return (value, True) if value else (gpu.effective_flops, False)

    def basis(self, model: str, gpu: str) -> str:
        """Where a model's speed on a GPU comes from: measured (throughput), calibrated (results) or assumed."""
        if (model_family(model), gpu) in self.measured:
            return "measured"
        return "calibrated" if gpu in self.gpu_speed else "assumed"


@dataclass(frozen=True)
class MeasuredSpeed:
    """Effective FLOP/s that `benchmark throughput` measured for a model family's towers on a GPU: samples/s times
    the catalog's GFLOPs per sample, so one measured architecture also sizes the family's others by their FLOPs."""

    image: float | None
    text: float | None
    source: str  # what was measured: models, precision, batch size


@dataclass(frozen=True)
class ModelWork:
    model: str
    pretrained: str
    params: float
    image_gflops: float
    text_gflops: float
    image_size: int | None = None  # native input size, to scale the work of resolution overrides
    note: str = ""  # set when the numbers are a fallback estimate, not the catalog's


@dataclass(frozen=True)
class PairWork:
    pair: Pair
    model: ModelWork
    images: int
    prompts: int  # unique texts through the text tower (classes x templates, or captions)
    classifier: str | None  # pairs with the same key share one zero-shot classifier per model load
    image_gflops: float  # per image, after any resolution override
    note: str = ""
    fit_steps: int = 0  # optimiser steps of its task's learning (a linear probe's training and sweep)
    # the splits whose images it reads and their sizes: the scored one, then those it learns from (a probe's train)
    passes: tuple[tuple[str, int], ...] = ()


FALLBACK_MODEL = dict(params=1.0e9, image_gflops=200.0, text_gflops=30.0)  # conservative: about ViT-g-14
FALLBACK_SIZE = 50_000  # images of a dataset the catalog lacks; conservative: about ImageNet (its task adds prompts)


class ModelIndex:
    """Catalog lookups by (arch, pretrained), falling back to the architecture (checkpoint paths, new tags)."""

    def __init__(self, models: Iterable[Any]):
        self.exact: dict[tuple[str, str], Any] = {}
        self.by_arch: dict[str, Any] = {}
        for m in models:
            self.exact[(m.arch, m.pretrained)] = m
            self.by_arch.setdefault(m.arch, m)

    def work(self, model: str, pretrained: str) -> ModelWork:
        spec, note = self.exact.get((model, pretrained)), ""
        if spec is None:
            spec = self.by_arch.get(model)
            note = f"{model}:{pretrained} estimated from the {model} architecture" if spec is not None else ""
        if spec is None:
            return ModelWork(
                model, pretrained, note=f"{model}:{pretrained} not in the catalog: conservative default estimate", **FALLBACK_MODEL
            )
        return ModelWork(
            model,
            pretrained,
            params=float(spec.params or (spec.image_params or 0) + (spec.text_params or 0) or FALLBACK_MODEL["params"]),
            image_gflops=float(spec.image_gflops or FALLBACK_MODEL["image_gflops"]),
            text_gflops=float(spec.text_gflops or FALLBACK_MODEL["text_gflops"]),
            image_size=getattr(spec, "image_size", None),
            note=note,
        )


def pair_work(pair: Pair, model: ModelWork, datasets: Mapping[str, Any]) -> PairWork:
    """The pair's images, prompts and fitting steps from its dataset's spec alone (its task counts them): the images
    of the splits it learns from (a linear probe's train split) go through the image tower too."""
    spec = datasets.get(pair.dataset)
    note = "" if spec is not None else f"dataset {pair.dataset} not in the catalog: conservative default size"
    size = int(getattr(spec, "size", 0) or FALLBACK_SIZE)
    gflops = model.image_gflops
    if pair.preprocess.image_size and model.image_size:
        gflops *= (pair.preprocess.image_size / model.image_size) ** 2  # ViT tokens scale with the pixel area
    task = get_task(pair.task)
    fit = task.fit_splits(spec)
    missing = [s for s in fit if spec is not None and s not in spec.splits]
    if missing:
        raise BenchmarkError(f"{pair.task} on {pair.dataset} learns from a {missing[0]} split, which the catalog does "
                             f"not list for it (splits: {', '.join(spec.splits)})")
    passes = ((getattr(spec, "split", "test"), size),
              *((s, spec.splits[s] if spec is not None else FALLBACK_SIZE) for s in fit))
    return PairWork(pair, model, sum(n for _, n in passes), task.prompt_count(spec, size, pair.language),
                    task.classifier(pair), gflops, note, task.fit_steps(spec), passes)


def memory_needed_gib(model: ModelWork, image_gflops: float, batch_size: int, cost: CostModel) -> float:
    weights = model.params * cost.weight_bytes_per_param
    activations = batch_size * image_gflops * cost.activation_bytes_per_gflop
    return (cost.cuda_context_gib * GIB + weights + activations) * cost.memory_margin / GIB


def fits(model: ModelWork, image_gflops: float, gpu: GpuSpec, batch_size: int, cost: CostModel) -> bool:
    return memory_needed_gib(model, image_gflops, batch_size, cost) <= gpu.memory_gib


def image_seconds(work: PairWork, gpu: GpuSpec, vcpus: int, cost: CostModel, images: int | None = None) -> float:
    """Its images (or `images` of them) through the image tower; decoding overlaps with the GPU, so the slower of the
    two sets the pace."""
    images = work.images if images is None else images
    flops, measured = cost.flops(work.model.model, gpu, "image")
    compute = images * work.image_gflops * 1e9 / flops
    decode = images / (cost.decode_per_core_s * max(1, vcpus))
    return max(compute, decode) * (1.0 if measured else cost.speed(gpu.name))


def text_seconds(prompts: int, model: ModelWork, gpu: GpuSpec, cost: CostModel) -> float:
    flops, measured = cost.flops(model.model, gpu, "text")
    return prompts * model.text_gflops * 1e9 / flops * (1.0 if measured else cost.speed(gpu.name))


def fit_seconds(work: PairWork, cost: CostModel) -> float:
    """Its task's learning on the features (a linear probe's sweep and training): steps at the calibrated rate."""
    return work.fit_steps * cost.fit_step_s


def load_seconds(model: ModelWork, cost: CostModel) -> float:
    return cost.model_load_s + model.params * 4 / cost.weights_download_bps


def download_seconds(images: int, cost: CostModel) -> float:
    return images * cost.bytes_per_sample / cost.dataset_download_bps


def pure_work_seconds(works: Iterable[PairWork], gpu: GpuSpec) -> float:
    """Model FLOPs only (each classifier once per model): the floor no schedule can beat."""
    total, seen = 0.0, set()
    for w in works:
        for read, images in image_passes(w):
            if read not in seen:
                seen.add(read)
                total += images * w.image_gflops * 1e9
        key = (w.pair.model, w.pair.pretrained, w.classifier or w.pair.id)
        if key not in seen:
            seen.add(key)
            total += w.prompts * w.model.text_gflops * 1e9
    return total / gpu.effective_flops


def image_passes(w: PairWork) -> list[tuple[tuple, int]]:
    """The image passes a pair needs, with their images: the worker reads each split of a dataset once per model and
    preprocessing for all the pairs that read it (zero-shot and linear probe share the test split's)."""
    passes = w.passes or (("test", w.images),)
    return [((w.pair.model, w.pair.pretrained, w.pair.dataset, w.pair.preprocess, split), n) for split, n in passes]


@dataclass(frozen=True)
class Unit:
    """Pairs of one model that must stay together: those sharing a classifier pay its text work once, those scoring
    one split of a dataset (its languages, its tasks) that split's image pass once."""

    key: str
    works: tuple[PairWork, ...]
    seconds: float


def units(works: list[PairWork], gpu: GpuSpec, vcpus: int, cost: CostModel, capacity: float) -> list[Unit]:
    """A model's pairs grouped by the classifier they share, with their seconds on this GPU; a group longer than
    `capacity` (one job's work) is split into its pairs."""
    groups: dict[str, list[PairWork]] = {}
    readers: dict[tuple, str] = {}  # the scored split's image pass -> the group that pays it
    for w in works:
        key = w.classifier or readers.setdefault(image_passes(w)[0][0], w.pair.id)
        groups.setdefault(key, []).append(w)
    out = []
    for key, members in sorted(groups.items()):
        text = text_seconds(members[0].prompts, members[0].model, gpu, cost) if members[0].classifier else 0.0

        def own(w: PairWork) -> float:  # a pair's text work where it shares no classifier, and its fitting
            return (0.0 if w.classifier else text_seconds(w.prompts, w.model, gpu, cost)) + fit_seconds(w, cost)

        passes = {read: (w, n) for w in members for read, n in image_passes(w)}
        images = sum(image_seconds(w, gpu, vcpus, cost, n) for w, n in passes.values())
        seconds = text + images + sum(own(w) for w in members)
        if seconds > capacity and len(members) > 1:  # too long for one job together: split, each part rebuilds the classifier
            out += [Unit(w.pair.id, (w,), text + image_seconds(w, gpu, vcpus, cost) + own(w)) for w in members]
        else:
            out.append(Unit(key, tuple(members), seconds))
    return out

