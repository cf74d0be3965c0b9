"""`throughput.png`: batch size against samples/s, one line per model, mode, precision (and image size, device), the
latest measurement of each point. matplotlib is imported inside, with its file-only backend."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from ..core.jsonio import atomic_write_bytes


def _label(row: dict[str, Any]) -> str:
    model = str(row["model"])
    model = model.rsplit("/", 1)[-1] if model.startswith("local-dir:") else model
    size = f" @{row['image_size']}" if row["image_size"] and row["mode"] != "text" else ""
    workers = f" x{row['workers']} workers" if row.get("workers") else ""
    return f"{model} {row['mode']} {row['precision']}{size} ({row['device_name'] or row['device']}{workers})"


def write_plot(path: str | Path, table: list[dict[str, Any]]) -> bool:
    """Write the plot atomically; False (and nothing written) when no row was measured."""
    png = plot_png(table)
    if png is not None:
        atomic_write_bytes(path, png)
    return png is not None


def plot_png(table: list[dict[str, Any]]) -> bytes | None:
    """The measured rows (records.rows; the latest run wins per point) as a PNG; None when there is nothing to draw."""
    lines: dict[str, dict[int, float]] = {}
    for row in table:  # oldest first: a later run's point replaces an earlier one's
        if row["status"] == "ok":
            lines.setdefault(_label(row), {})[int(row["batch_size"])] = float(row["samples_per_s"])
    if not lines:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 5.5))
    for label, points in sorted(lines.items()):
        xs = sorted(points)
        ax.plot(xs, [points[x] for x in xs], marker="o", label=label)
    ax.set_xscale("log", base=2)
    ax.set_xlabel("batch size")
    ax.set_ylabel("samples / s")
    ax.set_title("OpenCLIP throughput")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize="small")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    return buf.getvalue()
