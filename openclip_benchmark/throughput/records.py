"""Throughput records: one measurement per (model, mode, precision, batch size, image size), one JSON per run (its
device, versions, settings and every timing), and the folder's `throughput.csv`. Pure: no torch.

A run JSON is the source of truth; the CSV (and the plot) are rebuilt from every run in the folder, so nothing is
lost when a sweep is run again and `benchmark plan` reads the same files."""

from __future__ import annotations

import csv
import io
import math
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Iterable

from ..core.errors import InvalidResultError
from ..core.jsonio import atomic_write_json, atomic_write_text, read_json

RUN_KIND = "openclip-benchmark/throughput/1"
STATUSES = ("ok", "oom", "skipped", "failed")  # skipped: a smaller batch size ran out of memory first


@dataclass
class Measurement:
    model: str
    pretrained: str
    mode: str  # image | text | pair
    precision: str  # resolved: fp32 | amp | amp_bf16 (or `server` for an endpoint)
    batch_size: int
    image_size: int | None  # the image tower's input size (None where no image is involved)
    status: str = "ok"
    samples: int = 0  # samples in the timed phase (pairs count once)
    seconds: float = 0.0  # wall time of the timed phase
    samples_per_s: float = 0.0  # the sum over workers where there are several
    timings_s: list[float] = field(default_factory=list)  # every timed batch, or every request of an endpoint
    peak_memory_bytes: int | None = None
    memory: str = ""  # what peak_memory_bytes is: cuda_max_allocated | cpu_max_rss
    error: str = ""
    workers: list[dict[str, Any]] = field(default_factory=list)  # pinned workers: index, cores, affinity, samples/s
    requests: dict[str, Any] = field(default_factory=dict)  # an endpoint's: ok, failed by status code

    def ms(self, q: float) -> float | None:
        """The q-th percentile of milliseconds per batch (or per request)."""
        return None if not self.timings_s else 1000 * percentile(self.timings_s, q)

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> "Measurement":
        return cls(**{f.name: raw[f.name] for f in fields(cls) if f.name in raw})


def percentile(values: list[float], q: float) -> float:
    """Linear interpolation between the closest ranks (numpy's default), without numpy."""
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100
    lo, hi = math.floor(pos), math.ceil(pos)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def make_run(run_id: str, started: str, finished: str, environment: dict[str, Any], settings: dict[str, Any],
             measurements: Iterable[Measurement]) -> dict[str, Any]:
    return {"kind": RUN_KIND, "run_id": run_id, "started": started, "finished": finished, "environment": environment,
            "settings": settings, "measurements": [asdict(m) for m in measurements]}


def run_path(folder: str | Path, run_id: str) -> Path:
    return Path(folder) / f"{run_id}.json"


def read_runs(folder: str | Path) -> list[dict[str, Any]]:
    """Every throughput run JSON directly in `folder`, oldest first; other JSON files are not ours and are left out."""
    runs = []
    for path in sorted(Path(folder).glob("*.json")):
        try:
            raw = read_json(path.read_bytes(), str(path))
        except (OSError, InvalidResultError):
            continue
        if isinstance(raw, dict) and raw.get("kind") == RUN_KIND:
            runs.append(raw)
    return sorted(runs, key=lambda r: (str(r.get("finished", "")), str(r.get("run_id", ""))))


CSV_COLUMNS = ("run_id", "device", "device_name", "model", "pretrained", "mode", "precision", "batch_size",
               "image_size", "status", "samples_per_s", "ms_p50", "ms_p95", "ms_p99", "peak_memory_bytes", "memory",
               "workers", "requests_ok", "requests_failed", "samples", "seconds", "finished")


def rows(runs: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """One flat row per measurement of these runs: the CSV's rows, the plot's points, the plan's speeds."""
    out = []
    for run in runs:
        env = run.get("environment", {})
        for raw in run.get("measurements", []):
            m = Measurement.from_json(raw)
            failed = m.requests.get("failed", {})
            out.append({
                "run_id": run.get("run_id"), "device": env.get("device"), "device_name": env.get("device_name"),
                "model": m.model, "pretrained": m.pretrained, "mode": m.mode, "precision": m.precision,
                "batch_size": m.batch_size, "image_size": m.image_size, "status": m.status,
                "samples_per_s": round(m.samples_per_s, 3), "ms_p50": _round(m.ms(50)), "ms_p95": _round(m.ms(95)),
                "ms_p99": _round(m.ms(99)), "peak_memory_bytes": m.peak_memory_bytes, "memory": m.memory,
                "workers": len(m.workers) or None, "requests_ok": m.requests.get("ok"),
                "requests_failed": sum(failed.values()) if failed else None, "samples": m.samples,
                "seconds": round(m.seconds, 6), "finished": run.get("finished"),
            })
    return out


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def write_run(folder: str | Path, run: dict[str, Any]) -> Path:
    path = run_path(folder, run["run_id"])
    atomic_write_json(path, run)
    return path


def write_csv(path: str | Path, table: list[dict[str, Any]]) -> None:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows({k: ("" if v is None else v) for k, v in row.items()} for row in table)
    atomic_write_text(path, buf.getvalue())
