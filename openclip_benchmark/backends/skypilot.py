"""SkyPilot backend: render each shard's task from the template, validate it with SkyPilot's own schema, submit
managed jobs (optionally into a pool), and read the job queue back into the tracker.

Per-job values travel as `envs` (the manifest URL); credentials only as SkyPilot `secrets`, null in every
rendered file and filled from this process's environment at submission.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any, Iterable

from ..core.errors import BenchmarkError
from ..core.jsonio import atomic_write_json, atomic_write_text
from ..core.manifest import Manifest, RunSettings
from ..planning.plan import Shard
from ..planning.pricing import Offer, PriceTable
from ..storage.layout import manifest_key
from ..storage.store import TRANSIENT_EXIT_CODE
from ..tracker import Entry
from . import Job, Submission, record_launch, shard_manifest, upload_manifests, work_dir
from .local import LOCAL_JOB_ID

PACKAGE_DIR = Path(__file__).resolve().parents[1]


def configs_dir() -> Path:
    """The checkout's top-level configs/ when running from one, else the copy packaged in the wheel."""
    checkout = PACKAGE_DIR.parent / "configs"
    return checkout if (checkout / "managed_job_template.yaml").is_file() else PACKAGE_DIR / "configs"


CONFIGS = configs_dir()
TEMPLATE = CONFIGS / "managed_job_template.yaml"
INTERACTIVE = CONFIGS / "interactive.yaml"
POOL = CONFIGS / "pool.yaml"
SIMILARITY_TEMPLATE = CONFIGS / "similarity_template.yaml"
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


def job_secrets(store, dry_run: bool) -> list[tuple[str, str]]:
    """The credentials jobs get; a real launch needs the S3 ones. The endpoint the launcher wrote to (--endpoint-url
    or env) is the one the jobs must use."""
    secrets = secrets_from_env(required=() if dry_run else S3_SECRETS)
    if getattr(store, "endpoint_url", None):
        secrets = [(k, v) for k, v in secrets if k != "R2_ENDPOINT_URL"] + [("R2_ENDPOINT_URL", store.endpoint_url)]
    return secrets


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


def write_rendered(config: dict[str, Any], folder: Path) -> Path:
    """Keep the rendered YAML for inspection: envs filled in, secrets null as rendered."""
    import yaml

    path = Path(folder) / f"{config['name']}.yaml"
    atomic_write_text(path, yaml.safe_dump(config, sort_keys=False))
    return path


def _job_ids(result: Any) -> list[int]:
    ids = result[0] if isinstance(result, tuple) else result
    if isinstance(ids, int):
        return [ids]
    return [int(i) for i in ids or []]


def _one_line(exc: Exception) -> str:
    return f"{type(exc).__name__}: {' '.join(str(exc).split())}"


def render_tasks(
    shards: list[Shard], *, store, settings: RunSettings, spot: bool, clouds: Iterable[str] | None = None,
    pool: str | None = None, template: str | Path | None = None, dry_run: bool = False, catalog=None,
) -> list[tuple[Manifest, dict[str, Any], Any]]:
    """(manifest, rendered config, validated sky.Task) for every shard; nothing written, nothing sent.
    A real launch needs a bucket store and the S3 credentials; a dry run validates the tasks without them."""
    if not dry_run and not str(store.url).startswith("s3://"):
        raise BenchmarkError("the skypilot backend needs a bucket store (--store s3://bucket/prefix): jobs cannot write here")
    secrets = job_secrets(store, dry_run)
    base = load_yaml(template or TEMPLATE)
    out = []
    for shard in shards:
        manifest = shard_manifest(shard, store.url, settings, catalog=catalog)
        config = render_task_config(base, shard, spot=spot, clouds=clouds, pool=pool)
        config["envs"] = {**config["envs"], "MANIFEST_URL": store.url_for(manifest_key(manifest.shard_id))}
        out.append((manifest, config, build_task(config, {}, secrets)))
    return out


def launch_shards(
    shards: list[Shard],
    *,
    store,
    settings: RunSettings,
    tracker_path,
    spot: bool,
    clouds: Iterable[str] | None = None,
    pool: str | None = None,
    template: str | Path | None = None,
    render_dir: Path | None = None,
    catalog=None,
) -> Submission:
    """Render and validate every task before writing anything, keep the rendered YAMLs (default: `.benchmark/launch`
    beside the tracker), upload the manifests, submit, then await each request and record its job id."""
    import sky

    rendered = render_tasks(shards, store=store, settings=settings, spot=spot, clouds=clouds, pool=pool, template=template,
                            catalog=catalog)
    folder = Path(render_dir) if render_dir is not None else work_dir(tracker_path) / "launch"
    for _, config, _ in rendered:
        write_rendered(config, folder)
    upload_manifests(store, [manifest for manifest, _, _ in rendered])
    report = Submission()
    pending = []
    for shard, (_, _, task) in zip(shards, rendered):
        try:
            pending.append((shard, sky.jobs.launch(task, name=task.name, pool=pool)))
        except Exception as exc:
            report.failed.append((shard, _one_line(exc)))
    for shard, request in pending:
        try:
            ids = _job_ids(sky.get(request))
            if not ids:
                raise RuntimeError("SkyPilot returned no job id")
        except Exception as exc:
            report.failed.append((shard, _one_line(exc)))
            continue
        job_id = ",".join(str(i) for i in ids)
        report.kept += record_launch(tracker_path, shard, job_id, spot)
        report.launched.append((shard, job_id))
        report.lines.append(f"launched {shard.shard_id} as job {job_id} ({len(shard.pairs)} pairs on {shard.gpu})")
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


def _skypilot_ids(entries: Iterable[Entry]) -> dict[int, list[Entry]]:
    """SkyPilot job id -> the pairs it runs (a shard submitted as several jobs has comma-separated ids)."""
    by_id: dict[int, list[Entry]] = {}
    for entry in entries:
        if entry.job_id and entry.job_id != LOCAL_JOB_ID and entry.status in ("launched", "running"):
            for part in entry.job_id.split(","):
                if part.strip().isdigit():
                    by_id.setdefault(int(part), []).append(entry)
    return by_id


def cancel_jobs(tracker, entries: Iterable[Entry]) -> list[str]:
    """Cancel the managed jobs of these pairs and mark the pairs failed, so a retry plans them again."""
    by_id = _skypilot_ids(entries)
    if not by_id:
        return []
    import sky

    try:
        sky.get(sky.jobs.cancel(job_ids=sorted(by_id)))
    except Exception as exc:
        raise BenchmarkError(f"cannot cancel SkyPilot jobs: {' '.join(str(exc).split())[:300]}") from None
    for job_id, pairs in by_id.items():
        for entry in pairs:
            tracker.update(entry.pair, status="failed", error=f"job {entry.job_id} cancelled by benchmark cancel")
    return [str(i) for i in sorted(by_id)]


class SkyPilotBackend:
    """Managed jobs (or a pool's workers); the job queue is read back by `poll`."""

    name = "skypilot"

    def pool_gpus(self, pool: str) -> tuple[str, ...] | None:
        gpu = pool_gpu()
        return (gpu,) if gpu else None

    def validate(self, shards: list[Shard], job: Job, dry_run: bool) -> list[str]:
        render_tasks(
            shards, store=job.store, settings=job.settings, spot=job.spot, clouds=job.clouds, pool=job.pool,
            dry_run=dry_run, catalog=job.catalog,
        )
        notes = [f"{len(shards)} SkyPilot task(s) rendered and valid under SkyPilot's schema"] if shards else []
        if dry_run and not str(job.store.url).startswith("s3://"):
            notes.append("note: a real launch needs a bucket store (--store s3://bucket/prefix)")
        missing = [n for n in S3_SECRETS if not os.environ.get(n)]
        if dry_run and missing:
            notes.append(f"note: a real launch needs {', '.join(missing)} in the environment")
        return notes

    def submit(self, shards: list[Shard], job: Job) -> Submission:
        return launch_shards(
            shards, store=job.store, settings=job.settings, tracker_path=job.tracker_path, spot=job.spot,
            clouds=job.clouds, pool=job.pool, render_dir=job.work_dir / "launch", catalog=job.catalog,
        )

    def poll(self, tracker) -> dict[str, int]:
        return merge_job_queue(tracker)

    def cancel(self, tracker, entries) -> list[str]:
        return cancel_jobs(tracker, entries)


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


# ---------------------------------------------------------------- prices

DEFAULT_REFRESH_CLOUDS = ("aws", "gcp", "azure", "lambda", "runpod")


def fetch_offers(gpus: Iterable[str], clouds: Iterable[str] = DEFAULT_REFRESH_CLOUDS) -> list[Offer]:
    """Single-GPU offers from SkyPilot's catalog (which fetches its hosted CSVs); clouds it cannot read are skipped."""
    import sky.catalog

    wanted = set(gpus)
    offers: list[Offer] = []
    errors: list[str] = []
    for cloud in clouds:
        try:
            listing = sky.catalog.list_accelerators(gpus_only=True, clouds=cloud, require_price=True)
        except Exception as exc:  # a cloud whose catalog cannot be fetched
            errors.append(f"{cloud}: {type(exc).__name__}: {exc}")
            continue
        for name, infos in listing.items():
            if name not in wanted:
                continue
            for info in infos:
                if info.accelerator_count != 1 or info.price is None:
                    continue
                spot = info.spot_price if info.spot_price and info.spot_price == info.spot_price else None
                offers.append(
                    Offer(
                        cloud=str(info.cloud).lower(),
                        instance_type=str(info.instance_type or ""),
                        accelerator=name,
                        count=1,
                        vcpus=int(info.cpu_count or 4),
                        price=float(info.price),
                        spot_price=float(spot) if spot else None,
                        region=str(info.region or ""),
                        memory_gib=float(info.memory) if info.memory else None,
                    )
                )
    if not offers:
        detail = "; ".join(errors)[:300] or "no single-GPU offers for the known GPUs"
        raise BenchmarkError(f"SkyPilot's catalog is unreachable ({detail}); kept the current price table")
    return offers


def refresh_prices(path: str | Path, gpus: Iterable[str], clouds: Iterable[str] = DEFAULT_REFRESH_CLOUDS) -> PriceTable:
    """Rebuild the price table from SkyPilot's catalog and write it atomically; on failure the old file stays."""
    from datetime import date

    import sky

    offers = sorted(fetch_offers(gpus, clouds), key=lambda o: (o.accelerator, o.cloud, o.price, o.instance_type))
    table = PriceTable(
        source=f"SkyPilot {sky.__version__} catalog (sky.catalog.list_accelerators, cheapest region, single-GPU offers)",
        date=date.today().isoformat(),
        offers=tuple(offers),
    )
    atomic_write_json(path, table.to_json())
    return table


def render_similarity_task(store, run_id: str, *, nodes: int, gpus_per_node: int, gpu: str, spot: bool,
                           dry_run: bool = False) -> tuple[dict[str, Any], Any]:
    """The multi-node similarity task (validated by SkyPilot's schema): only the store URL and the run id travel,
    as envs; every node reads the run's manifest from the store."""
    if not dry_run and not str(store.url).startswith("s3://"):
        raise BenchmarkError("the skypilot backend needs a bucket store (--store s3://bucket/prefix): nodes cannot "
                             "read or write here")
    config = load_yaml(SIMILARITY_TEMPLATE)
    config["name"] = f"{JOB_PREFIX}similarity-{run_id}"
    config["num_nodes"] = nodes
    config["resources"] = {**(config.get("resources") or {}), "accelerators": {gpu: gpus_per_node},
                           "use_spot": bool(spot)}
    config["envs"] = {**(config.get("envs") or {}), "SIMILARITY_STORE": str(store.url), "SIMILARITY_RUN": run_id}
    return config, build_task(config, {}, job_secrets(store, dry_run))


def submit_task(task) -> str:
    """One managed job; its id."""
    import sky

    try:
        ids = _job_ids(sky.get(sky.jobs.launch(task, name=task.name)))
    except Exception as exc:
        raise BenchmarkError(f"SkyPilot did not take {task.name}: {_one_line(exc)}") from None
    if not ids:
        raise BenchmarkError(f"SkyPilot returned no job id for {task.name}")
    return ",".join(map(str, ids))
