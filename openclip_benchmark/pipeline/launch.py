"""Use cases from the tracker to running jobs: plan the open pairs, record a plan, launch within a budget, and
summarise the tracker (after asking the backends what moved). The CLI parses options, calls one of these, prints."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

from ..backends import Job, Submission, backend_names, estimates, get_backend, work_dir
from ..catalog import check_pairs, model_family
from ..collect.parse import read_results
from ..core.errors import BenchmarkError
from ..core.jsonio import atomic_write_json
from ..core.manifest import RunSettings
from ..planning import plan, pricing
from ..planning.plan import Plan, Shard, within_budget
from .throughput import plan_speeds
from ..storage.store import open_store
from ..tracker import STATUSES, Entry, Tracker, open_tracker

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
    models = plan.ModelIndex(catalog.models)
    datasets = catalog.datasets
    cost = plan.CostModel()
    calibration: dict[str, tuple[float, int]] = {}
    folder = request.calibrate_from if request.calibrate_from is not None else request.results
    if Path(folder).is_dir():
        records = [record for record, _ in read_results(folder, catalog) if record.pair.dataset in datasets]
        cost, calibration = plan.calibrate(records, models=models, datasets=datasets, gpus=gpu_table)
    elif request.calibrate_from is not None:
        raise BenchmarkError(f"{request.calibrate_from} is not a folder of results")
    if request.pool:
        cost = replace(cost, job_overhead_s=plan.POOL_JOB_OVERHEAD_S)
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
    atomic_write_json(
        path,
        {
            "spot": result.options.spot,
            "target_s": result.options.target,
            "runtime_s": result.runtime_s,
            "cost_spot": result.cost_spot,
            "cost_on_demand": result.cost_on_demand,
            "notes": list(result.notes),
            "shards": [
                {
                    "shard_id": s.shard_id,
                    "gpu": s.gpu,
                    "cloud": s.offer.cloud,
                    "instance_type": s.offer.instance_type,
                    "runtime_s": s.runtime_s,
                    "cost_spot": s.cost_spot,
                    "cost_on_demand": s.cost_on_demand,
                    "pairs": [p.identity() for p in s.pairs],
                }
                for s in result.shards
            ],
        },
    )


@dataclass
class Recorded:
    count: int = 0  # pairs now planned
    kept: list[Entry] = field(default_factory=list)  # pairs another writer moved meanwhile (e.g. a sync's result)


def record_plan(tracker_path, shards, spot: bool) -> Recorded:
    """Estimates and shard ids, status `planned`, in one locked read-modify-write. The plan was made from an earlier
    read: a pair that has moved since to where `planned` is not allowed (succeeded, launched) keeps its state."""
    out = Recorded()
    with open_tracker(tracker_path) as tracker:
        for shard in shards:
            for pair in shard.pairs:
                if tracker.can_move(pair, "planned"):
                    tracker.update(pair, status="planned", **estimates(shard, pair, spot))
                    out.count += 1
                else:
                    out.kept.append(tracker.get(pair))
    return out


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
    job = Job(
        store=open_store(store_url, endpoint_url), settings=settings, catalog=catalog, tracker_path=Path(tracker_path),
        spot=request.spot, work_dir=work_dir(tracker_path), clouds=request.clouds, pool=request.pool, progress=progress,
    )
    preview.notes = chosen.validate(selected, job, dry_run)
    if not dry_run and selected and not confirm(preview):
        return Launched(preview, declined=True)
    write_plan_file(planned.plan, planned.plan_file)
    if dry_run or not selected:
        return Launched(preview)
    return Launched(preview, chosen.submit(selected, job))


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


def _poll(tracker: Tracker) -> tuple[dict[str, int], str]:
    """Every backend moves its launched and running pairs forward; an unreachable one is a warning, not a failure."""
    moved: Counter = Counter()
    warnings = []
    for name in backend_names():
        try:
            moved.update(get_backend(name).poll(tracker))
        except (BenchmarkError, ImportError) as exc:
            warnings.append(" ".join(str(exc).split()))
    return dict(moved), "; ".join(warnings)


def status_summary(tracker_path: str | Path, poll: bool = True) -> dict[str, Any]:
    """The tracker's summary, after the backends' queues moved what they report (in the same locked save)."""
    moved: dict[str, int] = {}
    warning = ""
    with open_tracker(tracker_path) as tracker:
        if poll and tracker.select(["launched", "running"]):
            moved, warning = _poll(tracker)
        summary = summarize(tracker)
    if warning:
        summary["queue_warning"] = warning
    summary["queue_moved"] = moved
    return summary


def cancel(tracker_path: str | Path, backend: str, shard_ids: list[str] | None = None) -> list[str]:
    """Cancel the jobs of the launched and running pairs (of these shards, or all); returns the job ids."""
    with open_tracker(tracker_path) as tracker:
        active = [e for e in tracker.select(["launched", "running"]) if not shard_ids or e.shard_id in shard_ids]
        return get_backend(backend).cancel(tracker, active)
