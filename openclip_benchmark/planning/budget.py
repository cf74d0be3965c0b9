"""The budget: which shards a launch takes, and how long a queue of them runs."""

from __future__ import annotations

import heapq
from typing import Iterable

from ..core.errors import BenchmarkError
from .packing import Shard

# SkyPilot's cap on managed jobs running at once (sky.utils.controller_utils.MAX_TOTAL_RUNNING_JOBS; a test reads it)
SKYPILOT_MAX_RUNNING_JOBS = 2000


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

