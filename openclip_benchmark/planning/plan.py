"""The plan: the open pairs packed into shards, each on the cheapest GPU that fits its models, with the totals.

Pure: no network, no torch, no SkyPilot. The parts: cost.py (the work of a pair and its seconds on a GPU), offers.py
(the instance a model's pairs run on), packing.py (shards near the target duration), budget.py (which shards a launch
takes), calibration.py (speeds from observed runs and throughput measurements).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Mapping

from ..catalog import model_family
from ..core.errors import BenchmarkError
from ..core.pair import Pair
from .budget import SKYPILOT_MAX_RUNNING_JOBS, estimate_wall_clock
from .cost import CostModel, ModelIndex, ModelWork, Unit, pair_work
from .offers import Candidate, candidate_offers, choose_offer
from .options import PlanOptions
from .packing import Shard, pack
from .pricing import GpuSpec, PriceTable


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
    by_offer: dict[tuple, list[tuple[Candidate, ModelWork, list[Unit]]]] = {}
    for (model_name, pretrained), members in by_model.items():
        model = models.work(model_name, pretrained)
        works = [pair_work(p, model, datasets) for p in members]
        notes += [n for n in [model.note, *(w.note for w in works)] if n]
        where, parts = choose_offer(works, candidates, options, cost)
        measured = cost.measured.get((model_family(model_name), where.gpu.name))
        if measured is not None:
            notes.append(f"{model_family(model_name)} on {where.gpu.name}: speed measured ({measured.source})")
        key = (where.gpu.name, where.offer.cloud, where.offer.instance_type, where.spot)
        by_offer.setdefault(key, []).append((where, model, parts))
    shards = []
    for key in sorted(by_offer):
        shards += pack(by_offer[key], options.target - cost.job_overhead_s, cost, prices, options)
    return Plan(tuple(shards), options, tuple(dict.fromkeys(notes)))

