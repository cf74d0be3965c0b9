"""Offer choice: every allowed instance at the user's purchase option, and the cheapest that fits a model's pairs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

from ..core.errors import BenchmarkError
from .cost import CostModel, PairWork, Unit, fits, load_seconds, memory_needed_gib, units
from .options import PlanOptions
from .pricing import GpuSpec, Offer, PriceTable


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


def choose_offer(works: list[PairWork], candidates: list[Candidate], options: PlanOptions,
                 cost: CostModel) -> tuple[Candidate, list[Unit]]:
    """Lowest cost for this model's pairs (load, reading, compute, its share of job overhead) among fitting GPUs, with
    the pairs' units there (priced to choose, so the caller does not work them out again).

    A model's share of the job overhead is the fraction of a job its work fills: small models share jobs with others.
    """
    model = works[0].model
    peak = max(w.image_gflops for w in works)
    best = None
    for c in candidates:
        if not fits(model, peak, c.gpu, options.batch_size, cost):
            continue
        parts = units(works, c.gpu, c.offer.vcpus, cost, options.target - cost.job_overhead_s)
        busy = load_seconds(model, cost) + sum(u.seconds for u in parts)
        dollars = c.hourly * busy * (1 + cost.job_overhead_s / (options.target - cost.job_overhead_s)) / 3600
        key = (round(dollars, 9), c.gpu.memory_gib, c.gpu.name, c.spot, c.offer.cloud, c.offer.instance_type)  # ties: on demand
        if best is None or key < best[0]:
            best = (key, c, parts)
    if best is None:
        need = memory_needed_gib(model, peak, options.batch_size, cost)
        raise BenchmarkError(
            f"{model.model}:{model.pretrained} needs about {need:.0f} GiB at batch size {options.batch_size}; "
            "no allowed GPU has that much memory (lower --batch-size or allow a larger GPU)"
        )
    return best[1], best[2]

