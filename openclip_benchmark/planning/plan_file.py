"""plan.json: the plan `benchmark plan` and `launch` write beside the tracker (`.benchmark/plan.json`), typed."""

from __future__ import annotations

from typing import Literal

from ..core.documents import Document, Part, PairIdentity, schema_field
from ..core.jsonio import dumps_strict
from .plan import Plan

PLAN_SCHEMA = "openclip-benchmark/plan/1"


class PlannedShard(Part):
    """One job of the plan: its GPU, the instance it was priced on, its runtime and cost, its pairs."""

    shard_id: str
    gpu: str
    cloud: str
    instance_type: str
    runtime_s: float
    cost_spot: float | None  # None: no spot price for this instance
    cost_on_demand: float | None
    pairs: tuple[PairIdentity, ...]


class PlanFile(Document):
    """The shards of a plan with their GPU, instance, runtime and cost, and the totals."""

    what = "plan file"
    schema_: Literal[PLAN_SCHEMA] = schema_field(PLAN_SCHEMA)
    spot: bool
    target_s: float
    runtime_s: float
    cost_spot: float
    cost_on_demand: float
    notes: tuple[str, ...] = ()
    shards: tuple[PlannedShard, ...] = ()

    @classmethod
    def of(cls, plan: Plan) -> "PlanFile":
        return cls(
            spot=plan.options.spot, target_s=plan.options.target, runtime_s=plan.runtime_s, cost_spot=plan.cost_spot,
            cost_on_demand=plan.cost_on_demand, notes=plan.notes,
            shards=tuple(PlannedShard(shard_id=s.shard_id, gpu=s.gpu, cloud=s.offer.cloud,
                                      instance_type=s.offer.instance_type, runtime_s=s.runtime_s, cost_spot=s.cost_spot,
                                      cost_on_demand=s.cost_on_demand, pairs=s.pairs) for s in plan.shards),
        )

    def to_json(self) -> str:
        return dumps_strict(self.model_dump()) + "\n"
