"""Every chart of the report as one Vega-Lite spec, built here and nowhere else: the page embeds the spec and the PNG
beside the page is vl-convert's rendering of it, so the two cannot drift apart.

A spec carries its data (`datasets`). Rows drawn from the leaderboard carry `m`, the index of their leaderboard row,
and `c`, the leaderboard column they show: all the page's script needs to hand a chart only the rows that pass the
table's filters (its `usermeta.columns` says which columns: the datasets shown, or the one the scatter y axis shows).
The leaderboard's charts share two datasets, `models` (a row per leaderboard row) and `scores` (a row per score)."""

from __future__ import annotations

import math
from collections import Counter
from typing import Any, Iterable

from ..catalog import model_family
from ..tracker import STATUSES
from .parse import dataset_column

HEATMAP_MAX_ROWS = 200  # the leaderboard is ranked: its top rows stay readable, the table has every row
FAMILY_COLUMN = "(family)"  # the heatmap's first column: each row's family colour
STATUS_COLORS = {
    "pending": "#bbbbbb",
    "planned": "#9ecae1",
    "launched": "#6baed6",
    "running": "#3182bd",
    "succeeded": "#31a354",
    "failed": "#de2d26",
    "skipped": "#fdae6b",
}
ZOOM = [{"name": "zoom", "select": "interval", "bind": "scales"}]  # wheel zooms, drag pans, double-click resets
SCATTER_SIZE = {"width": 480, "height": 320}
MODEL_FIELDS = ["label", "model", "pretrained", "family", "preprocess", "datasets", "order"]

# tooltips, in Vega's expression language: the row's model, then what the mark shows. A value that is undefined (a
# model without preprocessing overrides, a score without an interval: fields their rows leave out) is not shown.
MODEL_TIP = ("'title': datum.label, 'model': datum.model, 'pretrained': datum.pretrained || '\u2013', "
             "'family': datum.family, 'preprocess': datum.preprocess")
SCORE_TIP = (f"{{{MODEL_TIP}, 'dataset': datum.c == 'average' ? 'average over ' + datum.datasets + ' datasets' : "
             "datum.c, 'value (%)': format(datum.v, '.2f'), '95% interval (%)': isValid(datum.lo) ? "
             "format(datum.lo, '.1f') + ' \u2013 ' + format(datum.hi, '.1f') : datum.lo}")


def label(row: dict[str, Any]) -> str:
    text = f"{row['model']}:{row['pretrained']}" if row.get("pretrained") else str(row["model"])
    return f"{text} {row['preprocess']}" if row.get("preprocess") else text


def _unique_labels(board: list[dict[str, Any]]) -> list[str]:
    seen: Counter = Counter()
    labels = []
    for row in board:
        text = label(row)
        seen[text] += 1
        labels.append(text if seen[text] == 1 else f"{text} #{seen[text]}")
    return labels


def short(value: Any) -> Any:
    """Six significant digits: the page shows at most four, and 196 x 43 numbers stay small; NaN becomes null."""
    if not isinstance(value, float):
        return value
    return float(f"{value:.6g}") if math.isfinite(value) else None


def _percent(value: Any) -> float | None:
    return short(100.0 * value) if isinstance(value, (int, float)) else None


def gflops(row: dict[str, Any]) -> float | None:
    """Compute per image + text sample, as the leaderboard row has it (the image tower's at its image size)."""
    if row.get("image_gflops") is None:
        return None
    return row["image_gflops"] + (row.get("text_gflops") or 0.0)


def cost_axis(board: list[dict[str, Any]]) -> tuple[str, str, str]:
    """(column, axis title, note) of the cost plot: dollars where a GPU price is known; for runs that have none (CPU),
    seconds, labelled so, so the plot is never empty while anything ran."""
    priced = sum(r.get("cost_usd") is not None for r in board)
    unpriced = sum(r.get("cost_usd") is None and r.get("seconds") is not None for r in board)
    if priced:
        note = f"; {unpriced} model(s) have no GPU price (CPU runs) and are not drawn" if unpriced else ""
        return "cost_usd", "USD spent evaluating the model (log)", note
    if unpriced:
        return "seconds", "seconds spent evaluating the model (log)", "no GPU price: these runs were on CPU, so seconds"
    return "cost_usd", "USD spent evaluating the model (log)", "no cost data yet"


def score_columns(columns: list[str], datasets: list[str]) -> list[str]:
    """The leaderboard's score columns: the average, each collection's average, then each dataset."""
    return [c for c in columns if c == "average" or c.startswith("avg_")] + datasets


def board_data(board: list[dict[str, Any]], columns: list[str], datasets: list[str],
               intervals: dict[tuple, tuple[float, float]]) -> dict[str, list[dict[str, Any]]]:
    """`models`: a row per leaderboard row (its label, names, family, datasets done, rank as `order`, compute and
    cost); `scores`: a row per score, in percent, with its 95% interval (`lo`, `hi`) where parse computed one."""
    cost_column = cost_axis(board)[0]
    models, scores = [], []
    for m, (row, text) in enumerate(zip(board, _unique_labels(board))):
        model = {"m": m, "label": text, "model": row["model"], "pretrained": row.get("pretrained"),
                 "family": model_family(row["model"]), "datasets": row.get("datasets"), "order": m,
                 "gflops": short(gflops(row)), "cost": short(row.get(cost_column))}
        if row.get("preprocess"):
            model["preprocess"] = row["preprocess"]
        models.append({k: v for k, v in model.items() if v is not None})
        for c in score_columns(columns, datasets):
            if row.get(c) is None:
                continue
            score = {"m": m, "c": c, "v": _percent(row[c])}
            bounds = intervals.get((row["model"], row.get("pretrained"), row.get("preprocess"), c))
            if bounds is not None:
                score.update(lo=_percent(bounds[0]), hi=_percent(bounds[1]))
            scores.append(score)
    return {"models": models, "scores": scores}


def _family_color(families: Iterable[str]) -> dict[str, Any]:
    return {"field": "family", "type": "nominal", "scale": {"domain": sorted(set(families)), "scheme": "tableau20"},
            "legend": {"title": "family"}}


def _lookup(fields: list[str]) -> dict[str, Any]:
    return {"lookup": "m", "from": {"data": {"name": "models"}, "key": "m", "fields": fields}}


def _title(text: str | dict[str, str], note: str = "") -> dict[str, Any]:
    return {"text": text, "subtitle": note} if note else {"text": text}


def heatmap(data: dict[str, list], datasets: list[str]) -> dict[str, Any]:
    """Main metric per model (rows, in the table's order) and dataset, after a column of family colours."""
    top = f"datum.order < {HEATMAP_MAX_ROWS}"
    count = "length(data('models'))"
    title = {"expr": f"'Main metric per model and dataset' + ({count} > {HEATMAP_MAX_ROWS} ? ' (top "
                     f"{HEATMAP_MAX_ROWS} of ' + {count} + '; all in the table)' : '')"}
    return {
        "usermeta": {"columns": "datasets", "empty": "no results yet"},
        "datasets": data,
        "title": _title(title, "" if data["scores"] else "no results yet"),
        "width": {"step": 16}, "height": {"step": 12},
        "encoding": {
            "x": {"field": "c", "type": "nominal", "sort": [FAMILY_COLUMN, *datasets],
                  "axis": {"orient": "top", "labelAngle": -55, "title": None}},
            "y": {"field": "label", "type": "nominal", "sort": {"field": "order", "op": "min"},
                  "axis": {"title": None, "labelLimit": 320}},
        },
        "layer": [
            {"data": {"name": "scores"},
             "transform": [{"filter": {"field": "c", "oneOf": datasets}}, _lookup(MODEL_FIELDS), {"filter": top},
                           {"calculate": SCORE_TIP, "as": "tip"}],
             "mark": {"type": "rect", "tooltip": {"expr": "datum.tip"}},
             "encoding": {"color": {"field": "v", "type": "quantitative", "title": "%",
                                    "scale": {"scheme": "viridis", "domain": [0, 100]}}}},
            {"data": {"name": "models"},
             "transform": [{"filter": top}, {"calculate": f"'{FAMILY_COLUMN}'", "as": "c"},
                           {"calculate": f"{{{MODEL_TIP}}}", "as": "tip"}],
             "mark": {"type": "rect", "tooltip": {"expr": "datum.tip"}},
             "encoding": {"color": _family_color(m["family"] for m in data["models"])}},
        ],
        "resolve": {"scale": {"color": "independent"}},
        "config": {"axis": {"labelFontSize": 10}},
    }


def scatter(data: dict[str, list], x: str, x_title: str, title: str, empty: str, note: str = "") -> dict[str, Any]:
    """A score (the param `y`: the average, a collection's or a dataset's) against a model's `x` (log), with its
    95% interval where parse computed one; wheel zooms, drag pans."""
    placed = {m["m"] for m in data["models"] if m.get(x, 0) > 0}
    drawn = any(s["c"] == "average" and s["m"] in placed for s in data["scores"])
    family = _family_color(m["family"] for m in data["models"])
    return {
        "usermeta": {"columns": "y", "empty": empty},
        "datasets": data,
        "params": [{"name": "y", "value": "average"}],
        "title": _title(title, note if drawn else empty),
        "data": {"name": "scores"},
        "transform": [{"filter": "datum.c == y"}, _lookup([*MODEL_FIELDS, x]), {"filter": f"datum['{x}'] > 0"},
                      {"calculate": SCORE_TIP, "as": "tip"}],
        **SCATTER_SIZE,
        "encoding": {"x": {"field": x, "type": "quantitative", "scale": {"type": "log"}, "title": x_title}},
        "layer": [
            {"transform": [{"filter": "isValid(datum.lo)"}], "mark": {"type": "rule", "opacity": 0.5},
             "encoding": {"y": {"field": "lo", "type": "quantitative"}, "y2": {"field": "hi"}, "color": family}},
            {"params": ZOOM,
             "mark": {"type": "point", "filled": True, "size": 60, "opacity": 0.85, "tooltip": {"expr": "datum.tip"}},
             "encoding": {"y": {"field": "v", "type": "quantitative", "scale": {"zero": False},
                                "axis": {"title": {"expr": "y == 'average' ? 'average main metric (%)' : y + ' (%)'"}}},
                          "color": family}},
        ],
    }


def resolution_sweep(sweep: list[dict[str, Any]], sizes: list[str], board: list[dict[str, Any]],
                     catalog=None) -> dict[str, Any]:
    """Main metric against image size, a line per (model, pretrained, dataset) of the sweep table. A point's `m` is
    the model's first leaderboard row, so the table's filters on model, tag and family act on it."""
    first: dict[tuple, int] = {}
    for m, row in enumerate(board):
        first.setdefault((row["model"], row.get("pretrained")), m)
    points = []
    for row in sweep:
        m = first.get((row["model"], row.get("pretrained")))
        if m is None:
            continue
        name = label({**row, "preprocess": ""})
        column = dataset_column(row["dataset"], row["language"], catalog)
        for size in sizes:
            if row.get(size) is not None:
                points.append({"m": m, "c": column, "size": int(size), "v": _percent(row[size]), "label": name,
                               "model": row["model"], "pretrained": row.get("pretrained"),
                               "family": model_family(row["model"]), "series": f"{name} {column}"})
    tip = f"{{{MODEL_TIP}, 'dataset': datum.c, 'value (%)': format(datum.v, '.2f'), 'image size': datum.size}}"
    return {
        "usermeta": {"columns": "datasets", "empty": "no sweep for the models shown"},
        "datasets": {"sweep": points},
        "title": "Main metric against image size (resolution sweep)",
        "data": {"name": "sweep"},
        "transform": [{"calculate": tip, "as": "tip"}],
        **SCATTER_SIZE,
        "encoding": {
            "x": {"field": "size", "type": "quantitative", "scale": {"zero": False},
                  "axis": {"values": [int(s) for s in sizes]}, "title": "image size (pixels)"},
            "y": {"field": "v", "type": "quantitative", "scale": {"zero": False}, "title": "main metric (%)"},
            "color": _family_color(p["family"] for p in points), "detail": {"field": "series"},
        },
        "layer": [{"mark": "line"},
                  {"params": ZOOM, "mark": {"type": "point", "filled": True, "size": 50, "tooltip": {"expr": "datum.tip"}}}],
    }


def progress(counts: Counter) -> dict[str, Any]:
    """The tracker's pairs by status, one stacked bar, each status named with its count."""
    total = sum(counts.values())
    shown = [s for s in STATUSES if counts.get(s)] or list(STATUSES)  # an empty legend has no size to draw
    bars = [{"status": f"{s} ({counts.get(s, 0)})", "pairs": counts.get(s, 0), "order": i} for i, s in enumerate(shown)]
    title = f"Sweep progress: {counts.get('succeeded', 0)} of {total} pairs succeeded" if total else "Sweep progress"
    return {
        "datasets": {"progress": bars},
        "title": _title(title, "" if total else "no tracker (results.csv) given"),
        "data": {"name": "progress"},
        "width": 560, "height": 36,
        "mark": {"type": "bar", "tooltip": True},
        "encoding": {
            "x": {"field": "pairs", "type": "quantitative", "stack": "zero", "title": "pairs"},
            "color": {"field": "status", "type": "nominal", "title": None, "legend": {"orient": "bottom", "columns": 4},
                      "scale": {"domain": [b["status"] for b in bars], "range": [STATUS_COLORS[s] for s in shown]}},
            "order": {"field": "order"},
        },
    }


def png(spec: dict[str, Any]) -> bytes:
    import vl_convert

    return vl_convert.vegalite_to_png(spec)
