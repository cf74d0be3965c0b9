"""Strict JSON and atomic writes: a killed process leaves the old file or the new one, never half of one."""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any


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


def loads_strict(text: str | bytes) -> Any:
    """Parse JSON, refusing NaN/Infinity literals that Python's json would accept."""

    def _reject(token: str):
        raise ValueError(f"non-standard JSON constant {token}")

    return json.loads(text, parse_constant=_reject)


def atomic_write_bytes(path: str | os.PathLike, data: bytes, *, fsync: bool = True) -> None:
    """Write to a temp file in the same folder, fsync, then rename over the target.

    `fsync=False` is for bulk writers that call `os.sync()` once before recording the files as written.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
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
