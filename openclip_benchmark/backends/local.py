"""Local backend: the planned shards, one after another, by the worker in this process."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..core.manifest import RunSettings
from ..planning.plan import Shard
from ..tracker import open_tracker
from . import record_launch, shard_manifest, upload_manifests

LOCAL_JOB_ID = "local"


@dataclass
class LocalReport:
    reports: list = field(default_factory=list)  # worker.ShardReport, one per shard

    @property
    def exit_code(self) -> int:
        codes = [r.exit_code for r in self.reports]
        return max(codes, default=0)


def run_local(shards: list[Shard], *, store, settings: RunSettings, tracker_path, spot: bool, progress: bool = True) -> LocalReport:
    """Each shard: upload its manifest, mark it launched, run it, apply every record to the tracker at once."""
    from ..worker import run_shard

    out = LocalReport()
    for shard in shards:
        manifest = shard_manifest(shard, store.url, settings, size_workers=False)
        upload_manifests(store, [manifest])
        record_launch(tracker_path, shard, LOCAL_JOB_ID, spot)
        report = run_shard(manifest, store, progress=progress)
        with open_tracker(tracker_path) as tracker:
            for record in report.outcome_records(store):
                tracker.apply_record(record)
        out.reports.append(report)
    return out
