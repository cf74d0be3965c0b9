"""Local backend: the planned shards, one after another, by the worker in this process."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..core.errors import BenchmarkError
from ..core.manifest import RunSettings
from ..planning.plan import Shard
from ..tracker import record_outcomes
from ..worker import run_shard
from . import Job, Submission, record_launch, shard_manifest, upload_manifests

LOCAL_JOB_ID = "local"


@dataclass
class LocalReport:
    reports: list = field(default_factory=list)  # worker.ShardReport, one per shard
    kept: list = field(default_factory=list)  # tracker entries another writer moved before this run marked them

    @property
    def exit_code(self) -> int:
        codes = [r.exit_code for r in self.reports]
        return max(codes, default=0)


def run_local(shards: list[Shard], *, store, settings: RunSettings, tracker_path, spot: bool, progress: bool = True,
              catalog=None) -> LocalReport:
    """Each shard: upload its manifest, mark it launched, run it, apply every record to the tracker at once."""
    out = LocalReport()
    for shard in shards:
        manifest = shard_manifest(shard, store.url, settings, size_workers=False, catalog=catalog)
        upload_manifests(store, [manifest])
        out.kept += record_launch(tracker_path, shard, LOCAL_JOB_ID, spot)
        report = run_shard(manifest, store, progress=progress)
        record_outcomes(tracker_path, report.outcome_records(store))
        out.reports.append(report)
    return out


class LocalBackend:
    """Runs in this process: nothing to poll, and a run ends before `cancel` could reach it."""

    name = "local"

    def pool_gpus(self, pool: str) -> tuple[str, ...] | None:
        raise BenchmarkError("--pool only applies to the skypilot backend")

    def validate(self, shards: list[Shard], job: Job, dry_run: bool) -> list[str]:
        return []

    def submit(self, shards: list[Shard], job: Job) -> Submission:
        report = run_local(
            shards, store=job.store, settings=job.settings, tracker_path=job.tracker_path, spot=job.spot,
            progress=job.progress, catalog=job.catalog,
        )
        ok = sum(len(r.succeeded) + len(r.skipped) for r in report.reports)
        bad = sum(len(r.failed) for r in report.reports)
        return Submission(
            launched=[(s, LOCAL_JOB_ID) for s in shards],
            kept=report.kept,
            lines=[f"local: {ok} pair(s) done, {bad} failed, in {len(report.reports)} shard(s)"],
            exit_code=report.exit_code,
        )

    def poll(self, tracker) -> dict[str, int]:
        return {}

    def cancel(self, tracker, entries) -> list[str]:
        return []
