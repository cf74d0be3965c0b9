"""SkyPilot backend: render each shard's task from the template, validate it with SkyPilot's own schema, submit
managed jobs (optionally into a pool), and read the job queue back into the tracker.

Per-job values travel as `envs` (the manifest URL); credentials only as SkyPilot `secrets`, null in every
rendered file and filled from this process's environment at submission.
"""

from __future__ import annotations

import copy
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from ..core.errors import BenchmarkError
from ..core.jsonio import atomic_write_text
from ..core.manifest import RunSettings
from ..planning.plan import Shard
from ..storage.store import TRANSIENT_EXIT_CODE
from . import record_launch, shard_manifest, upload_manifests
from .local import LOCAL_JOB_ID
from ..storage.layout import manifest_key

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
TEMPLATE = CONFIGS / "managed_job_template.yaml"
INTERACTIVE = CONFIGS / "interactive.yaml"
POOL = CONFIGS / "pool.yaml"
RENDER_DIR = Path(".benchmark/launch")
SECRET_NAMES = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "R2_ENDPOINT_URL", "HF_TOKEN")
S3_SECRETS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")
JOB_PREFIX = "ocb-"

RUNNING_STATES = {"PENDING", "DEPRECATED_SUBMITTED", "STARTING", "RUNNING", "RECOVERING", "WINDING_DOWN", "CANCELLING"}
FAILED_STATES = {"FAILED", "FAILED_SETUP", "FAILED_PRECHECKS", "FAILED_NO_RESOURCE", "FAILED_CONTROLLER", "CANCELLED"}


def load_yaml(path: str | Path) -> dict[str, Any]:
    import yaml

    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise BenchmarkError(f"cannot read {path}: {' '.join(str(exc).split())}") from None
    if not isinstance(data, dict):
        raise BenchmarkError(f"{path} is not a YAML mapping")
    return data


def secrets_from_env(names: Iterable[str] = SECRET_NAMES, required: Iterable[str] = ()) -> list[tuple[str, str]]:
    """(name, value) of the credentials set here; the values go to SkyPilot only, never into a file."""
    missing = [n for n in required if not os.environ.get(n)]
    if missing:
        raise BenchmarkError(f"set {', '.join(missing)} in the environment: jobs need them to write results")
    return [(n, os.environ[n]) for n in names if os.environ.get(n)]


def render_task_config(
    template: dict[str, Any], shard: Shard, *, spot: bool, clouds: Iterable[str] | None = None, pool: str | None = None
) -> dict[str, Any]:
    """The task YAML for one shard: the template with this shard's resources. Envs and secrets stay placeholders."""
    config = copy.deepcopy(template)
    config["name"] = f"{JOB_PREFIX}{shard.shard_id}"
    resources = dict(config.get("resources") or {})
    resources["accelerators"] = {shard.gpu: 1}
    if pool:
        # a pool's workers already ran setup and fixed the hardware: the job only needs the GPU and its run command
        config.pop("setup", None)
        resources = {"accelerators": {shard.gpu: 1}}
    else:
        resources["cpus"] = f"{shard.offer.vcpus}+"
        resources["use_spot"] = bool(spot) and shard.spot  # a shard the plan found cheaper on demand runs on demand
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
    envs = dict(config.get("envs") or {})
    envs.setdefault("MANIFEST_URL", "")
    config["envs"] = envs
    return config


def build_task(config: dict[str, Any], envs: dict[str, str], secrets: list[tuple[str, str]]):
    """Validate with SkyPilot's schema and build the Task; any defect is a one-line error before anything is sent."""
    import sky

    try:
        return sky.Task.from_yaml_config(
            copy.deepcopy(config), env_overrides=sorted(envs.items()), secrets_overrides=list(secrets)
        )
    except Exception as exc:  # SkyPilot raises ValueError / jsonschema errors with multi-line text
        msg = " ".join(str(exc).split())
        for _, value in secrets:  # never echo a credential, even inside an error message
            msg = msg.replace(value, "***")
        raise BenchmarkError(f"invalid SkyPilot task {config.get('name')}: {msg[:400]}") from None


def write_rendered(config: dict[str, Any], folder: Path = RENDER_DIR) -> Path:
    """Keep the rendered YAML for inspection: envs filled in, secrets null as rendered."""
    import yaml

    path = Path(folder) / f"{config['name']}.yaml"
    atomic_write_text(path, yaml.safe_dump(config, sort_keys=False))
    return path


@dataclass
class LaunchReport:
    launched: list[tuple[Shard, str]] = field(default_factory=list)
    failed: list[tuple[Shard, str]] = field(default_factory=list)


def _job_ids(result: Any) -> list[int]:
    ids = result[0] if isinstance(result, tuple) else result
    if isinstance(ids, int):
        return [ids]
    return [int(i) for i in ids or []]


def launch_shards(
    shards: list[Shard],
    *,
    store,
    settings: RunSettings,
    tracker_path,
    spot: bool,
    clouds: Iterable[str] | None = None,
    pool: str | None = None,
    template: str | Path = TEMPLATE,
    render_dir: Path = RENDER_DIR,
) -> LaunchReport:
    """Render and validate every task, upload the manifests, submit, then await each request and record its job id."""
    import sky

    if not str(store.url).startswith("s3://"):
        raise BenchmarkError("the skypilot backend needs a bucket store (--store s3://bucket/prefix): jobs cannot write here")
    secrets = secrets_from_env(required=S3_SECRETS)
    if store.endpoint_url:  # the endpoint the launcher wrote to (--endpoint-url or env) is the one the jobs must use
        secrets = [(k, v) for k, v in secrets if k != "R2_ENDPOINT_URL"] + [("R2_ENDPOINT_URL", store.endpoint_url)]
    base = load_yaml(template)
    manifests, tasks = [], []
    for shard in shards:
        manifest = shard_manifest(shard, store.url, settings)
        config = render_task_config(base, shard, spot=spot, clouds=clouds, pool=pool)
        envs = {"MANIFEST_URL": store.url_for(manifest_key(manifest.shard_id))}
        tasks.append(build_task(config, envs, secrets))
        write_rendered({**config, "envs": {**config["envs"], **envs}}, render_dir)
        manifests.append(manifest)
    upload_manifests(store, manifests)
    report = LaunchReport()
    pending = []
    for shard, task in zip(shards, tasks):
        try:
            pending.append((shard, sky.jobs.launch(task, name=task.name, pool=pool)))
        except Exception as exc:
            report.failed.append((shard, f"{type(exc).__name__}: {' '.join(str(exc).split())}"))
    for shard, request in pending:
        try:
            ids = _job_ids(sky.get(request))
            if not ids:
                raise RuntimeError("SkyPilot returned no job id")
        except Exception as exc:
            report.failed.append((shard, f"{type(exc).__name__}: {' '.join(str(exc).split())}"))
            continue
        job_id = ",".join(str(i) for i in ids)
        record_launch(tracker_path, shard, job_id, spot)
        report.launched.append((shard, job_id))
    return report


def _field(record: Any, name: str) -> Any:
    return record.get(name) if isinstance(record, dict) else getattr(record, name, None)


def merge_job_queue(tracker) -> dict[str, int]:
    """Move launched pairs to running or failed from SkyPilot's managed-job queue; success is left to `sync`,
    which reads the results themselves. Returns how many pairs moved to each status."""
    active = [e for e in tracker.select(["launched", "running"]) if e.job_id and e.job_id != LOCAL_JOB_ID]
    if not active:  # nothing in flight on SkyPilot: do not wake (or start) its API server
        return {}
    import sky

    try:
        answer = sky.get(sky.jobs.queue_v2(refresh=False, skip_finished=False))
    except Exception as exc:
        raise BenchmarkError(f"cannot read the SkyPilot job queue: {' '.join(str(exc).split())[:300]}") from None
    records = answer[0] if isinstance(answer, tuple) else answer
    jobs: dict[str, Any] = {}
    for rec in records or []:
        status = _field(rec, "status")
        status = getattr(status, "value", status)
        jobs[str(_field(rec, "job_id"))] = (str(status), _field(rec, "failure_reason") or "")
    moved: dict[str, int] = {}
    for entry in active:
        state = jobs.get(entry.job_id)
        if state is None:
            continue
        status, reason = state
        if status in RUNNING_STATES and entry.status != "running":
            tracker.update(entry.pair, status="running")
            moved["running"] = moved.get("running", 0) + 1
        elif status in FAILED_STATES:
            tracker.update(entry.pair, status="failed", error=f"job {entry.job_id} {status}: {reason}".strip(": "))
            moved["failed"] = moved.get("failed", 0) + 1
    return moved


# ---------------------------------------------------------------- interactive cluster and pools

def interactive_up(cluster: str, idle_minutes: int, config_path: str | Path = INTERACTIVE):
    import sky

    task = build_task(load_yaml(config_path), {}, secrets_from_env())
    return sky.get(sky.launch(task, cluster_name=cluster, idle_minutes_to_autostop=idle_minutes))


def interactive_down(cluster: str):
    import sky

    return sky.get(sky.down(cluster))


def pool_up(name: str, config_path: str | Path = POOL, workers: int | None = None):
    import sky
    from sky.serve.serve_utils import UpdateMode

    task = build_task(load_yaml(config_path), {}, secrets_from_env())
    return sky.get(sky.jobs.pool_apply(task, name, mode=UpdateMode.ROLLING, workers=workers))


def pool_down(name: str):
    import sky

    return sky.get(sky.jobs.pool_down(name))


def pool_gpu(config_path: str | Path = POOL) -> str | None:
    """The pool's GPU: shards sent to a pool are planned for it."""
    acc = (load_yaml(config_path).get("resources") or {}).get("accelerators")
    if isinstance(acc, dict):
        return next(iter(acc), None)
    if isinstance(acc, str):
        return acc.split(":")[0]
    return None
