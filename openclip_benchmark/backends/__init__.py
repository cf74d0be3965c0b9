"""Backends that run jobs: `local` on this machine, `skypilot` as managed jobs. One protocol, one registry: the CLI
lists the registry's names and never branches on which backend it got.

Every job is a manifest (an evaluation shard, a similarity run) and the machine it asks for. A backend starts jobs,
says what it knows of them (`poll`) and stops them (`cancel`); what happened reaches the tracker only as outcome
records (`tracker.JobSubmitted`, `tracker.JobState`, results and failures) that the tracker applies. Which backend runs a
pair is recorded with it, so status and cancel ask that one.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Protocol

from ..core.errors import BenchmarkError
from ..storage.layout import manifest_key
from ..tracker import Entry, Estimate, JobState, JobSubmitted

if TYPE_CHECKING:  # annotations only: `benchmark --help` lists the backends without loading pydantic
    from ..core.manifest import Manifest
    from ..tracker import Outcome

# name -> "module:class" (imported only when asked for: SkyPilot's module stays unloaded for a local run), or a
# factory; `register` is the one way in
_REGISTRY: dict[str, str | Callable[[], "Backend"]] = {}


@dataclass(frozen=True)
class Job:
    """What a backend launches: a manifest and the machine it asks for."""

    manifest: Manifest
    gpu: str = ""
    gpus: int = 1  # per node
    nodes: int = 1
    vcpus: int | None = None  # the vCPUs of the instance it was priced on (None: the backend's default)
    spot: bool = True  # may run on spot (a shard the plan found cheaper on demand says no)
    estimates: tuple[Estimate, ...] = ()  # its tracked pairs' shares of its planned time and cost
    inputs: tuple[tuple[str, Path], ...] = ()  # (store prefix, local folder): files a job elsewhere needs first

    @property
    def shard_id(self) -> str:
        return self.manifest.shard_id

    @property
    def pairs(self) -> tuple:
        return self.manifest.pairs

    def submitted(self, backend: str, job_id: str) -> JobSubmitted:
        """The outcome record of this job started by `backend` as `job_id`."""
        return JobSubmitted(backend, job_id, self.estimates)

    def machine(self) -> str:
        return self.gpu if self.nodes == self.gpus == 1 else f"{self.nodes} x {self.gpu}:{self.gpus}"


def _report_nothing(outcomes: Iterable[Outcome]) -> list[Entry]:
    return []


@dataclass(frozen=True)
class LaunchContext:
    """What every job of one launch shares."""

    store: Any = None  # a storage.store Store the jobs read and write; None: a job run here that needs none
    spot: bool = True
    clouds: tuple[str, ...] | None = None
    pool: str | None = None
    render_dir: Path | None = None  # where rendered job files are kept for inspection
    out: Path | None = None  # where a job run on this machine writes its outputs (a similarity run)
    progress: bool = True
    # applies outcome records (to the tracker) as they happen; returns the pairs it left alone
    report: Callable[[Iterable[Outcome]], list[Entry]] = _report_nothing


@dataclass
class Submission:
    launched: list[tuple[Job, str]] = field(default_factory=list)  # (job, job id)
    failed: list[tuple[Job, str]] = field(default_factory=list)  # (job, why it was not submitted)
    kept: list[Entry] = field(default_factory=list)  # pairs another writer moved meanwhile (left as they are)
    lines: list[str] = field(default_factory=list)  # what the backend has to say about the run
    exit_code: int = 0
    finished: bool = False  # the jobs ran to their end before `submit` returned (on this machine)


class Backend(Protocol):
    name: str

    def pool_gpus(self, pool: str) -> tuple[str, ...] | None:
        """The GPUs a pool of warm workers offers, so shards sent to it are planned for them."""

    def validate(self, jobs: list[Job], context: LaunchContext, dry_run: bool) -> list[str]:
        """Check every job would be accepted, writing and sending nothing; BenchmarkError if not. Returns notes."""

    def submit(self, jobs: list[Job], context: LaunchContext) -> Submission:
        """Start the jobs, reporting each start (`Job.submitted`) and any outcome through `context.report`."""

    def poll(self, job_ids: list[str]) -> list[JobState]:
        """What the backend knows of these jobs of its own (ids as it gave them): running, or failed and why."""

    def cancel(self, job_ids: list[str]) -> list[JobState]:
        """Stop these jobs of its own; a `failed` state for each job stopped."""


def register(name: str, target: str | Callable[[], Backend]) -> None:
    """Make a backend available by name: "package.module:Class" (imported on first use) or a factory."""
    _REGISTRY[name] = target


def backend_names() -> tuple[str, ...]:
    return tuple(_REGISTRY)


def get_backend(name: str) -> Backend:
    target = _REGISTRY.get(name)
    if target is None:
        raise BenchmarkError(f"unknown backend {name!r}; choose one of {', '.join(_REGISTRY)}")
    if callable(target):
        return target()
    module, _, cls = target.partition(":")
    return getattr(importlib.import_module(module), cls)()


register("local", f"{__name__}.local:LocalBackend")
register("skypilot", f"{__name__}.skypilot:SkyPilotBackend")


def work_dir(tracker_path: str | Path) -> Path:
    """`.benchmark/` beside the tracker, wherever the command runs from."""
    return Path(tracker_path).parent / ".benchmark"


def upload_manifests(store, manifests: Iterable[Manifest]) -> None:
    for manifest in manifests:
        store.put(manifest_key(manifest.shard_id), manifest.to_json().encode("utf-8"))


def upload_inputs(store, jobs: Iterable[Job]) -> None:
    """Every file a job elsewhere reads from the store: each folder of its inputs under its prefix."""
    for job in jobs:
        for prefix, folder in job.inputs:
            for path in sorted(p for p in Path(folder).rglob("*") if p.is_file()):
                store.put(prefix + path.relative_to(folder).as_posix(), path.read_bytes())
