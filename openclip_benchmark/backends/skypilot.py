"""SkyPilot backend: render each job's task from its kind's template, validate it with SkyPilot's own schema, submit
managed jobs (optionally into a pool; several nodes through `num_nodes`), and read the job queue back.

Per-job values travel as `envs` (where the manifest is); credentials only as SkyPilot `secrets`, null in every
rendered file and filled from this process's environment at submission.
"""

from __future__ import annotations

import copy
import os
from typing import Any, Iterable

from ..core.errors import BenchmarkError
from ..core.manifest import EVALUATE, SIMILARITY, Manifest
from ..storage.layout import manifest_key
from ..storage.store import TRANSIENT_EXIT_CODE, is_remote
from ..tracker import JobState
from . import Job, LaunchContext, Submission, upload_inputs, upload_manifests
from .pools import pool_gpu
from .skypilot_task import CONFIGS, SECRET_NAMES, build_task, load_yaml, one_line, secrets_from_env, write_rendered

TEMPLATE = CONFIGS / "managed_job_template.yaml"  # an evaluation shard
SIMILARITY_TEMPLATE = CONFIGS / "similarity_template.yaml"  # a similarity run, on one node or many
JOB_PREFIX = "ocb-"

RUNNING_STATES = {"PENDING", "DEPRECATED_SUBMITTED", "STARTING", "RUNNING", "RECOVERING", "WINDING_DOWN", "CANCELLING"}
FAILED_STATES = {"FAILED", "FAILED_SETUP", "FAILED_PRECHECKS", "FAILED_NO_RESOURCE", "FAILED_CONTROLLER", "CANCELLED"}


def kind_template(kind: str):
    """The template of a manifest kind (read at call time, so a test may point it elsewhere)."""
    return {EVALUATE: TEMPLATE, SIMILARITY: SIMILARITY_TEMPLATE}[kind]


def job_envs(store, manifest: Manifest) -> dict[str, str]:
    """What a job of this kind is told (its template reads these): where its manifest is, and nothing else."""
    if manifest.kind == SIMILARITY:
        return {"SIMILARITY_STORE": str(store.url) if store else "", "SIMILARITY_RUN": manifest.shard_id}
    return {"MANIFEST_URL": store.url_for(manifest_key(manifest.shard_id)) if store else ""}


def job_secrets(store, dry_run: bool) -> list[tuple[str, str]]:
    """The credentials jobs get; a real launch needs those of its store. The endpoint the launcher wrote to
    (--endpoint-url or env) is the one the jobs must use."""
    needed = getattr(store, "credentials", ())
    secrets = secrets_from_env(dict.fromkeys((*SECRET_NAMES, *needed)), required=() if dry_run else needed)
    if getattr(store, "endpoint_url", None):
        secrets = [(k, v) for k, v in secrets if k != "R2_ENDPOINT_URL"] + [("R2_ENDPOINT_URL", store.endpoint_url)]
    return secrets


def render_task_config(
    template: dict[str, Any], job: Job, *, spot: bool, clouds: Iterable[str] | None = None, pool: str | None = None
) -> dict[str, Any]:
    """The task YAML for one job: the template with this job's machine. Envs and secrets stay placeholders."""
    config = copy.deepcopy(template)
    config["name"] = f"{JOB_PREFIX}{job.shard_id}"
    if job.nodes > 1 or "num_nodes" in config:
        config["num_nodes"] = job.nodes
    resources = dict(config.get("resources") or {})
    resources["accelerators"] = {job.gpu: job.gpus}
    if pool:
        # a pool's workers already ran setup and fixed the hardware: the job only needs the GPU and its run command
        config.pop("setup", None)
        resources = {"accelerators": {job.gpu: job.gpus}}
    else:
        if job.vcpus:
            resources["cpus"] = f"{job.vcpus}+"
        resources["use_spot"] = bool(spot) and job.spot  # a shard the plan found cheaper on demand runs on demand
        recovery = dict(resources.get("job_recovery") or {})
        codes = recovery.get("recover_on_exit_codes") or []
        codes = [codes] if isinstance(codes, int) else list(codes)
        recovery["recover_on_exit_codes"] = codes + ([] if TRANSIENT_EXIT_CODE in codes else [TRANSIENT_EXIT_CODE])
        resources["job_recovery"] = recovery
        allowed = sorted(set(clouds or ()))
        if allowed:
            resources.pop("infra", None)
            resources.pop("cloud", None)
            resources["any_of"] = [{"infra": c} for c in allowed]
    config["resources"] = resources
    return config


def sized_manifest(job: Job) -> Manifest:
    """The job's manifest with as many data-loader workers as the instance it was priced on has vCPUs."""
    if not job.vcpus:
        return job.manifest
    settings = job.manifest.settings.model_copy(update={"num_workers": max(1, job.vcpus)})
    return job.manifest.model_copy(update={"settings": settings})


def render_tasks(jobs: list[Job], context: LaunchContext, dry_run: bool = False) -> list[tuple[Manifest, dict, Any]]:
    """(manifest, rendered config, validated sky.Task) for every job; nothing written, nothing sent.
    A real launch needs a bucket store and its credentials; a dry run validates the tasks without them."""
    store = context.store
    if not dry_run and (store is None or not is_remote(store)):
        raise BenchmarkError("the skypilot backend needs a bucket store (--store s3://bucket/prefix): jobs cannot write here")
    secrets = job_secrets(store, dry_run)
    templates: dict[str, dict] = {}  # each kind's template read once, however many jobs use it
    out = []
    for job in jobs:
        manifest = sized_manifest(job)
        if manifest.kind not in templates:
            templates[manifest.kind] = load_yaml(kind_template(manifest.kind))
        config = render_task_config(templates[manifest.kind], job, spot=context.spot, clouds=context.clouds,
                                    pool=context.pool)
        config["envs"] = {**(config.get("envs") or {}), **job_envs(store, manifest)}
        out.append((manifest, config, build_task(config, {}, secrets)))
    return out


def _job_ids(result: Any) -> list[int]:
    ids = result[0] if isinstance(result, tuple) else result
    if isinstance(ids, int):
        return [ids]
    return [int(i) for i in ids or []]


def _field(record: Any, name: str) -> Any:
    return record.get(name) if isinstance(record, dict) else getattr(record, name, None)


def _skypilot_ids(job_id: str) -> list[int]:
    """A shard submitted as several managed jobs has comma-separated ids."""
    return [int(part) for part in job_id.split(",") if part.strip().isdigit()]


class SkyPilotBackend:
    """Managed jobs (or a pool's workers); the job queue is read back by `poll`."""

    name = "skypilot"

    def pool_gpus(self, pool: str) -> tuple[str, ...] | None:
        gpu = pool_gpu()
        return (gpu,) if gpu else None

    def validate(self, jobs: list[Job], context: LaunchContext, dry_run: bool) -> list[str]:
        render_tasks(jobs, context, dry_run)
        notes = [f"{len(jobs)} SkyPilot task(s) rendered and valid under SkyPilot's schema"] if jobs else []
        if dry_run and (context.store is None or not is_remote(context.store)):
            notes.append("note: a real launch needs a bucket store (--store s3://bucket/prefix)")
        missing = [n for n in getattr(context.store, "credentials", ()) if not os.environ.get(n)]
        if dry_run and missing:
            notes.append(f"note: a real launch needs {', '.join(missing)} in the environment")
        return notes

    def submit(self, jobs: list[Job], context: LaunchContext) -> Submission:
        """Render and validate every task before writing anything, keep the rendered YAMLs, upload the jobs' inputs
        and manifests, submit, then await each request and report its job id."""
        import sky

        rendered = render_tasks(jobs, context)
        if context.render_dir is not None:
            for _, config, _ in rendered:
                write_rendered(config, context.render_dir)
        upload_inputs(context.store, jobs)
        upload_manifests(context.store, [manifest for manifest, _, _ in rendered])
        report = Submission()
        pending = []
        for job, (_, _, task) in zip(jobs, rendered):
            try:
                pending.append((job, sky.jobs.launch(task, name=task.name, pool=context.pool)))
            except Exception as exc:
                report.failed.append((job, one_line(exc)))
        for job, request in pending:
            try:
                ids = _job_ids(sky.get(request))
                if not ids:
                    raise RuntimeError("SkyPilot returned no job id")
            except Exception as exc:
                report.failed.append((job, one_line(exc)))
                continue
            job_id = ",".join(str(i) for i in ids)
            report.kept += context.report([job.submitted(self.name, job_id)])
            report.launched.append((job, job_id))
            report.lines.append(f"launched {job.shard_id} as job {job_id} "
                                f"({len(job.pairs)} pairs on {job.machine()})")
        return report

    def poll(self, job_ids: list[str]) -> list[JobState]:
        """Running or failed, from the managed-job queue; a job that succeeded is left to `sync`."""
        import sky

        try:
            answer = sky.get(sky.jobs.queue_v2(refresh=False, skip_finished=False))
        except Exception as exc:
            raise BenchmarkError(f"cannot read the SkyPilot job queue: {' '.join(str(exc).split())[:300]}") from None
        records = answer[0] if isinstance(answer, tuple) else answer
        queue: dict[str, tuple[str, str]] = {}
        for rec in records or []:
            status = _field(rec, "status")
            status = getattr(status, "value", status)
            queue[str(_field(rec, "job_id"))] = (str(status), _field(rec, "failure_reason") or "")
        states = []
        for job_id in job_ids:
            status, reason = queue.get(job_id, ("", ""))
            if status in RUNNING_STATES:
                states.append(JobState(self.name, job_id, "running"))
            elif status in FAILED_STATES:
                states.append(JobState(self.name, job_id, "failed", f"{status}: {reason}".strip(": ")))
        return states

    def cancel(self, job_ids: list[str]) -> list[JobState]:
        ours = {job_id: _skypilot_ids(job_id) for job_id in job_ids}
        ours = {job_id: ids for job_id, ids in ours.items() if ids}
        if not ours:
            return []
        import sky

        try:
            sky.get(sky.jobs.cancel(job_ids=sorted({i for ids in ours.values() for i in ids})))
        except Exception as exc:
            raise BenchmarkError(f"cannot cancel SkyPilot jobs: {' '.join(str(exc).split())[:300]}") from None
        return [JobState(self.name, job_id, "failed", "cancelled by benchmark cancel") for job_id in ours]
