"""Strict JSON and atomic writes: a killed process leaves the old file or the new one, never half of one."""

from __future__ import annotations

import glob
import json
import math
import os
import re
import tempfile
import time
from pathlib import Path
from typing import Any

from .errors import InvalidResultError


def _current_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


# read once at import: os.umask is process-wide, so asking later from worker threads would race
_FILE_MODE = 0o666 & ~_current_umask()


def _finite(obj: Any) -> Any:
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {str(k): _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    if hasattr(obj, "item") and callable(obj.item):  # numpy / torch scalars
        return _finite(obj.item())
    return obj


def dumps_strict(obj: Any, indent: int | None = 2) -> str:
    """JSON that every parser accepts: NaN and infinities become null."""
    return json.dumps(_finite(obj), indent=indent, sort_keys=False, allow_nan=False)


MAX_DEPTH = 64  # our deepest record (plan.json) nests 7 levels
MAX_BYTES = 64 * 2**20  # the default bound of one document; records have their own, smaller one


def _refuse(token: str):
    raise ValueError(f"non-standard JSON constant {token}")


def read_json(data: str | bytes, what: str, *, max_bytes: int = MAX_BYTES, nan_as_null: bool = False) -> Any:
    """The one reader of JSON from outside this process (a store, a results folder, a user's file), bounded: at most
    `max_bytes` long and MAX_DEPTH deep, so a hostile document is an invalid record, never a RecursionError or a
    parse of gigabytes. Strict, unless `nan_as_null`: clip_benchmark json.dump()s a bare NaN for acc5 with under 5
    classes, read as null. Any defect is an InvalidResultError naming `what`."""
    if len(data) > max_bytes:
        raise InvalidResultError(f"{what} is larger than {max_bytes / 2**20:g} MiB")
    try:
        obj = json.loads(data, parse_constant=(lambda token: None) if nan_as_null else _refuse)
    except RecursionError:
        raise InvalidResultError(f"{what} is nested deeper than {MAX_DEPTH} levels") from None
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError among them
        raise InvalidResultError(f"{what} is not valid JSON ({exc})") from None
    _check_depth(obj, what)
    return obj


def _check_depth(obj: Any, what: str) -> None:
    level = [obj]
    for _ in range(MAX_DEPTH):
        level = [child for node in level if isinstance(node, (dict, list))
                 for child in (node.values() if isinstance(node, dict) else node)]
        if not level:
            return
    if any(isinstance(node, (dict, list)) for node in level):
        raise InvalidResultError(f"{what} is nested deeper than {MAX_DEPTH} levels")


def loads_document(data: bytes, schema: str, what: str) -> dict:
    """A strict JSON object whose `schema` is `schema`; InvalidResultError (naming `what`) for anything else."""
    doc = read_json(data, what)
    if not isinstance(doc, dict) or doc.get("schema") != schema:
        raise InvalidResultError(f"not a {what} (schema is not {schema!r})")
    return doc


# a temp file of a write that was killed stays this long before the next write to its target removes it; a live
# writer holds its temp file for one write, far less than this
STALE_TEMP_SECONDS = 3600


def _remove_stale_temps(path: Path) -> None:
    """Remove our own leftovers for this target: `.<name>.<mkstemp's 8 characters>.tmp`, older than the safety age."""
    pattern = re.compile(rf"\.{re.escape(path.name)}\.[a-z0-9_]{{8}}\.tmp")
    cutoff = time.time() - STALE_TEMP_SECONDS
    for leftover in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):
        try:
            if pattern.fullmatch(leftover.name) and leftover.is_file() and leftover.stat().st_mtime < cutoff:
                leftover.unlink()
        except FileNotFoundError:  # another writer removed it first
            pass


def atomic_write_bytes(path: str | os.PathLike, data: bytes, *, fsync: bool = True) -> None:
    """Write to a temp file in the same folder, fsync, then rename over the target.

    Temp files that a killed write left behind for the same target are removed first (see _remove_stale_temps).
    `fsync=False` is for bulk writers that call `os.sync()` once before recording the files as written.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_temps(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, _FILE_MODE)  # mkstemp makes 0600; a results file should read like any other
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            if fsync:
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    atomic_write_text(path, dumps_strict(obj) + "\n")
