"""Use cases from the tracker to running jobs: plan the open pairs, record a plan, launch within a budget, and
summarise the tracker (after asking the backends what moved). The CLI parses options, calls one of these, prints."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

from ..backends import Job, LaunchContext, Submission, get_backend, work_dir
from ..catalog import check_pairs, model_family
from ..collect.parse import read_results
from ..core.errors import BenchmarkError
from ..core.jsonio import atomic_write_text
from ..core.manifest import Manifest, RunSettings, dataset_entries
from ..planning import plan, pricing
from ..planning.budget import within_budget
from ..planning.calibration import calibrate
from ..planning.cost import POOL_JOB_OVERHEAD_S, CostModel, ModelIndex
from ..planning.plan import Plan, Shard
from ..planning.plan_file import PlanFile
from .throughput import plan_speeds
from ..storage.store import open_store
from ..tracker import STATUSES, Entry, Estimate, ShardPlanned, Tracker, open_tracker, record_outcomes

OPEN_STATUSES = ("pending", "planned", "launched", "running")


def money(value: float | None) -> str:
    return "n/a" if value is None else f"${value:,.2f}"


@dataclass(frozen=True)
class PlanRequest:
    """How to plan: the `plan` and `launch` options that shape shards."""

    gpus: tuple[str, ...] | None = None
    clouds: tuple[str, ...] | None = None
    spot: bool = True
    target_minutes: float | None = None
    batch_size: int = 64
    retry_failed: bool = False
    calibrate_from: Path | None = None  # None: `results` (the default results folder) if present
    prices: Path | None = None
    pool: str | None = None
    results: Path = Path("results")
    throughput: Path = Path("throughput")  # `benchmark throughput` runs: measured GPU speeds (also in calibrate_from)


@dataclass
class Planned:
    plan: Plan
    calibration: dict[str, tuple[float, int]]
    plan_file: Path  # where the plan is (or would be) written: `.benchmark/plan.json` beside the tracker


def plan_from_tracker(tracker_path: str | Path, catalog, request: PlanRequest) -> Planned:
    """Plan the pending and planned (with `retry_failed`, failed) pairs; a read, so no lock: saves are atomic."""
    tracker = Tracker.load(tracker_path)
    statuses = ["pending", "planned"] + (["failed"] if request.retry_failed else [])
    pairs = [e.pair for e in tracker.select(statuses)]
    check_pairs(pairs, catalog.datasets)
    gpu_table = pricing.load_gpus()
    models = ModelIndex(catalog.models)
    datasets = catalog.datasets
    cost = CostModel()
    calibration: dict[str, tuple[float, int]] = {}
    folder = request.calibrate_from if request.calibrate_from is not None else request.results
    if Path(folder).is_dir():
        records = [record for record, _ in read_results(folder, catalog) if record.pair.dataset in datasets]
        cost, calibration = calibrate(records, models=models, datasets=datasets, gpus=gpu_table)
    elif request.calibrate_from is not None:
        raise BenchmarkError(f"{request.calibrate_from} is not a folder of results")
    if request.pool:
        cost = replace(cost, job_overhead_s=POOL_JOB_OVERHEAD_S)
    cost = replace(cost, measured=plan_speeds([request.throughput, request.calibrate_from], models=models,
                                              gpus=gpu_table, batch_size=request.batch_size))
    options = plan.PlanOptions(
        gpus=request.gpus, clouds=request.clouds, spot=request.spot, batch_size=request.batch_size,
        target_s=None if request.target_minutes is None else request.target_minutes * 60,
    )
    result = plan.plan_shards(
        pairs, models=models, datasets=datasets, gpus=gpu_table, prices=pricing.load_prices(request.prices),
        options=options, cost=cost,
    )
    return Planned(result, calibration, work_dir(tracker_path) / "plan.json")


def write_plan_file(result: Plan, path: Path) -> None:
    atomic_write_text(path, PlanFile.of(result).to_json())


@dataclass
class Recorded:
    count: int = 0  # pairs now planned
    kept: list[Entry] = field(default_factory=list)  # pairs another writer moved meanwhile (e.g. a sync's result)


def estimates(shard: Shard, spot: bool) -> tuple[Estimate, ...]:
    """Each pair's share of its shard's time and cost: the tracker's estimate columns."""
    rate = shard.cost(spot) / shard.runtime_s if shard.runtime_s else 0.0
    out = []
    for pair in shard.pairs:
        seconds = shard.pair_seconds.get(pair.id)
        out.append(Estimate(pair, shard.shard_id, seconds, None if seconds is None else seconds * rate, shard.gpu))
    return tuple(out)


def record_plan(tracker_path, shards, spot: bool) -> Recorded:
    """Estimates and shard ids, status `planned`, in one locked read-modify-write. The plan was made from an earlier
    read: a pair that has moved since to where `planned` is not allowed (succeeded, launched) keeps its state."""
    applied = record_outcomes(tracker_path, [ShardPlanned(estimates(shard, spot)) for shard in shards])
    return Recorded(sum(len(shard.pairs) for shard in shards) - len(applied.kept), applied.kept)


def kept_summary(kept: list[Entry]) -> str:
    """One line for pairs a record left alone because another command moved them first."""
    counts = Counter(e.status for e in kept)
    return f"{len(kept)} pair(s) moved meanwhile and kept their state ({', '.join(f'{n} {s}' for s, n in sorted(counts.items()))})"


def plan_and_record(tracker_path, catalog, request: PlanRequest, record: bool) -> tuple[Planned, Recorded | None]:
    """`benchmark plan`: the plan, written to the plan file, and with `record` into the tracker."""
    planned = plan_from_tracker(tracker_path, catalog, request)
    recorded = record_plan(tracker_path, planned.plan.shards, request.spot) if record else None
    write_plan_file(planned.plan, planned.plan_file)
    return planned, recorded


def shard_job(shard: Shard, store_url: str, settings: RunSettings, spot: bool, catalog=None) -> Job:
    """The shard as a job: its manifest (with the catalog, the spec of each dataset, so a job needs none of the
    launcher's mapping files) on the machine it was priced on."""
    datasets = dataset_entries(catalog.specs_for(shard.pairs)) if catalog is not None else {}
    manifest = Manifest(shard_id=shard.shard_id, store=store_url, pairs=tuple(shard.pairs), settings=settings,
                        datasets=datasets)
    return Job(manifest, gpu=shard.gpu, vcpus=shard.offer.vcpus, spot=shard.spot, estimates=estimates(shard, spot))


def launch_context(tracker_path, store, spot: bool, *, clouds=None, pool=None, render_dir: Path | None = None,
                   progress: bool = True) -> LaunchContext:
    """A launch from the tracker: rendered jobs kept in `.benchmark/launch` beside it, every outcome applied to it."""
    return LaunchContext(
        store=store, spot=spot, clouds=clouds, pool=pool, progress=progress,
        render_dir=render_dir if render_dir is not None else work_dir(tracker_path) / "launch",
        report=lambda outcomes: record_outcomes(tracker_path, outcomes).kept,
    )


def submit_shards(backend: str, shards: list[Shard], *, store, settings: RunSettings, tracker_path, spot: bool,
                  clouds=None, pool=None, render_dir: Path | None = None, catalog=None) -> Submission:
    """Submit planned shards through a backend, the tracker following each launch and outcome."""
    jobs = [shard_job(shard, store.url, settings, spot, catalog) for shard in shards]
    context = launch_context(tracker_path, store, spot, clouds=clouds, pool=pool, render_dir=render_dir)
    return get_backend(backend).submit(jobs, context)


@dataclass
class LaunchPreview:
    planned: Planned
    selected: list[Shard]
    left: list[Shard]
    cost: float
    notes: list[str] = field(default_factory=list)  # what the backend's validation says


@dataclass
class Launched:
    preview: LaunchPreview
    submission: Submission | None = None  # None: a dry run, nothing selected, or declined
    declined: bool = False


def launch(
    tracker_path: Path,
    catalog,
    request: PlanRequest,
    *,
    backend: str,
    budget: float | None,
    max_jobs: int,
    dry_run: bool,
    store_url: str,
    endpoint_url: str | None,
    settings: RunSettings,
    show: Callable[[LaunchPreview], None] = lambda preview: None,
    confirm: Callable[[LaunchPreview], bool] = lambda preview: True,
    progress: bool = True,
) -> Launched:
    """Plan, take the shards within budget (see `within_budget`), validate them with the backend, then write the
    plan file and submit. Every refusal (budget, validation, a declined prompt) comes before any file is written."""
    chosen = get_backend(backend)
    if request.pool:
        request = replace(request, gpus=request.gpus or chosen.pool_gpus(request.pool))
    planned = plan_from_tracker(tracker_path, catalog, request)
    selected, left = within_budget(planned.plan.shards, budget, request.spot, max_jobs)
    preview = LaunchPreview(planned, selected, left, sum(s.cost(request.spot) for s in selected))
    show(preview)
    if not selected and planned.plan.shards:
        cheapest = min(planned.plan.shards, key=lambda s: s.cost(request.spot))
        raise BenchmarkError(
            f"no shard fits the budget of ${budget:g}: the cheapest, {cheapest.shard_id}, "
            f"costs {money(cheapest.cost(request.spot))}"
        )
    store = open_store(store_url, endpoint_url)
    jobs = [shard_job(shard, store.url, settings, request.spot, catalog) for shard in selected]
    context = launch_context(tracker_path, store, request.spot, clouds=request.clouds, pool=request.pool,
                             progress=progress)
    preview.notes = chosen.validate(jobs, context, dry_run)
    if not dry_run and selected and not confirm(preview):
        return Launched(preview, declined=True)
    write_plan_file(planned.plan, planned.plan_file)
    if dry_run or not selected:
        return Launched(preview)
    return Launched(preview, chosen.submit(jobs, context))


# ---------------------------------------------------------------- status


def summarize(tracker: Tracker) -> dict[str, Any]:
    """Counts by status, dataset and model family, and every failed pair with its reason."""
    by_dataset: dict[str, Counter] = {}
    by_family: dict[str, Counter] = {}
    for entry in tracker:
        by_dataset.setdefault(entry.pair.dataset, Counter())[entry.status] += 1
        by_family.setdefault(model_family(entry.pair.model), Counter())[entry.status] += 1
    failed = [
        {**e.pair.identity(), "attempts": e.attempts, "job_id": e.job_id, "error": e.error}
        for e in tracker.select(["failed"])
    ]
    by_status = Counter(e.status for e in tracker)
    return {
        "tracker": str(tracker.path),
        "total": len(tracker),
        "by_status": {s: by_status[s] for s in STATUSES},
        "by_dataset": {k: dict(sorted(v.items())) for k, v in sorted(by_dataset.items())},
        "by_family": {k: dict(sorted(v.items())) for k, v in sorted(by_family.items())},
        "failed": failed,
        "est_cost_usd_open": round(sum(e.est_cost_usd or 0.0 for e in tracker if e.status in OPEN_STATUSES), 2),
        "observed_runtime_s": round(sum(e.observed_runtime_s or 0.0 for e in tracker), 1),
    }


def _by_backend(entries: list[Entry]) -> dict[str, list[str]]:
    """The job ids of these pairs, by the backend that launched them (pairs no backend can be named for are left)."""
    jobs: dict[str, list[str]] = {}
    for entry in entries:
        if entry.launched_by and entry.job_id:
            jobs.setdefault(entry.launched_by, []).append(entry.job_id)
    return {name: sorted(set(ids)) for name, ids in sorted(jobs.items())}


def poll_jobs(tracker: Tracker) -> tuple[dict[str, int], str]:
    """Each backend that launched an open pair says what it knows of its jobs, and the tracker applies it; a backend
    that cannot answer (unreachable, or not registered here) is a warning, not a failure."""
    moved: Counter = Counter()
    warnings = []
    for name, job_ids in _by_backend(tracker.select(["launched", "running"])).items():
        try:
            moved.update(tracker.apply(get_backend(name).poll(job_ids)).moved)
        except (BenchmarkError, ImportError) as exc:
            warnings.append(" ".join(str(exc).split()))
    return dict(moved), "; ".join(warnings)


def status_summary(tracker_path: str | Path, poll: bool = True) -> dict[str, Any]:
    """The tracker's summary, after the backends moved what they report (in the same locked save)."""
    moved: dict[str, int] = {}
    warning = ""
    with open_tracker(tracker_path) as tracker:
        if poll:
            moved, warning = poll_jobs(tracker)
        summary = summarize(tracker)
    if warning:
        summary["queue_warning"] = warning
    summary["queue_moved"] = moved
    return summary


def cancel(tracker_path: str | Path, backend: str | None = None, shard_ids: list[str] | None = None) -> list[str]:
    """Cancel the jobs of the launched and running pairs (of these shards, of this backend, or all), each through
    the backend that launched it; their pairs fail, so a retry plans them again. Returns the job ids stopped."""
    if backend is not None:
        get_backend(backend)  # an unknown name is refused before anything is stopped
    stopped: list[str] = []
    errors = []
    with open_tracker(tracker_path) as tracker:
        active = [e for e in tracker.select(["launched", "running"])
                  if (not shard_ids or e.shard_id in shard_ids) and backend in (None, e.launched_by)]
        for name, job_ids in _by_backend(active).items():
            try:
                states = get_backend(name).cancel(job_ids)
            except (BenchmarkError, ImportError) as exc:
                errors.append(" ".join(str(exc).split()))
                continue
            tracker.apply(states)
            stopped += [part for state in states for part in state.job_id.split(",")]
    if errors:  # what was stopped is recorded; what could not be is said
        raise BenchmarkError("; ".join(errors) + (f" (stopped {len(stopped)} other job(s))" if stopped else ""))
    return stopped
