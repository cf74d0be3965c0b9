"""Backends that run planned shards: `local` on this machine, `skypilot` as managed jobs. Both start from manifests."""

from __future__ import annotations

from dataclasses import replace
from typing import Iterable

from ..core.manifest import Manifest, RunSettings
from ..planning.plan import Shard
from ..tracker import open_tracker
from ..storage.layout import manifest_key


def shard_manifest(shard: Shard, store_url: str, settings: RunSettings, size_workers: bool = True) -> Manifest:
    """The shard's manifest; data-loader workers follow the vCPUs of the instance it was priced on."""
    if size_workers:
        settings = replace(settings, num_workers=max(1, shard.offer.vcpus))
    return Manifest(shard_id=shard.shard_id, store=store_url, pairs=tuple(shard.pairs), settings=settings)


def upload_manifests(store, manifests: Iterable[Manifest]) -> None:
    for manifest in manifests:
        store.put(manifest_key(manifest.shard_id), manifest.to_json().encode("utf-8"))


def _estimates(shard: Shard, pair, spot: bool) -> dict:
    seconds = shard.pair_seconds.get(pair.id)
    rate = shard.cost(spot) / shard.runtime_s if shard.runtime_s else 0.0
    return dict(
        shard_id=shard.shard_id,
        est_runtime_s=seconds,
        est_cost_usd=None if seconds is None else seconds * rate,
        est_gpu=shard.gpu,
    )


def record_plan(tracker_path, shards: Iterable[Shard], spot: bool) -> int:
    """Write estimates and shard ids, status `planned` (pending pairs only keep their other state)."""
    count = 0
    with open_tracker(tracker_path) as tracker:
        for shard in shards:
            for pair in shard.pairs:
                tracker.update(pair, status="planned", **_estimates(shard, pair, spot))
                count += 1
    return count


def record_launch(tracker_path, shard: Shard, job_id: str, spot: bool) -> None:
    """Mark the shard's pairs launched with their job id; one locked, atomic save per shard."""
    with open_tracker(tracker_path) as tracker:
        for pair in shard.pairs:
            entry = tracker.get(pair)
            tracker.update(
                pair,
                status="launched",
                job_id=str(job_id),
                attempts=(entry.attempts if entry else 0) + 1,
                error="",
                **_estimates(shard, pair, spot),
            )
