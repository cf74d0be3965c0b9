"""results.csv: the state of every pair. The only writer of that file; every save is atomic and locked."""

from __future__ import annotations

import csv
import io
from contextlib import contextmanager
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Iterator

from .core.errors import BenchmarkError
from .core.jsonio import atomic_write_text
from .core.pair import Pair, Preprocess
from .core.clock import utc_now
from .storage.layout import result_key

if TYPE_CHECKING:  # records load pydantic, which `benchmark --help` never needs
    from .core.records import Record

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
    attempts: int = 0
    error: str = ""
    est_runtime_s: float | None = None
    est_cost_usd: float | None = None
    est_gpu: str = ""
    observed_runtime_s: float | None = None
    updated_at: str = ""

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


def record_outcomes(path: str | Path, records: Iterable[Record], track: Iterable[Pair] = ()) -> None:
    """Track `track` (new pairs start pending), then move each record's pair to succeeded or failed, in one locked
    read-modify-write: how `run` and the local backend tell the tracker what a shard did."""
    with open_tracker(path) as tracker:
        tracker.add(track)
        for record in records:
            tracker.apply_record(record)
