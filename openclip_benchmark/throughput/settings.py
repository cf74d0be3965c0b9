"""What a throughput sweep measures, checked before anything loads or is written: models, modes, precisions, batch
sizes, image sizes, the timing budget and the cores of pinned CPU workers. Pure: no torch."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, fields
from typing import Any, Iterable

from ..core.errors import BenchmarkError
from ..core.compute import DEFAULT_CACHE_DIR, PRECISIONS  # auto: amp on a GPU, fp32 on a CPU (as `benchmark run`)

MODES = ("image", "text", "pair")
DEFAULT_BATCH_SIZES = (1, 8, 32, 64)
DEFAULT_ITERS = 10
SOURCE_RANDOM = "random"


@dataclass(frozen=True)
class Sweep:
    """One sweep: every model x image size x mode x precision x batch size, each timed after its warm-up.

    `iters` timed batches, or as many as fit in `seconds`. `models` are resolved (model, pretrained) pairs; with
    `random_init` the pretrained tag is ignored and the architecture is built without weights."""

    models: tuple[tuple[str, str], ...]
    modes: tuple[str, ...] = ("image", "text")
    precisions: tuple[str, ...] = ("auto",)
    batch_sizes: tuple[int, ...] = DEFAULT_BATCH_SIZES
    image_sizes: tuple[int | None, ...] = (None,)
    warmup: int = 3
    iters: int | None = DEFAULT_ITERS
    seconds: float | None = None
    source: str = SOURCE_RANDOM  # or a dataset name / webdataset folder: decode and preprocessing are timed too
    dataset_root: str | None = None
    num_workers: int = 2
    random_init: bool = False
    device: str = "auto"
    cache_dir: str = DEFAULT_CACHE_DIR

    def __post_init__(self):
        if not self.models:
            raise BenchmarkError("no model to measure: pass --models")
        _check_choices(self.modes, MODES, "--mode")
        _check_choices(self.precisions, PRECISIONS, "--precision")
        _check_positive(self.batch_sizes, "--batch-sizes")
        sizes = [s for s in self.image_sizes if s is not None]
        _check_positive(sizes or [1], "--image-size")
        if any(s < 16 for s in sizes):
            raise BenchmarkError("--image-size must be at least 16 pixels")
        if self.warmup < 0 or self.num_workers < 0:
            raise BenchmarkError("--warmup and --num-workers must be >= 0")
        if (self.iters is None) == (self.seconds is None):
            raise BenchmarkError("give either --iters or --seconds, not both")
        if (self.iters is not None and self.iters < 1) or (self.seconds is not None and self.seconds <= 0):
            raise BenchmarkError("--iters must be >= 1 and --seconds > 0")

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> "Sweep":
        values = {f.name: raw[f.name] for f in fields(cls) if f.name in raw}
        for name in ("modes", "precisions", "batch_sizes", "image_sizes"):
            values[name] = tuple(values[name])
        values["models"] = tuple(tuple(m) for m in values["models"])
        return cls(**values)


def _check_choices(values: Iterable[str], allowed: tuple[str, ...], option: str) -> None:
    values = list(values)
    if not values:
        raise BenchmarkError(f"{option} needs at least one value")
    unknown = [v for v in values if v not in allowed]
    if unknown:
        raise BenchmarkError(f"{option}: unknown {', '.join(unknown)}; choose from {', '.join(allowed)}")


def _check_positive(values: Iterable[int], option: str) -> None:
    values = list(values)
    if not values:
        raise BenchmarkError(f"{option} needs at least one value")
    if any(v < 1 for v in values):
        raise BenchmarkError(f"{option} must be positive, got {', '.join(map(str, values))}")


def int_list(values: Iterable[str], option: str) -> tuple[int, ...]:
    """`1,8,32` as given (the CLI splits the commas), in order and without repeats; anything else is one error."""
    try:
        return tuple(dict.fromkeys(int(v) for v in values))
    except ValueError:
        raise BenchmarkError(f"{option} must be comma-separated whole numbers, got {','.join(values)!r}") from None


# ---------------------------------------------------------------- cores of pinned workers


def parse_cores(text: str) -> tuple[int, ...]:
    """`0-3,8,10-11` -> (0, 1, 2, 3, 8, 10, 11): CPU ids in the order given, each once."""
    cores: list[int] = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        first, dash, last = part.partition("-")
        try:
            lo, hi = int(first), int(last) if dash else int(first)
        except ValueError:
            raise BenchmarkError(f"--cores: {part!r} is not a core id or range (like 0-3,8)") from None
        if lo < 0 or hi < lo:
            raise BenchmarkError(f"--cores: {part!r} is not an increasing range of core ids")
        cores += range(lo, hi + 1)
    if not cores:
        raise BenchmarkError("--cores needs at least one core id")
    return tuple(dict.fromkeys(cores))


def usable_cores() -> tuple[int, ...]:
    """The cores this process may run on (its affinity where the OS has one, else all of them)."""
    if hasattr(os, "sched_getaffinity"):
        return tuple(sorted(os.sched_getaffinity(0)))
    return tuple(range(os.cpu_count() or 1))


def split_cores(processes: int, cores: tuple[int, ...] | None) -> list[tuple[int, ...]]:
    """Each worker's share of the cores: contiguous and as equal as the count allows; cores the machine lacks (or
    this process may not use) and more workers than cores are refused."""
    usable = usable_cores()
    cores = cores or usable
    missing = [c for c in cores if c not in usable]
    if missing:
        raise BenchmarkError(f"--cores {','.join(map(str, missing))} not available on this machine "
                             f"(usable: {core_ranges(usable)})")
    if processes < 1:
        raise BenchmarkError("--processes must be >= 1")
    if processes > len(cores):
        raise BenchmarkError(f"{processes} processes but only {len(cores)} core(s) ({core_ranges(cores)}): at most one "
                             "process per core")
    base, extra = divmod(len(cores), processes)
    shares, start = [], 0
    for i in range(processes):
        size = base + (i < extra)
        shares.append(tuple(cores[start:start + size]))
        start += size
    return shares


def core_ranges(cores: Iterable[int]) -> str:
    """(0, 1, 2, 5) -> `0-2,5`."""
    out: list[list[int]] = []
    for c in sorted(cores):
        if out and c == out[-1][1] + 1:
            out[-1][1] = c
        else:
            out.append([c, c])
    return ",".join(f"{a}-{b}" if a != b else str(a) for a, b in out)
