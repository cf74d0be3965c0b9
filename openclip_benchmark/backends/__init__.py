"""Backends that run planned shards: `local` on this machine, `skypilot` as managed jobs. One protocol, one
registry: the CLI lists the registry's names and never branches on which backend it got."""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Protocol

from ..core.errors import BenchmarkError
from ..storage.layout import manifest_key
from ..tracker import Entry, Tracker, open_tracker

if TYPE_CHECKING:  # annotations only: `benchmark --help` lists the backends without loading the planner or pydantic
    from ..core.manifest import Manifest, RunSettings
    from ..planning.plan import Shard

# name -> "module:class", imported only when asked for (SkyPilot's module stays unloaded for a local run)
REGISTRY = {
    "local": f"{__name__}.local:LocalBackend",
    "skypilot": f"{__name__}.skypilot:SkyPilotBackend",
}


@dataclass(frozen=True)
class Job:
    """What every shard of one launch shares. `work_dir` is the `.benchmark/` folder beside the tracker."""

    store: Any  # a storage.store Store
    settings: RunSettings
    catalog: Any  # catalog.Catalog: the datasets the jobs resolve names against
    tracker_path: Path
    spot: bool
    work_dir: Path
    clouds: tuple[str, ...] | None = None
    pool: str | None = None
    progress: bool = True


@dataclass
class Submission:
    launched: list[tuple[Shard, str]] = field(default_factory=list)  # (shard, job id)
    failed: list[tuple[Shard, str]] = field(default_factory=list)  # (shard, why it was not submitted)
    kept: list[Entry] = field(default_factory=list)  # pairs another writer moved meanwhile (left as they are)
    lines: list[str] = field(default_factory=list)  # what the backend has to say about the run
    exit_code: int = 0


class Backend(Protocol):
    name: str

    def pool_gpus(self, pool: str) -> tuple[str, ...] | None:
        """The GPUs a pool of warm workers offers, so shards sent to it are planned for them."""

    def validate(self, shards: list[Shard], job: Job, dry_run: bool) -> list[str]:
        """Check every shard would be accepted, writing and sending nothing; BenchmarkError if not. Returns notes."""

    def submit(self, shards: list[Shard], job: Job) -> Submission:
        """Upload manifests, start the shards and record them in the tracker."""

    def poll(self, tracker: Tracker) -> dict[str, int]:
        """Move the pairs this backend runs forward from what it reports; returns how many moved to each status."""

    def cancel(self, tracker: Tracker, entries: list[Entry]) -> list[str]:
        """Stop the jobs of these pairs and mark them failed; returns the job ids cancelled."""


def backend_names() -> tuple[str, ...]:
    return tuple(REGISTRY)


def get_backend(name: str) -> Backend:
    target = REGISTRY.get(name)
    if target is None:
        raise BenchmarkError(f"unknown backend {name!r}; choose one of {', '.join(REGISTRY)}")
    module, _, cls = target.partition(":")
    return getattr(importlib.import_module(module), cls)()


def work_dir(tracker_path: str | Path) -> Path:
    """`.benchmark/` beside the tracker, wherever the command runs from."""
    return Path(tracker_path).parent / ".benchmark"


def shard_manifest(shard: Shard, store_url: str, settings: RunSettings, size_workers: bool = True,
                   catalog=None) -> Manifest:
    """The shard's manifest; data-loader workers follow the vCPUs of the instance it was priced on. With the
    catalog, it carries the spec of each dataset, so a job needs none of the launcher's mapping files."""
    from ..core.manifest import Manifest

    if size_workers:
        settings = settings.model_copy(update={"num_workers": max(1, shard.offer.vcpus)})
    datasets = catalog.specs_for(shard.pairs) if catalog is not None else {}
    return Manifest(shard_id=shard.shard_id, store=store_url, pairs=tuple(shard.pairs), settings=settings,
                    datasets=datasets)


def upload_manifests(store, manifests: Iterable[Manifest]) -> None:
    for manifest in manifests:
        store.put(manifest_key(manifest.shard_id), manifest.to_json().encode("utf-8"))


def estimates(shard: Shard, pair, spot: bool) -> dict:
    """The tracker's estimate columns for one pair of a shard: its share of the shard's time and cost."""
    seconds = shard.pair_seconds.get(pair.id)
    rate = shard.cost(spot) / shard.runtime_s if shard.runtime_s else 0.0
    return dict(
        shard_id=shard.shard_id,
        est_runtime_s=seconds,
        est_cost_usd=None if seconds is None else seconds * rate,
        est_gpu=shard.gpu,
    )


def record_launch(tracker_path, shard: Shard, job_id: str, spot: bool) -> list[Entry]:
    """Mark the shard's pairs launched with their job id, in one locked save. A pair another writer moved meanwhile
    to where launched is not allowed (a sync found its result) keeps its state; those entries are returned."""
    kept = []
    with open_tracker(tracker_path) as tracker:
        for pair in shard.pairs:
            entry = tracker.get(pair)
            if not tracker.can_move(pair, "launched"):
                kept.append(entry)
                continue
            tracker.update(
                pair,
                status="launched",
                job_id=str(job_id),
                attempts=(entry.attempts if entry else 0) + 1,
                error="",
                **estimates(shard, pair, spot),
            )
    return kept
