"""results.csv: the state of every pair. The only writer of that file; every save is atomic and locked.

The tracker is also the one owner of state changes: planners, backends and sync report what happened as outcome
records (a plan's estimates, a job a backend started, what a backend says of its jobs, a result or failure record),
and `Tracker.apply` alone decides, through the transition table, what each one moves.
"""

from __future__ import annotations

import csv
import io
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Iterator

from .core.errors import BenchmarkError
from .core.jsonio import atomic_write_text
from .core.pair import Pair, Preprocess
from .core.clock import utc_now
from .storage.layout import result_key

if TYPE_CHECKING:  # records load pydantic, which `benchmark --help` never needs
    from .core.records import Failure, Record, Result

STATUSES = ("pending", "planned", "launched", "running", "succeeded", "failed", "skipped")
# Status -> the statuses it may change to; keeping a status (new estimates, a new error) is always allowed.
# A result is a fact: every status may become `succeeded`, and nothing leaves it (a new `init` starts a new tracker).
# A failure record may fail any pair not yet succeeded. `failed` goes back to planned or launched on a retry.
# `skipped` is a pair set aside by hand: never planned, back to pending to take it up again.
TRANSITIONS: dict[str, frozenset[str]] = {
    "pending": frozenset({"planned", "launched", "succeeded", "failed", "skipped"}),
    "planned": frozenset({"launched", "succeeded", "failed", "skipped"}),
    "launched": frozenset({"running", "succeeded", "failed"}),
    "running": frozenset({"succeeded", "failed"}),
    "failed": frozenset({"planned", "launched", "succeeded", "skipped"}),
    "skipped": frozenset({"pending", "succeeded", "failed"}),
    "succeeded": frozenset(),
}
IDENTITY_COLUMNS = ["model", "pretrained", "dataset", "language", "task", "preprocess"]
STATE_COLUMNS = [
    "status",
    "shard_id",
    "job_id",
    "backend",
    "attempts",
    "result_key",
    "error",
    "est_runtime_s",
    "est_cost_usd",
    "est_gpu",
    "observed_runtime_s",
    "updated_at",
]
COLUMNS = IDENTITY_COLUMNS + STATE_COLUMNS
LOCK_TIMEOUT_S = 120


# what `launched_by` reads for a row written before the backend column existed (today's guess from the job id)
LEGACY_LOCAL_JOB_ID = "local"


class TrackerError(BenchmarkError):
    pass


def _check_path(path: Path, missing_ok: bool) -> bool:
    """Whether the tracker file exists; a folder in its place, or a missing one unless `missing_ok`, is an error."""
    if path.is_dir():
        raise TrackerError(f"the tracker {path} is a folder, not a CSV file")
    if path.exists():
        return True
    if missing_ok:
        return False
    raise TrackerError(f"{path} does not exist; run `benchmark init` first")


def allowed(old: str, new: str) -> bool:
    """Whether a pair may move from status `old` to `new` (see TRANSITIONS)."""
    if new not in STATUSES:
        raise TrackerError(f"unknown status {new!r}")
    return old == new or new in TRANSITIONS[old]


@dataclass(frozen=True)
class Entry:
    pair: Pair
    status: str = "pending"
    shard_id: str = ""
    job_id: str = ""
    backend: str = ""  # the backend that launched it; empty in rows written before the column existed
    attempts: int = 0
    error: str = ""
    est_runtime_s: float | None = None
    est_cost_usd: float | None = None
    est_gpu: str = ""
    observed_runtime_s: float | None = None
    updated_at: str = ""

    @property
    def launched_by(self) -> str:
        """The backend that runs this pair's job: the recorded one; for an older row, the guess its job id allowed
        (`local`, or SkyPilot's numeric ids), so trackers written before the column still poll and cancel."""
        if self.backend or not self.job_id:
            return self.backend
        if self.job_id == LEGACY_LOCAL_JOB_ID:
            return "local"
        return "skypilot" if all(part.strip().isdigit() for part in self.job_id.split(",")) else ""

    def to_row(self) -> dict[str, str]:
        p = self.pair
        row = {
            "model": p.model,
            "pretrained": p.pretrained,
            "dataset": p.dataset,
            "language": p.language,
            "task": p.task,
            "preprocess": p.preprocess.canonical(),
            "result_key": result_key(p),
        }
        for f in fields(self):
            if f.name == "pair":
                continue
            value = getattr(self, f.name)
            row[f.name] = "" if value is None else (format(value, ".6g") if isinstance(value, float) else str(value))
        # one line per row, whatever an error message held
        row["error"] = " ".join(row["error"].split())[:500]
        return row


@dataclass(frozen=True)
class Estimate:
    """A pair's share of its shard's planned time and cost: the tracker's estimate columns."""

    pair: Pair
    shard_id: str
    runtime_s: float | None = None
    cost_usd: float | None = None
    gpu: str = ""

    def columns(self) -> dict:
        return dict(shard_id=self.shard_id, est_runtime_s=self.runtime_s, est_cost_usd=self.cost_usd, est_gpu=self.gpu)


@dataclass(frozen=True)
class ShardPlanned:
    """A plan's estimates: its pairs become planned."""

    estimates: tuple[Estimate, ...]


@dataclass(frozen=True)
class JobSubmitted:
    """A backend started a job for these pairs: they become launched under its id, one attempt more."""

    backend: str
    job_id: str
    estimates: tuple[Estimate, ...]


@dataclass(frozen=True)
class JobState:
    """What a backend says of one of its jobs: `running`, or `failed` and why. A finished job moves nothing: `sync`
    reads its results, which are the facts."""

    backend: str
    job_id: str
    status: str  # running | failed
    reason: str = ""


if TYPE_CHECKING:  # every outcome the tracker applies; results and failures are the validated records of core.records
    Outcome = ShardPlanned | JobSubmitted | JobState | Result | Failure


@dataclass
class Applied:
    """What a batch of outcomes did."""

    moved: Counter = field(default_factory=Counter)  # pairs whose status changed, by their new status
    kept: list[Entry] = field(default_factory=list)  # pairs a plan or launch left alone: another writer moved them


def _float(value: str, column: str, line: int) -> float | None:
    if value == "":
        return None
    try:
        return float(value)
    except ValueError:
        raise TrackerError(f"results.csv line {line}: {column} is not a number: {value!r}") from None


def parse_tracker(text: str, name: str = "results.csv") -> dict[str, Entry]:
    """Parse and validate the CSV; every defect names its line."""
    reader = csv.DictReader(io.StringIO(text, newline=""))
    header = reader.fieldnames or []
    missing = [c for c in IDENTITY_COLUMNS + ["status"] if c not in header]
    if missing:
        raise TrackerError(f"{name} line 1: missing column(s) {', '.join(missing)}")
    entries: dict[str, Entry] = {}
    for row in reader:
        line = reader.line_num
        if None in row or any(v is None for v in row.values()):
            raise TrackerError(f"{name} line {line}: wrong number of fields")
        try:
            pair = Pair(
                model=row["model"],
                pretrained=row["pretrained"],
                dataset=row["dataset"],
                language=row["language"] or "en",
                task=row["task"],
                preprocess=Preprocess.parse(row["preprocess"]),
            )
        except (BenchmarkError, ValueError) as exc:
            raise TrackerError(f"{name} line {line}: {exc}") from None
        status = row["status"]
        if status not in STATUSES:
            raise TrackerError(f"{name} line {line}: unknown status {status!r}")
        attempts = row.get("attempts") or "0"
        if not attempts.isdigit():
            raise TrackerError(f"{name} line {line}: attempts is not a whole number: {attempts!r}")
        if pair.id in entries:
            raise TrackerError(f"{name} line {line}: duplicate pair {pair.label()}")
        entries[pair.id] = Entry(
            pair=pair,
            status=status,
            shard_id=row.get("shard_id", ""),
            job_id=row.get("job_id", ""),
            backend=row.get("backend", ""),
            attempts=int(attempts),
            error=row.get("error", ""),
            est_runtime_s=_float(row.get("est_runtime_s", ""), "est_runtime_s", line),
            est_cost_usd=_float(row.get("est_cost_usd", ""), "est_cost_usd", line),
            est_gpu=row.get("est_gpu", ""),
            observed_runtime_s=_float(row.get("observed_runtime_s", ""), "observed_runtime_s", line),
            updated_at=row.get("updated_at", ""),
        )
    return entries


def _sort_key(entry: Entry) -> tuple:
    return entry.pair.sort_key()


def render_tracker(entries: Iterable[Entry]) -> str:
    buf = io.StringIO(newline="")
    writer = csv.DictWriter(buf, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    for entry in sorted(entries, key=_sort_key):
        writer.writerow(entry.to_row())
    return buf.getvalue()


class Tracker:
    """In-memory view of results.csv; change it inside `open_tracker` so the save is locked."""

    def __init__(self, path: Path, entries: dict[str, Entry]):
        self.path = Path(path)
        self.entries = entries
        self.changed = False

    @classmethod
    def load(cls, path: str | Path, missing_ok: bool = False) -> "Tracker":
        path = Path(path)
        if not _check_path(path, missing_ok):
            return cls(path, {})
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            raise TrackerError(f"{path} is not UTF-8 text") from None
        except OSError as exc:  # a folder, no permission, an I/O error: name the path, not the exception
            raise TrackerError(f"cannot read the tracker {path}: {exc.strerror or exc}") from None
        return cls(path, parse_tracker(text, path.name))

    def __iter__(self) -> Iterator[Entry]:
        return iter(self.entries.values())

    def __len__(self) -> int:
        return len(self.entries)

    def get(self, pair: Pair) -> Entry | None:
        return self.entries.get(pair.id)

    def add(self, pairs: Iterable[Pair]) -> int:
        """Add pairs not yet tracked; existing ones keep their status. Returns how many were new."""
        added = 0
        for pair in pairs:
            if pair.id not in self.entries:
                self.entries[pair.id] = Entry(pair=pair)
                added += 1
        self.changed |= added > 0
        return added

    def can_move(self, pair: Pair, status: str) -> bool:
        """Whether the pair, as it is now, may move to `status`: the check a writer makes under the lock."""
        entry = self.entries.get(pair.id)
        return allowed(entry.status if entry else "pending", status)

    def update(self, pair: Pair, **changes) -> Entry:
        """Change one pair's state; the one place a status changes, so TRANSITIONS holds for every writer.
        An illegal move raises TrackerError; status changes are stamped with the time."""
        entry = self.entries.get(pair.id)
        if entry is None:
            entry = Entry(pair=pair)
        if "status" in changes and not allowed(entry.status, changes["status"]):
            raise TrackerError(f"{pair.label()}: cannot go from {entry.status} to {changes['status']}")
        new = replace(entry, **changes)
        if new != entry:
            if "status" in changes and "updated_at" not in changes:
                new = replace(new, updated_at=utc_now())
            self.entries[pair.id] = new
            self.changed = True
        return new

    def apply_record(self, record: Record) -> Entry:
        """Move a pair to succeeded or failed from a validated result or failure record."""
        from .core.records import Result

        entry = self.entries.get(record.pair.id) or Entry(pair=record.pair)
        if isinstance(record, Result):
            seconds = record.run.seconds
            return self.update(
                record.pair,
                status="succeeded",
                error="",
                observed_runtime_s=seconds if seconds is not None else entry.observed_runtime_s,
                attempts=max(entry.attempts, record.run.attempt or 1),
            )
        if entry.status == "succeeded":  # a stale failure never hides a result
            return entry
        err = record.error
        return self.update(
            record.pair,
            status="failed",
            error=f"{err.type}: {err.message}",
            attempts=max(entry.attempts, record.attempt),
        )

    def apply(self, outcomes: Iterable[Outcome]) -> Applied:
        """Apply outcomes in order; the one place that decides what an outcome moves. A plan or a launch re-checks
        each pair as it is now (another writer may have moved it since) and leaves it alone where the table says no."""
        from .core.records import Failure, Result

        before = dict(self.entries)
        out = Applied()
        jobs: dict[tuple[str, str], list[Pair]] | None = None  # (backend, job id) -> its active pairs, built once
        for outcome in outcomes:
            if isinstance(outcome, (Result, Failure)):
                self.apply_record(outcome)
            elif isinstance(outcome, (ShardPlanned, JobSubmitted)):
                status = "planned" if isinstance(outcome, ShardPlanned) else "launched"
                for estimate in outcome.estimates:
                    if not self.can_move(estimate.pair, status):
                        out.kept.append(self.entries[estimate.pair.id])
                    elif status == "planned":
                        self.update(estimate.pair, status=status, **estimate.columns())
                    else:
                        entry = self.entries.get(estimate.pair.id)
                        self.update(estimate.pair, status=status, job_id=outcome.job_id, backend=outcome.backend,
                                    attempts=(entry.attempts if entry else 0) + 1, error="", **estimate.columns())
            elif isinstance(outcome, JobState):
                if jobs is None:
                    jobs = {}
                    for e in self.select(["launched", "running"]):
                        jobs.setdefault((e.launched_by, e.job_id), []).append(e.pair)
                for pair in jobs.get((outcome.backend, outcome.job_id), ()):
                    if outcome.status == "failed":
                        self.update(pair, status="failed", error=f"job {outcome.job_id} {outcome.reason}".strip())
                    elif self.entries[pair.id].status != outcome.status:
                        self.update(pair, status=outcome.status)
            else:
                raise TypeError(f"not a tracker outcome: {outcome!r}")
        for pid, entry in self.entries.items():
            old = before.get(pid)
            if old is None or old.status != entry.status:
                out.moved[entry.status] += 1
        return out

    def select(self, statuses: Iterable[str] | None = None) -> list[Entry]:
        wanted = set(statuses) if statuses is not None else None
        return [e for e in sorted(self.entries.values(), key=_sort_key) if wanted is None or e.status in wanted]

    def save(self) -> None:
        try:
            atomic_write_text(self.path, render_tracker(self.entries.values()))
        except OSError as exc:
            raise TrackerError(f"cannot write the tracker {self.path}: {exc.strerror or exc}") from None
        self.changed = False


def _lock(path: Path):
    from filelock import FileLock

    return FileLock(str(path) + ".lock", timeout=LOCK_TIMEOUT_S)


@contextmanager
def open_tracker(path: str | Path, create: bool = False) -> Iterator[Tracker]:
    """Load under the file lock, yield, and save atomically if anything changed and no error was raised.
    A missing tracker (unless `create`) or a folder in its place is refused before a lock file is made beside it."""
    from filelock import Timeout

    path = Path(path)
    _check_path(path, missing_ok=create)
    try:
        lock = _lock(path)
        lock.acquire()
    except Timeout:
        raise TrackerError(f"{path} is locked by another benchmark command (waited {LOCK_TIMEOUT_S} s)") from None
    except OSError as exc:
        raise TrackerError(f"cannot lock the tracker {path}: {exc.strerror or exc}") from None
    try:
        tracker = Tracker.load(path, missing_ok=create)
        yield tracker
        if tracker.changed or (create and not path.exists()):
            tracker.save()
    finally:
        lock.release()


def record_outcomes(path: str | Path, outcomes: Iterable[Outcome], track: Iterable[Pair] = ()) -> Applied:
    """Track `track` (new pairs start pending), then apply the outcomes, in one locked read-modify-write: how plans,
    launches, backends' reports and runs tell the tracker what happened."""
    with open_tracker(path) as tracker:
        tracker.add(track)
        return tracker.apply(outcomes)
