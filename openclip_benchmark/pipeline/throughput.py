"""Use case: `benchmark throughput`. Resolve and check everything first (models, dataset, cores, endpoint), then
measure here, in pinned worker processes or against an endpoint, and write one run JSON and the folder's CSV and plot
only once the measurements exist: a refused or failed sweep writes nothing (worker logs aside)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

from ..catalog import Catalog
from ..core.errors import BenchmarkError, UnknownNameError
from ..core.clock import utc_now
from ..datasets.download import ensure_dataset
from ..evaluate import versions
from ..planning import calibration, cost
from ..planning.pricing import GpuSpec
from ..throughput import endpoint as remote
from ..throughput import pinned, timing
from ..throughput.plot import write_plot
from ..throughput.records import Measurement, make_run, read_runs, rows, write_csv, write_run
from ..throughput.settings import SOURCE_RANDOM, Sweep, parse_cores, split_cores

CSV_NAME, PLOT_NAME, LOGS = "throughput.csv", "throughput.png", "logs"


@dataclass(frozen=True)
class ThroughputRequest:
    """The sweep (its models still as the user's selectors) and where it runs."""

    sweep: Sweep
    out: Path = Path("throughput")
    processes: int | None = None  # with `cores`: pinned CPU worker processes
    cores: str | None = None
    endpoint: remote.Endpoint | None = None


@dataclass
class Prepared:
    sweep: Sweep  # models resolved, source a folder (or random)
    workers: list[pinned.Worker] = field(default_factory=list)  # empty: this process
    endpoint: remote.Endpoint | None = None

    def worker_lines(self, log_dir: Path) -> list[str]:
        """What a dry run shows: each worker's cores, environment limits, command and logs."""
        lines = []
        for w in self.workers:
            out, err = pinned.log_paths(log_dir, w)
            lines.append(f"worker {w.index}: cores {','.join(map(str, w.cores))}, {len(w.cores)} thread(s); "
                         f"{' '.join(w.argv('FD'))}; logs {out}, {err}")
        return lines


@dataclass
class ThroughputRun:
    run: dict[str, Any]
    measurements: list[Measurement]
    run_file: Path
    csv_file: Path
    plot_file: Path | None


def resolve_models(catalog: Catalog, selectors: list[str], random_init: bool) -> tuple[tuple[str, str], ...]:
    """The catalog's selectors (ARCH:TAG, globs, families, local-dir:...); with random init the tags do not matter,
    so each architecture is measured once, and any open_clip architecture is allowed."""
    out: dict[tuple[str, str], None] = {}
    for selector in selectors:
        try:
            hits = catalog.select_models([selector])
        except UnknownNameError:
            if not random_init:  # the catalog knows every pretrained model: no need to import open_clip
                raise
            import open_clip

            if selector not in open_clip.list_models():
                raise
            hits = [(selector, "")]
        out.update(dict.fromkeys((model, "" if random_init else tag) for model, tag in hits))
    return tuple(out)


def _source_folder(catalog: Catalog, sweep: Sweep) -> str:
    if sweep.source == SOURCE_RANDOM:
        return SOURCE_RANDOM
    if Path(sweep.source).is_dir():
        return str(Path(sweep.source).resolve())
    spec = catalog.find_dataset(sweep.source)
    return str(ensure_dataset(sweep.source, sweep.cache_dir, sweep.dataset_root, spec=spec))


def prepare(catalog: Catalog, request: ThroughputRequest) -> Prepared:
    """Everything checked and resolved; nothing loaded, started or written."""
    sweep = request.sweep
    if request.endpoint is not None:
        if request.processes is not None or request.cores:
            raise BenchmarkError("--endpoint measures a server: --processes and --cores do not apply")
        if sweep.source != SOURCE_RANDOM:
            raise BenchmarkError("--endpoint sends random inputs: --source must be random")
        return Prepared(sweep, endpoint=request.endpoint)
    sweep = replace(sweep, models=resolve_models(catalog, [m for m, _ in sweep.models], sweep.random_init))
    sweep = replace(sweep, source=_source_folder(catalog, sweep))
    workers = []
    if request.processes is not None or request.cores:
        if sweep.device not in ("auto", "cpu"):
            raise BenchmarkError("pinned workers measure the CPU: --device must be cpu (or auto)")
        cores = parse_cores(request.cores) if request.cores else None
        shares = split_cores(1 if request.processes is None else request.processes, cores)
        workers = pinned.workers_for(shares)
        sweep = replace(sweep, device="cpu")
    return Prepared(sweep, workers)


def measure_throughput(prepared: Prepared, out: Path, say: Callable[[str], None] = lambda line: None) -> ThroughputRun:
    """Measure, then write `<run_id>.json`, and rebuild `throughput.csv` and `throughput.png` from every run there."""
    sweep, started = prepared.sweep, utc_now()
    if prepared.endpoint is not None:
        measurements = remote.run_endpoint(prepared.endpoint, sweep, say)
        environment = {"device": "endpoint", "device_name": prepared.endpoint.url, "cpu_name": timing.cpu_name(),
                       "endpoint": prepared.endpoint.to_json(), "versions": versions()}
    elif prepared.workers:
        measurements, reports = pinned.run_workers(sweep, prepared.workers, out / LOGS, say)
        environment = {**reports[0]["environment"], "affinity": None, "torch_threads": None,
                       "workers": [{k: v for k, v in r.items() if k != "environment"} for r in reports]}
    else:
        measurements = timing.run_sweep(sweep, say=say)
        environment = timing.environment(sweep.device)
    settings = {**sweep.to_json(), "processes": len(prepared.workers) or None,
                "endpoint": prepared.endpoint.to_json() if prepared.endpoint else None}
    finished = utc_now()
    run = make_run(_run_id(settings), started, finished, environment, settings, measurements)
    run_file = write_run(out, run)
    table = rows(read_runs(out))
    write_csv(out / CSV_NAME, table)
    plot = out / PLOT_NAME if write_plot(out / PLOT_NAME, table) else None
    return ThroughputRun(run, measurements, run_file, out / CSV_NAME, plot)


def _run_id(settings: dict[str, Any]) -> str:
    """Time first (files sort by it), then a digest of the settings and the instant, so two runs never collide."""
    now = datetime.now(timezone.utc)
    digest = hashlib.sha256(f"{settings}{now.isoformat()}".encode()).hexdigest()[:8]
    return f"throughput-{now.strftime('%Y%m%dT%H%M%S%f')}-{digest}"


def plan_speeds(folders: Iterable[Path | None], *, models: cost.ModelIndex, gpus: Mapping[str, GpuSpec],
                batch_size: int) -> dict[tuple[str, str], cost.MeasuredSpeed]:
    """What `benchmark plan` takes from the throughput runs in these folders (those that exist) for its GPU speeds."""
    table = [row for folder in dict.fromkeys(f for f in folders if f is not None) if Path(folder).is_dir()
             for row in rows(read_runs(folder))]
    return calibration.measured_speeds(table, models=models, gpus=gpus, batch_size=batch_size)
