"""Result and failure records: clip_benchmark's keys plus a `run` block; validated on every read."""

from __future__ import annotations

import traceback as tb
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable

from .errors import BenchmarkError, InvalidResultError
from .jsonio import loads_lenient
from .pair import Pair

RESULT_SCHEMA = "openclip-benchmark/result/1"
FAILURE_SCHEMA = "openclip-benchmark/failure/1"
MAX_RECORD_BYTES = 4 * 1024 * 1024


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


@dataclass(frozen=True)
class Result:
    """A validated result record: the pair's metrics and how the run went."""

    pair: Pair
    metrics: dict[str, float | None]
    run: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Failure:
    """A validated failure record: why the pair failed, on which attempt, in which shard."""

    pair: Pair
    error: dict[str, Any]
    attempt: int = 1
    shard_id: str | None = None


Record = Result | Failure


def make_result(pair: Pair, metrics: dict[str, Any], run: dict[str, Any]) -> dict[str, Any]:
    """The result JSON: `clip_benchmark build` reads the top-level keys; we add identity and run data."""
    ident = pair.identity()
    return {
        "schema": RESULT_SCHEMA,
        "dataset": ident["dataset"],
        "model": ident["model"],
        "pretrained": ident["pretrained"],
        "task": ident["task"],
        "language": ident["language"],
        "preprocess": ident["preprocess"],
        "metrics": dict(metrics),
        "run": dict(run),
    }


def make_failure(pair: Pair, exc: BaseException, attempt: int, **context: Any) -> dict[str, Any]:
    lines = tb.format_exception(type(exc), exc, exc.__traceback__)
    return {
        "schema": FAILURE_SCHEMA,
        **pair.identity(),
        "error": {
            "type": type(exc).__name__,
            "message": str(exc)[:2000],
            "traceback": "".join(lines)[-4000:],
        },
        "attempt": int(attempt),
        "time": utc_now(),
        **context,
    }


def _check_metrics(metrics: Any) -> dict[str, float | None]:
    if not isinstance(metrics, dict) or not metrics:
        raise InvalidResultError("metrics must be a non-empty object")
    out: dict[str, float | None] = {}
    for key, value in metrics.items():
        if isinstance(value, bool):  # a setting clip_benchmark writes among the metrics (linear probe's `normalized`)
            continue
        if value is None or isinstance(value, (int, float)):
            out[str(key)] = None if value is None else float(value)
        else:
            raise InvalidResultError(f"metric {key!r} is not a number")
    if all(value is None for value in out.values()):
        raise InvalidResultError("no metric is a number")
    return out


def parse_record(
    obj: Any,
    canonical_dataset: Callable[[str], str] | None = None,
    canonical_pair: Callable[[Pair], Pair] | None = None,
) -> Record:
    """Validate a decoded record by content (ours, or one written by clip_benchmark itself).

    `canonical_pair` (a reader that knows the catalog and the tasks) gives the pair the identity it has in either
    tool, e.g. clip_benchmark's `zeroshot_classification` for a multilabel dataset; it raises InvalidResultError
    for an identity it refuses.
    """
    if not isinstance(obj, dict):
        raise InvalidResultError("a record must be a JSON object")
    schema = obj.get("schema", RESULT_SCHEMA)
    for key in ("model", "dataset"):
        if not isinstance(obj.get(key), str) or not obj[key]:
            raise InvalidResultError(f"missing or empty {key!r}")
    ident = dict(obj)
    dataset = ident["dataset"]
    ident["dataset"] = canonical_dataset(dataset) if canonical_dataset else dataset
    try:
        pair = Pair.from_identity(ident)
    except (BenchmarkError, KeyError, TypeError, ValueError) as exc:
        raise InvalidResultError(f"bad identity: {exc}") from exc
    if canonical_pair is not None:
        pair = canonical_pair(pair)
    if schema == FAILURE_SCHEMA:
        error = obj.get("error")
        if not isinstance(error, dict) or not isinstance(error.get("message", ""), str):
            raise InvalidResultError("a failure record needs an error object")
        attempt = obj.get("attempt", 1)
        if not isinstance(attempt, int) or isinstance(attempt, bool) or attempt < 1:
            raise InvalidResultError("attempt must be a positive integer")
        shard_id = obj.get("shard_id")
        return Failure(pair, error=error, attempt=attempt, shard_id=shard_id if isinstance(shard_id, str) else None)
    if schema != RESULT_SCHEMA:
        raise InvalidResultError(f"unknown schema {schema!r}")
    run = obj.get("run", {})
    if not isinstance(run, dict):
        raise InvalidResultError("run must be an object")
    return Result(pair, metrics=_check_metrics(obj.get("metrics")), run=run)


def read_record(
    data: bytes | str,
    canonical_dataset: Callable[[str], str] | None = None,
    canonical_pair: Callable[[Pair], Pair] | None = None,
) -> Record:
    """Decode and validate; any defect (truncation, wrong types) is an InvalidResultError.

    A NaN literal reads as a missing metric: clip_benchmark's own json.dump writes one for acc5 on datasets with
    fewer than 5 classes, and those results are valid."""
    if len(data) > MAX_RECORD_BYTES:
        raise InvalidResultError("record is larger than 4 MiB")
    try:
        obj = loads_lenient(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidResultError(f"not valid JSON: {exc}") from exc
    return parse_record(obj, canonical_dataset, canonical_pair)
