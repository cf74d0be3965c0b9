"""What a plan may use: GPUs, clouds, the purchase option, the target length of a job, the batch size."""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_TARGET_S = 45 * 60  # spot: a preemption costs a restart and the pair in flight; short jobs bound the rest
DEFAULT_ON_DEMAND_TARGET_S = 90 * 60  # on demand nothing is preempted: longer jobs, fewer setups and downloads


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

