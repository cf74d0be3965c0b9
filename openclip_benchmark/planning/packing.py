"""Packing: a model's units into shards near the target duration, and each shard's runtime and price.

A shard loads each of its models once, downloads each of its datasets once and builds each zero-shot classifier once
per model; shards are sized near a target duration so that a preemption loses little, and their ids come from their
content (the same pairs give the same shards and ids).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Iterable, Mapping

from ..core.pair import Pair
from .cost import CostModel, ModelWork, PairWork, Unit, download_seconds, load_seconds
from .offers import Candidate
from .options import PlanOptions
from .pricing import Offer, PriceTable


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


@dataclass
class _Chunk:
    """Pairs of one model that one job runs, on one candidate instance; a job may hold several."""

    where: Candidate
    model: ModelWork
    units: list[Unit]

    @property
    def seconds(self) -> float:
        return sum(u.seconds for u in self.units)


def downloads(works: Iterable[PairWork]) -> dict[str, int]:
    """Images each dataset's download holds: the most any of its pairs reads (a linear probe's train split too)."""
    out: dict[str, int] = {}
    for w in works:
        out[w.pair.dataset] = max(out.get(w.pair.dataset, 0), w.images)
    return out


def shard_id(pairs: Iterable[Pair], gpu: str) -> str:
    digest = hashlib.sha256(("\n".join(sorted(p.id for p in pairs)) + "\n" + gpu).encode()).hexdigest()
    return f"shard-{digest[:12]}"


def _priced(chunks: list[_Chunk], cost: CostModel, prices: PriceTable, options: PlanOptions) -> Shard:
    """The shard of these chunks: its runtime, and its price spot and on demand on the same host."""
    where = chunks[0].where
    gpu, offer = where.gpu, where.offer
    works = [w for c in chunks for u in c.units for w in u.works]
    datasets = downloads(works)
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

    def need(self, unit: Unit, model: ModelWork, cost: CostModel) -> float:
        new = downloads(w for w in unit.works if w.pair.dataset not in self.datasets)
        load = 0.0 if (model.model, model.pretrained) in self.chunks else load_seconds(model, cost)
        return unit.seconds + load + sum(download_seconds(n, cost) for n in new.values())

    def add(self, unit: Unit, where: Candidate, model: ModelWork, need: float) -> None:
        self.chunks.setdefault((model.model, model.pretrained), _Chunk(where, model, [])).units.append(unit)
        self.seconds += need
        self.datasets.update(w.pair.dataset for w in unit.works)


def pack(models: list[tuple[Candidate, ModelWork, list[Unit]]], capacity: float, cost: CostModel, prices: PriceTable,
         options: PlanOptions) -> list[Shard]:
    """Fill jobs unit by unit, model after model: a unit goes to a job that already loads its model if it fits there,
    else to the first job with room (one more model load there), else to a new job. Jobs come out nearly full, so
    there are few of them, and a model is split over few jobs. Every model here runs on the same candidate instance."""
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
    return [_priced(list(b.chunks.values()), cost, prices, options) for b in bins]

