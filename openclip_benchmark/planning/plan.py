"""The plan: GPU sizing, the runtime and cost model, packing pairs into shards, the budget.

Pure: no network, no torch, no SkyPilot. A shard loads each of its models once, downloads each of its datasets
once and builds each zero-shot classifier once per model; shards are sized near a target duration so that a
preemption loses little, and their ids come from their content (the same pairs give the same shards and ids).
"""

from __future__ import annotations

import hashlib
import heapq
import statistics
from dataclasses import dataclass, field, replace
from typing import Any, Iterable, Mapping

from ..catalog import model_family
from ..core.errors import BenchmarkError
from ..core.pair import Pair
from ..tasks import get_task
from .pricing import GpuSpec, Offer, PriceTable, gpu_from_device_name

GIB = 2**30
DEFAULT_TARGET_S = 45 * 60  # spot: a preemption costs a restart and the pair in flight; short jobs bound the rest
DEFAULT_ON_DEMAND_TARGET_S = 90 * 60  # on demand nothing is preempted: longer jobs, fewer setups and downloads
# SkyPilot's cap on managed jobs running at once (sky.utils.controller_utils.MAX_TOTAL_RUNNING_JOBS; a test reads it)
SKYPILOT_MAX_RUNNING_JOBS = 2000
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


@dataclass(frozen=True)
class PlanOptions:
    gpus: tuple[str, ...] | None = None  # allowed GPUs; None: every GPU of the table
    clouds: tuple[str, ...] | None = None  # allowed clouds; None: every cloud of the price table
    spot: bool = True
    target_s: float | None = None  # None: DEFAULT_TARGET_S on spot, DEFAULT_ON_DEMAND_TARGET_S on demand
    batch_size: int = 64

    @property
    def target(self) -> float:
        """Target seconds of one job, overheads included."""
        if self.target_s is not None:
            return self.target_s
        return DEFAULT_TARGET_S if self.spot else DEFAULT_ON_DEMAND_TARGET_S


@dataclass(frozen=True)
class Shard:
    shard_id: str
    pairs: tuple[Pair, ...]
    gpu: str
    offer: Offer
    runtime_s: float
    cost_spot: float | None
    cost_on_demand: float | None
    pair_seconds: Mapping[str, float]  # pair id -> estimated seconds of its own work
    models: tuple[str, ...]
    datasets: tuple[str, ...]
    spot: bool = True  # the purchase option the job asks for; a spot plan runs a shard on demand where that is cheaper
    speed: str = "assumed"  # where its GPU speeds come from: measured, calibrated, assumed (or several, `/`-joined)

    def cost(self, spot: bool) -> float:
        """Dollars when launched with `--spot` (spot, or on demand where the plan found that cheaper) or `--on-demand`."""
        value = self.cost_spot if spot else self.cost_on_demand
        return float("inf") if value is None else value


@dataclass(frozen=True)
class Plan:
    shards: tuple[Shard, ...]
    options: PlanOptions
    notes: tuple[str, ...] = ()

    @property
    def runtime_s(self) -> float:
        return sum(s.runtime_s for s in self.shards)

    @property
    def cost_spot(self) -> float:
        return sum(s.cost_spot or 0.0 for s in self.shards)

    @property
    def cost_on_demand(self) -> float:
        return sum(s.cost_on_demand or 0.0 for s in self.shards)

    def cost(self, spot: bool | None = None) -> float:
        return sum(s.cost(self.options.spot if spot is None else spot) for s in self.shards)

    def wall_clock_s(self, max_parallel: int = SKYPILOT_MAX_RUNNING_JOBS, shards: Iterable[Shard] | None = None) -> float:
        """How long the shards take with `max_parallel` jobs at once: see `estimate_wall_clock`."""
        return estimate_wall_clock([s.runtime_s for s in (self.shards if shards is None else shards)], max_parallel)


def estimate_wall_clock(runtimes: Iterable[float], max_parallel: int) -> float:
    """Longest job first onto the slot free soonest (the LPT rule, within 4/3 of the best order): what a queue of
    managed jobs with at most `max_parallel` running takes; never less than the longest job."""
    if max_parallel < 1:
        raise BenchmarkError("--max-parallel must be at least 1")
    ordered = sorted(runtimes, reverse=True)
    slots = [0.0] * max(1, min(max_parallel, len(ordered)))  # a heap: the soonest free slot first
    for runtime in ordered:
        heapq.heapreplace(slots, slots[0] + runtime)
    return max(slots)


# ---------------------------------------------------------------- work of a pair

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
    images = size + sum(spec.splits[s] if spec is not None else FALLBACK_SIZE for s in fit)
    return PairWork(pair, model, images, task.prompts(spec, size), task.classifier(pair), gflops, note,
                    task.fit_steps(spec))


# ---------------------------------------------------------------- runtime on one GPU

def memory_needed_gib(model: ModelWork, image_gflops: float, batch_size: int, cost: CostModel) -> float:
    weights = model.params * cost.weight_bytes_per_param
    activations = batch_size * image_gflops * cost.activation_bytes_per_gflop
    return (cost.cuda_context_gib * GIB + weights + activations) * cost.memory_margin / GIB


def fits(model: ModelWork, image_gflops: float, gpu: GpuSpec, batch_size: int, cost: CostModel) -> bool:
    return memory_needed_gib(model, image_gflops, batch_size, cost) <= gpu.memory_gib


def image_seconds(work: PairWork, gpu: GpuSpec, vcpus: int, cost: CostModel) -> float:
    """Images through the image tower; decoding overlaps with the GPU, so the slower of the two sets the pace."""
    flops, measured = cost.flops(work.model.model, gpu, "image")
    compute = work.images * work.image_gflops * 1e9 / flops
    decode = work.images / (cost.decode_per_core_s * max(1, vcpus))
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
        total += w.images * w.image_gflops * 1e9
        key = (w.pair.model, w.pair.pretrained, w.classifier or w.pair.id)
        if key not in seen:
            seen.add(key)
            total += w.prompts * w.model.text_gflops * 1e9
    return total / gpu.effective_flops


# ---------------------------------------------------------------- GPU choice

@dataclass(frozen=True)
class _Unit:
    """Pairs of one model that must stay together: those sharing a classifier pay its text work once."""

    key: str
    works: tuple[PairWork, ...]
    seconds: float


def _units(works: list[PairWork], gpu: GpuSpec, vcpus: int, cost: CostModel, capacity: float) -> list[_Unit]:
    groups: dict[str, list[PairWork]] = {}
    for w in works:
        groups.setdefault(w.classifier or w.pair.id, []).append(w)
    units = []
    for key, members in sorted(groups.items()):
        text = text_seconds(members[0].prompts, members[0].model, gpu, cost) if members[0].classifier else 0.0
        seconds = text + sum(image_seconds(w, gpu, vcpus, cost) + fit_seconds(w, cost) + (0 if w.classifier else text_seconds(w.prompts, w.model, gpu, cost)) for w in members)
        if seconds > capacity and len(members) > 1:  # too long for one job together: split, each part rebuilds the classifier
            units += [_Unit(w.pair.id, (w,), text + image_seconds(w, gpu, vcpus, cost) + fit_seconds(w, cost))
                      for w in members]
        else:
            units.append(_Unit(key, tuple(members), seconds))
    return units


@dataclass(frozen=True)
class Candidate:
    """One way to run a job: a GPU on an instance type, bought spot or on demand."""

    gpu: GpuSpec
    offer: Offer
    spot: bool

    @property
    def hourly(self) -> float:
        return self.offer.hourly(self.spot)


def candidate_offers(gpus: Mapping[str, GpuSpec], prices: PriceTable, options: PlanOptions) -> list[Candidate]:
    """Every allowed instance at the user's purchase option; with spot, on-demand offers compete too.

    An on-demand instance that costs less per hour than spot for the same work is better on every count (it is
    never preempted), so a spot plan may run some shards on demand; an on-demand plan never uses spot.
    """
    names = options.gpus or tuple(sorted(gpus))
    unknown = [g for g in names if g not in gpus]
    if unknown:
        raise BenchmarkError(f"unknown GPU(s) {', '.join(unknown)}; known: {', '.join(sorted(gpus))}")
    demand = [Candidate(gpus[g], o, False) for g in names for o in prices.offers_for(g, options.clouds, False)]
    if not options.spot:
        out = demand
    else:  # a spot plan needs some spot offer: one that finds none was meant for --on-demand
        out = [Candidate(gpus[g], o, True) for g in names for o in prices.offers_for(g, options.clouds, True)]
        out += demand if out else []
    if not out:
        what = "spot" if options.spot else "on-demand"
        raise BenchmarkError(
            f"no {what} price for GPU(s) {', '.join(names)} in cloud(s) {', '.join(options.clouds or ('any',))}"
        )
    return out


def choose_offer(works: list[PairWork], candidates: list[Candidate], options: PlanOptions, cost: CostModel) -> Candidate:
    """Lowest cost for this model's pairs (load, reading, compute, its share of job overhead) among fitting GPUs.

    A model's share of the job overhead is the fraction of a job its work fills: small models share jobs with others.
    """
    model = works[0].model
    peak = max(w.image_gflops for w in works)
    best = None
    for c in candidates:
        if not fits(model, peak, c.gpu, options.batch_size, cost):
            continue
        units = _units(works, c.gpu, c.offer.vcpus, cost, options.target - cost.job_overhead_s)
        busy = load_seconds(model, cost) + sum(u.seconds for u in units)
        dollars = c.hourly * busy * (1 + cost.job_overhead_s / (options.target - cost.job_overhead_s)) / 3600
        key = (round(dollars, 9), c.gpu.memory_gib, c.gpu.name, c.spot, c.offer.cloud, c.offer.instance_type)  # ties: on demand
        if best is None or key < best[0]:
            best = (key, c)
    if best is None:
        need = memory_needed_gib(model, peak, options.batch_size, cost)
        raise BenchmarkError(
            f"{model.model}:{model.pretrained} needs about {need:.0f} GiB at batch size {options.batch_size}; "
            "no allowed GPU has that much memory (lower --batch-size or allow a larger GPU)"
        )
    return best[1]


# ---------------------------------------------------------------- packing

@dataclass
class _Chunk:
    """Pairs of one model that one job runs, on one candidate instance; a job may hold several."""

    where: Candidate
    model: ModelWork
    units: list[_Unit]

    @property
    def seconds(self) -> float:
        return sum(u.seconds for u in self.units)


def _downloads(works: Iterable[PairWork]) -> dict[str, int]:
    """Images each dataset's download holds: the most any of its pairs reads (a linear probe's train split too)."""
    out: dict[str, int] = {}
    for w in works:
        out[w.pair.dataset] = max(out.get(w.pair.dataset, 0), w.images)
    return out


def shard_id(pairs: Iterable[Pair], gpu: str) -> str:
    digest = hashlib.sha256(("\n".join(sorted(p.id for p in pairs)) + "\n" + gpu).encode()).hexdigest()
    return f"shard-{digest[:12]}"


def _shard(chunks: list[_Chunk], cost: CostModel, prices: PriceTable, options: PlanOptions) -> Shard:
    where = chunks[0].where
    gpu, offer = where.gpu, where.offer
    works = [w for c in chunks for u in c.units for w in u.works]
    datasets = _downloads(works)
    runtime = (
        cost.job_overhead_s
        + sum(load_seconds(c.model, cost) for c in chunks)
        + sum(download_seconds(n, cost) for n in datasets.values())
        + sum(c.seconds for c in chunks)
    )
    pair_seconds = {}
    for c in chunks:
        for u in c.units:
            share = u.seconds / len(u.works)
            for w in u.works:
                pair_seconds[w.pair.id] = share
    if options.spot and not where.spot:  # cheaper on demand than spot: it runs on demand whatever the flag
        spot_rate = demand_rate = where.hourly
    else:
        same_host = [o for o in prices.offers_for(gpu.name, options.clouds, spot=not where.spot) if o.vcpus >= offer.vcpus]
        other = same_host[0].hourly(not where.spot) if same_host else None
        spot_rate, demand_rate = (where.hourly, other) if where.spot else (other, where.hourly)
    pairs = tuple(w.pair for w in works)
    return Shard(
        shard_id=shard_id(pairs, gpu.name),
        pairs=pairs,
        gpu=gpu.name,
        offer=offer,
        runtime_s=runtime,
        cost_spot=None if spot_rate is None else spot_rate * runtime / 3600,
        cost_on_demand=None if demand_rate is None else demand_rate * runtime / 3600,
        pair_seconds=pair_seconds,
        models=tuple(dict.fromkeys(f"{c.model.model}:{c.model.pretrained}" for c in chunks)),
        datasets=tuple(datasets),
        spot=where.spot,
        speed="/".join(sorted({cost.basis(c.model.model, gpu.name) for c in chunks})),
    )


@dataclass
class _Bin:
    """One job being filled: its chunks by model, the seconds it has taken and the datasets it downloads."""

    chunks: dict[tuple[str, str], _Chunk] = field(default_factory=dict)
    seconds: float = 0.0
    datasets: set[str] = field(default_factory=set)

    def need(self, unit: _Unit, model: ModelWork, cost: CostModel) -> float:
        new = _downloads(w for w in unit.works if w.pair.dataset not in self.datasets)
        load = 0.0 if (model.model, model.pretrained) in self.chunks else load_seconds(model, cost)
        return unit.seconds + load + sum(download_seconds(n, cost) for n in new.values())

    def add(self, unit: _Unit, where: Candidate, model: ModelWork, need: float) -> None:
        self.chunks.setdefault((model.model, model.pretrained), _Chunk(where, model, [])).units.append(unit)
        self.seconds += need
        self.datasets.update(w.pair.dataset for w in unit.works)


def _pack(models: list[tuple[Candidate, ModelWork, list[_Unit]]], capacity: float, cost: CostModel) -> list[list[_Chunk]]:
    """Fill jobs unit by unit, model after model: a unit goes to a job that already loads its model if it fits there,
    else to the first job with room (one more model load there), else to a new job. Jobs come out nearly full, so
    there are few of them, and a model is split over few jobs."""
    bins: list[_Bin] = []
    for where, model, units in models:
        for unit in sorted(units, key=lambda u: (-u.seconds, u.key)):
            own = [b for b in bins if (model.model, model.pretrained) in b.chunks]
            best = min((b for b in own if b.seconds + b.need(unit, model, cost) <= capacity),
                       key=lambda b: capacity - b.seconds, default=None)
            if best is None:
                best = next((b for b in bins if b.seconds + b.need(unit, model, cost) <= capacity), None)
            if best is None:
                best = _Bin()
                bins.append(best)
            best.add(unit, where, model, best.need(unit, model, cost))
    return [list(b.chunks.values()) for b in bins]


def plan_shards(
    pairs: Iterable[Pair],
    *,
    models: ModelIndex,
    datasets: Mapping[str, Any],
    gpus: Mapping[str, GpuSpec],
    prices: PriceTable,
    options: PlanOptions = PlanOptions(),
    cost: CostModel = CostModel(),
) -> Plan:
    """Pack pairs into shards near `options.target`, each on the cheapest GPU that fits its models."""
    if options.target <= cost.job_overhead_s:
        raise BenchmarkError(f"target duration must exceed the per-job overhead ({cost.job_overhead_s:.0f} s)")
    candidates = candidate_offers(gpus, prices, options)
    by_model: dict[tuple[str, str], list[Pair]] = {}
    for pair in sorted(set(pairs), key=Pair.sort_key):
        by_model.setdefault((pair.model, pair.pretrained), []).append(pair)
    notes: list[str] = []
    by_offer: dict[tuple, list[tuple[Candidate, ModelWork, list[_Unit]]]] = {}
    for (model_name, pretrained), members in by_model.items():
        model = models.work(model_name, pretrained)
        works = [pair_work(p, model, datasets) for p in members]
        notes += [n for n in [model.note, *(w.note for w in works)] if n]
        where = choose_offer(works, candidates, options, cost)
        measured = cost.measured.get((model_family(model_name), where.gpu.name))
        if measured is not None:
            notes.append(f"{model_family(model_name)} on {where.gpu.name}: speed measured ({measured.source})")
        units = _units(works, where.gpu, where.offer.vcpus, cost, options.target - cost.job_overhead_s)
        key = (where.gpu.name, where.offer.cloud, where.offer.instance_type, where.spot)
        by_offer.setdefault(key, []).append((where, model, units))
    shards = []
    for key in sorted(by_offer):
        for chunks in _pack(by_offer[key], options.target - cost.job_overhead_s, cost):
            shards.append(_shard(chunks, cost, prices, options))
    return Plan(tuple(shards), options, tuple(dict.fromkeys(notes)))


def within_budget(shards: Iterable[Shard], budget: float | None, spot: bool, max_jobs: int | None = None) -> tuple[list[Shard], list[Shard]]:
    """Shards in plan order, skipping any that would take the total past the budget and taking later ones that
    still fit, up to `max_jobs`; the rest are left for later."""
    chosen, left, spent = [], [], 0.0
    for s in shards:
        price = s.cost(spot)
        if (budget is None or spent + price <= budget) and (max_jobs is None or len(chosen) < max_jobs):
            chosen.append(s)
            spent += price
        else:
            left.append(s)
    return chosen, left


# ---------------------------------------------------------------- calibration

def _gpu_of(run: Mapping[str, Any], gpus: Mapping[str, GpuSpec]) -> str | None:
    name = run.get("gpu_name") or run.get("gpu") or ""
    return gpu_from_device_name(str(name), gpus) if name else None


def calibrate(
    records: Iterable[Any],
    *,
    models: ModelIndex,
    datasets: Mapping[str, Any],
    gpus: Mapping[str, GpuSpec],
    cost: CostModel = CostModel(),
    default_vcpus: int = 4,
) -> tuple[CostModel, dict[str, tuple[float, int]]]:
    """Per-GPU time factor = median of observed / estimated seconds over the results that GPU produced; the seconds
    per fitting step = median over the results of tasks that learn on features (a linear probe's `fit_seconds`).

    Returns the recalibrated model and, per GPU, (factor, number of results). Results without a run block, a
    GPU name or a positive duration are ignored; factors are clamped to [0.05, 20] so one odd run cannot wreck a plan.
    """
    ratios: dict[str, list[float]] = {}
    steps: list[float] = []
    base = replace(cost, gpu_speed={}, measured={})
    for rec in records:
        if getattr(rec, "kind", "result") != "result":
            continue
        run = rec.run or {}
        seconds, gpu = run.get("seconds"), _gpu_of(run, gpus)
        if gpu is None or not isinstance(seconds, (int, float)) or seconds <= 0:
            continue
        fitting, fit_steps = run.get("fit_seconds"), run.get("fit_steps")
        if isinstance(fitting, (int, float)) and isinstance(fit_steps, int) and fit_steps > 0:
            steps.append(float(fitting) / fit_steps)
            continue  # its passes may come from the feature cache: the speed factor learns from the other results
        pair = rec.pair
        model = models.work(pair.model, pair.pretrained)
        work = pair_work(pair, model, datasets)
        if isinstance(run.get("num_samples"), int) and run["num_samples"] > 0:
            work = replace(work, images=run["num_samples"])
        vcpus = int(run.get("num_workers") or default_vcpus)
        estimate = image_seconds(work, gpus[gpu], vcpus, base) + text_seconds(work.prompts, model, gpus[gpu], base)
        if estimate > 0:
            ratios.setdefault(gpu, []).append(float(seconds) / estimate)
    factors = {g: (min(20.0, max(0.05, statistics.median(r))), len(r)) for g, r in sorted(ratios.items())}
    fit_step_s = statistics.median(steps) if steps else cost.fit_step_s
    return replace(cost, gpu_speed={g: f for g, (f, _) in factors.items()}, fit_step_s=fit_step_s), factors


def measured_speeds(
    rows: Iterable[Mapping[str, Any]],
    *,
    models: ModelIndex,
    gpus: Mapping[str, GpuSpec],
    batch_size: int = 64,
) -> dict[tuple[str, str], MeasuredSpeed]:
    """(family, GPU) -> the towers' effective FLOP/s from `benchmark throughput` rows (records.rows) of that GPU.

    Per model, GPU and tower: the amp figure (what `auto` runs on a GPU; fp32 only where amp was not measured) at the
    largest measured batch size up to the plan's (else the smallest), the latest run's; a family's figure is the
    median of its models'. Rows of CPUs, endpoints, worker sets, failed points and models the catalog has no FLOPs
    for are left out."""
    points: dict[tuple[str, str, str, str], dict[tuple[bool, bool, int], tuple[float, str]]] = {}
    for row in rows:
        model, mode = str(row.get("model", "")), row.get("mode")
        if (row.get("status") != "ok" or mode not in ("image", "text") or row.get("workers")
                or not str(row.get("device", "")).startswith("cuda") or model not in models.by_arch):
            continue
        gpu = gpu_from_device_name(str(row.get("device_name") or ""), gpus)
        rate, batch = float(row.get("samples_per_s") or 0), int(row.get("batch_size") or 0)
        if gpu is None or rate <= 0:
            continue
        work = models.work(model, str(row.get("pretrained") or ""))
        gflops = work.text_gflops
        if mode == "image":
            size = row.get("image_size")
            gflops = work.image_gflops * ((int(size) / work.image_size) ** 2 if size and work.image_size else 1.0)
        amp = row.get("precision") == "amp"
        fits_batch = batch <= batch_size
        rank = (amp, fits_batch, batch if fits_batch else -batch)  # later rows of the same rank replace earlier ones
        source = f"{model} {row.get('precision')} batch {batch}: {rate:,.0f} {mode}s/s"
        points.setdefault((model_family(model), gpu, mode, model), {})[rank] = (rate * gflops * 1e9, source)
    by_key: dict[tuple[str, str], dict[str, list[tuple[float, str]]]] = {}
    for (family, gpu, mode, _), ranked in sorted(points.items()):
        by_key.setdefault((family, gpu), {}).setdefault(mode, []).append(ranked[max(ranked)])
    out = {}
    for key, towers in sorted(by_key.items()):
        flops = {mode: statistics.median(f for f, _ in found) for mode, found in towers.items()}
        source = "; ".join(s for found in towers.values() for _, s in found)
        out[key] = MeasuredSpeed(flops.get("image"), flops.get("text"), source)
    return out
