"""Local backend: the jobs, one after another, by the worker in this process."""

from __future__ import annotations

from ..core.errors import BenchmarkError
from ..tracker import JobState
from ..worker import run_shard
from . import Job, LaunchContext, Submission, upload_manifests

LOCAL_JOB_ID = "local"


class LocalBackend:
    """Runs in this process: nothing to poll, and a run ends before `cancel` could reach it."""

    name = "local"

    def pool_gpus(self, pool: str) -> tuple[str, ...] | None:
        raise BenchmarkError("--pool only applies to the skypilot backend")

    def validate(self, jobs: list[Job], context: LaunchContext, dry_run: bool) -> list[str]:
        if any(job.nodes > 1 for job in jobs):
            raise BenchmarkError("the local backend runs on this machine alone: --nodes needs a cluster backend")
        return []

    def submit(self, jobs: list[Job], context: LaunchContext) -> Submission:
        """Each job: its manifest into the store, its pairs launched, the run, then every record applied at once."""
        out = Submission(finished=True)
        reports = []
        for job in jobs:
            if context.store is not None:
                upload_manifests(context.store, [job.manifest])
            out.kept += context.report([job.submitted(self.name, LOCAL_JOB_ID)])
            report = run_shard(job.manifest, context.store, progress=context.progress, out=context.out)
            context.report(report.outcome_records(context.store))
            out.launched.append((job, LOCAL_JOB_ID))
            reports.append(report)
        ok = sum(len(r.succeeded) + len(r.skipped) for r in reports)
        bad = sum(len(r.failed) for r in reports)
        out.lines.append(f"local: {ok} pair(s) done, {bad} failed, in {len(reports)} shard(s)")
        out.exit_code = max((r.exit_code for r in reports), default=0)
        return out

    def poll(self, job_ids: list[str]) -> list[JobState]:
        return []

    def cancel(self, job_ids: list[str]) -> list[JobState]:
        return []
