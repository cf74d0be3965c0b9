"""Calibration: the cost model's GPU speeds from what jobs observed (result run blocks) and from what `benchmark
throughput` measured."""

from __future__ import annotations

import statistics
from dataclasses import replace
from typing import Any, Iterable, Mapping

from ..catalog import model_family
from ..core.records import Result
from .cost import CostModel, MeasuredSpeed, ModelIndex, image_seconds, pair_work, text_seconds
from .pricing import GpuSpec, gpu_from_device_name


def calibrate(
    records: Iterable[Any],  # Result and Failure records: failures are left out
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
        if not isinstance(rec, Result):
            continue
        run = rec.run
        gpu = gpu_from_device_name(run.gpu_name, gpus) if run.gpu_name else None
        if gpu is None or not run.seconds:
            continue
        if run.fit_seconds is not None and run.fit_steps:
            steps.append(run.fit_seconds / run.fit_steps)
            continue  # its passes may come from the feature cache: the speed factor learns from the other results
        pair = rec.pair
        model = models.work(pair.model, pair.pretrained)
        work = pair_work(pair, model, datasets)
        if run.num_samples:
            work = replace(work, images=run.num_samples)
        vcpus = run.num_workers or default_vcpus
        estimate = image_seconds(work, gpus[gpu], vcpus, base) + text_seconds(work.prompts, model, gpus[gpu], base)
        if estimate > 0:
            ratios.setdefault(gpu, []).append(run.seconds / estimate)
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
