"""`throughput.png`: batch size against samples/s, a panel per model on shared log axes, a line per mode, precision
(and image size, device, worker set) named in one legend; the latest measurement of each point. One Vega-Lite spec,
which the report embeds and vl-convert renders to the PNG."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..core.jsonio import atomic_write_bytes


def _panel(row: dict[str, Any]) -> str:
    model = str(row["model"])
    model = model.rsplit("/", 1)[-1] if model.startswith("local-dir:") else model
    return f"{model}:{row['pretrained']}" if row.get("pretrained") else model


def _line(row: dict[str, Any]) -> str:
    size = f" @{row['image_size']}" if row["image_size"] and row["mode"] != "text" else ""
    workers = f" x{row['workers']} workers" if row.get("workers") else ""
    return f"{row['mode']} {row['precision']}{size} ({row['device_name'] or row['device']}{workers})"


def throughput_spec(table: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The measured rows (records.rows; the latest run wins per point) as a spec; None when nothing was measured."""
    points: dict[tuple[str, str, int], float] = {}
    for row in table:  # oldest first: a later run's point replaces an earlier one's
        if row["status"] == "ok":
            points[(_panel(row), _line(row), int(row["batch_size"]))] = float(row["samples_per_s"])
    if not points:
        return None
    panels = sorted({panel for panel, _, _ in points})
    lines = sorted({line for _, line, _ in points})
    log = {"type": "log", "base": 2}
    return {
        "title": "OpenCLIP throughput: samples/s against batch size, a panel per model",
        "datasets": {"throughput": [{"model": panel, "line": line, "batch_size": batch, "samples_per_s": rate}
                                    for (panel, line, batch), rate in sorted(points.items())]},
        "data": {"name": "throughput"},
        "facet": {"field": "model", "type": "nominal", "title": None, "sort": panels},
        "columns": min(3, len(panels)),
        "spec": {
            "width": 240, "height": 170,
            "encoding": {
                "x": {"field": "batch_size", "type": "quantitative", "scale": log, "title": "batch size",
                      "axis": {"values": sorted({batch for _, _, batch in points})}},
                "y": {"field": "samples_per_s", "type": "quantitative", "scale": {"type": "log"}, "title": "samples / s"},
                "color": {"field": "line", "type": "nominal", "sort": lines, "scale": {"scheme": "tableau20"},
                          "legend": {"title": "mode precision (device)", "labelLimit": 400}},
            },
            "layer": [{"mark": "line"}, {"mark": {"type": "point", "filled": True, "tooltip": True}}],
        },
        "resolve": {"scale": {"x": "shared", "y": "shared"}},
    }


def write_plot(path: str | Path, table: list[dict[str, Any]]) -> bool:
    """Write the plot atomically; False (and nothing written) when no row was measured."""
    png = plot_png(table)
    if png is not None:
        atomic_write_bytes(path, png)
    return png is not None


def plot_png(table: list[dict[str, Any]]) -> bytes | None:
    spec = throughput_spec(table)
    if spec is None:
        return None
    import vl_convert

    return vl_convert.vegalite_to_png(spec)
