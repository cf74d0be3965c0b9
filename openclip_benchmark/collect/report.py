"""Metric CSVs -> one self-contained, interactive HTML page, plus PNGs of its plots beside it.

The charts are Vega-Lite, drawn by vega-embed from the offline bundle of the vl-convert-python package, inlined in
the page with the data as JSON. Written by hand (report_assets/report.js), only what the library lacks: the
leaderboard table (sort, filter, search) and feeding the filtered rows to the charts."""

from __future__ import annotations

import base64
import csv
import functools
import html
import io
import json
import math
import os
import string
from collections import Counter
from pathlib import Path
from typing import Any

from ..catalog import Catalog, model_family
from ..core.errors import BenchmarkError
from ..core.jsonio import atomic_write_bytes, atomic_write_text
from ..core.records import utc_now
from .datacomp import AVERAGE_COLUMN
from .parse import dataset_column
from ..throughput.plot import plot_png
from ..throughput.records import read_runs, rows
from ..tracker import STATUSES, Tracker

LEADERBOARD_TEXT_COLUMNS = ("model", "pretrained", "preprocess")
HEATMAP_MAX_ROWS = 200
STATUS_COLORS = {
    "pending": "#bbbbbb",
    "planned": "#9ecae1",
    "launched": "#6baed6",
    "running": "#3182bd",
    "succeeded": "#31a354",
    "failed": "#de2d26",
    "skipped": "#fdae6b",
}


def read_csv(path: Path, text_columns=LEADERBOARD_TEXT_COLUMNS) -> list[dict[str, Any]]:
    """Rows with numbers as floats and empty cells as None; names stay text even when they look like numbers."""
    with open(path, newline="", encoding="utf-8") as fh:
        return [{k: (v or None) if k in text_columns else _value(v) for k, v in row.items()} for row in csv.DictReader(fh)]


def _value(text: str | None) -> Any:
    if text is None or text == "":
        return None
    try:
        return float(text)
    except ValueError:
        return text


def status_counts(tracker: str | os.PathLike | None) -> Counter:
    if tracker is None or not Path(tracker).exists():
        return Counter()

    return Counter(e.status for e in Tracker.load(tracker))


def _dataset_columns(columns: list[str]) -> list[str]:
    head = set(LEADERBOARD_TEXT_COLUMNS) | {"params", "image_gflops", "text_gflops", "datasets", "average", "seconds", "cost_usd",
                                            AVERAGE_COLUMN}
    return [c for c in columns if c not in head and not c.startswith("avg_")]


def _label(row: dict[str, Any]) -> str:
    text = f"{row['model']}:{row['pretrained']}" if row.get("pretrained") else str(row["model"])
    return f"{text} {row['preprocess']}" if row.get("preprocess") else text


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return buf.getvalue()


def _note(ax, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color="#666666")


def plot_heatmap(board: list[dict[str, Any]], datasets: list[str]) -> bytes:
    import matplotlib.pyplot as plt
    import numpy as np

    total, board = len(board), board[:HEATMAP_MAX_ROWS]  # the board is ranked: the top rows stay readable
    rows = len(board)
    fig, ax = plt.subplots(figsize=(max(6.0, 0.42 * len(datasets) + 4), max(2.5, 0.26 * rows + 1.8)))
    if not board or not datasets:
        _note(ax, "no results yet")
        ax.set_axis_off()
        return _png(fig)
    grid = np.array([[np.nan if r.get(d) is None else 100 * r[d] for d in datasets] for r in board], dtype=float)
    image = ax.imshow(np.ma.masked_invalid(grid), aspect="auto", cmap="viridis", vmin=0, vmax=100)
    ax.set_xticks(range(len(datasets)), datasets, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(rows), [_label(r) for r in board], fontsize=8)
    if rows * len(datasets) <= 400:
        for (i, j), v in np.ndenumerate(grid):
            if not math.isnan(v):
                ax.text(j, i, f"{v:.0f}", ha="center", va="center", fontsize=6, color="white" if v < 60 else "black")
    fig.colorbar(image, ax=ax, label="main metric (%)", fraction=0.03)
    shown = f" (top {rows} of {total}; all in the table)" if total > rows else ""
    ax.set_title(f"Main metric per model and dataset{shown}")
    return _png(fig)


def plot_scatter(board: list[dict[str, Any]], x_of, xlabel: str, title: str, empty: str) -> bytes:
    import matplotlib.pyplot as plt

    points = [(x_of(r), 100 * r["average"], _label(r)) for r in board if r.get("average") is not None]
    points = [(x, y, name) for x, y, name in points if x is not None and x > 0]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    if not points:
        _note(ax, empty)
    else:
        ax.scatter([p[0] for p in points], [p[1] for p in points], s=18, alpha=0.8)
        ax.set_xscale("log")
        for x, y, name in sorted(points, key=lambda p: -p[1])[:8]:
            ax.annotate(name, (x, y), fontsize=7, xytext=(3, 3), textcoords="offset points")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("average main metric (%)")
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    return _png(fig)


SWEEP_MAX_LINES = 20
SWEEP_TEXT_COLUMNS = ("model", "pretrained", "dataset", "language", "preprocess", "metric")


def plot_resolution_sweep(sweep: list[dict[str, Any]], sizes: list[str]) -> bytes:
    """Main metric against image size, one line per (model, pretrained, dataset) of the sweep table (seed 004)."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for row in sweep[:SWEEP_MAX_LINES]:
        points = [(int(s), 100 * row[s]) for s in sizes if row.get(s) is not None]
        label = f"{_label({**row, 'preprocess': ''})} {row['dataset']}"
        ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", label=label)
    ax.set_xticks([int(s) for s in sizes])
    ax.set_xlabel("image size (pixels)")
    ax.set_ylabel("main metric (%)")
    shown = f" (first {SWEEP_MAX_LINES} of {len(sweep)})" if len(sweep) > SWEEP_MAX_LINES else ""
    ax.set_title(f"Main metric against image size{shown}")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7, loc="best")
    return _png(fig)


def plot_progress(counts: Counter) -> bytes:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 2.6))
    total = sum(counts.values())
    if not total:
        _note(ax, "no tracker (results.csv) given")
        ax.set_axis_off()
        return _png(fig)
    left = 0
    for status in STATUSES:
        n = counts.get(status, 0)
        if n:
            ax.barh([0], [n], left=left, color=STATUS_COLORS[status], label=f"{status} ({n})")
            left += n
    ax.set_xlim(0, total)
    ax.set_yticks([])
    ax.set_xlabel("pairs")
    ax.set_title(f"Sweep progress: {counts.get('succeeded', 0)} of {total} pairs succeeded")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.45), ncol=4, fontsize=8, frameon=False)
    return _png(fig)


def _gflops(row: dict[str, Any]) -> float | None:
    if row.get("image_gflops") is None:
        return None
    return row["image_gflops"] + (row.get("text_gflops") or 0.0)


def published_html(comparison) -> str:
    """The check against open_clip's published table (a `collect.published.Comparison`), flagged rows first."""
    if comparison is None or not comparison.rows:
        return ""
    tol = comparison.tolerance
    rows = sorted(comparison.rows, key=lambda d: (not d.flagged(tol), d.model, d.pretrained, d.dataset))
    body = "".join(
        f'<tr class="{"flag" if d.flagged(tol) else ""}"><td>{html.escape(d.model)}</td><td>{html.escape(d.pretrained)}</td>'
        f"<td>{html.escape(d.dataset)}</td><td>{html.escape(d.metric)}</td><td class=\"num\">{100 * d.ours:.2f}</td>"
        f'<td class="num">{100 * d.published:.2f}</td><td class="num">{d.points:+.2f}</td></tr>'
        for d in rows
    )
    head = "".join(f"<th>{c}</th>" for c in ("model", "pretrained", "dataset", "metric", "ours", "published", "Δ points"))
    return (
        f'<h2 id="published">Against open_clip\'s published numbers</h2><div class="meta">{len(rows)} compared, '
        f"{len(comparison.flagged)} more than {tol:g} points apart (red), each column with DataComp's main metric.</div>"
        f'<div class="scroll"><table id="published-table"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>'
    )



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


def read_intervals(metrics_dir: Path) -> dict[tuple, tuple[float, float]]:
    """(model, pretrained, preprocess, leaderboard column) -> (ci_low, ci_high) from parse's
    `leaderboard_intervals.csv`; empty when the file is absent, rows without both bounds are left out."""
    path = metrics_dir / "leaderboard_intervals.csv"
    if not path.is_file():
        return {}
    out = {}
    for row in read_csv(path, INTERVAL_TEXT_COLUMNS):
        low, high = row.get("ci_low"), row.get("ci_high")
        if isinstance(low, float) and isinstance(high, float) and math.isfinite(low) and math.isfinite(high):
            out[(row.get("model"), row.get("pretrained"), row.get("preprocess"), row.get("dataset"))] = (low, high)
    return out


INTERVAL_TEXT_COLUMNS = LEADERBOARD_TEXT_COLUMNS + ("dataset",)


def _short(value: Any) -> Any:
    """Six significant digits: the page shows at most four, and 196 x 43 numbers stay small; NaN becomes null."""
    if not isinstance(value, float):
        return value
    return float(f"{value:.6g}") if math.isfinite(value) else None


def _unique_labels(board: list[dict[str, Any]]) -> list[str]:
    seen: Counter = Counter()
    labels = []
    for row in board:
        label = _label(row)
        seen[label] += 1
        labels.append(label if seen[label] == 1 else f"{label} #{seen[label]}")
    return labels


def page_data(board: list[dict[str, Any]], columns: list[str], datasets: list[str], intervals: dict,
              catalog: Catalog | None, sweep: list[dict[str, Any]], sizes: list[str]) -> dict[str, Any]:
    """What the page's script draws from: the leaderboard as rows of values in `columns` order, the intervals as
    (row, column, low, high), families, collections (catalog collections -> the leaderboard columns they hold)."""
    where = {c: i for i, c in enumerate(columns)}
    values = [[_short(r.get(c)) for c in columns] for r in board]
    cis = []
    for i, r in enumerate(board):
        for col in columns:
            bounds = intervals.get((r["model"], r["pretrained"], r.get("preprocess"), col))
            if bounds is not None:
                cis.append([i, where[col], _short(bounds[0]), _short(bounds[1])])
    collections: dict[str, list[str]] = {}
    if catalog is not None:
        column_of = {
            dataset_column(spec.name, lang, catalog): spec.name for spec in catalog.datasets.values() for lang in spec.languages
        }
        for name, members in catalog.collections().items():
            held = [c for c in datasets if column_of.get(c) in members]
            if held:
                collections[name] = held
    cost = cost_axis(board)
    return {
        "columns": columns,
        "datasets": datasets,
        "rows": values,
        "labels": _unique_labels(board),
        "families": [model_family(r["model"]) for r in board],
        "intervals": cis,
        "collections": collections,
        "cost": {"column": cost[0], "title": cost[1], "note": cost[2]},
        "sweep": {
            "sizes": [int(s) for s in sizes],
            "rows": [
                {"model": r["model"], "pretrained": r["pretrained"], "family": model_family(r["model"]),
                 "dataset": dataset_column(r["dataset"], r.get("language") or "en", catalog), "values": [_short(r.get(s)) for s in sizes]}
                for r in sweep
            ],
        },
    }


def script_json(data: Any) -> str:
    """JSON safe inside a <script> element: no `<`, `>` or `&` (so no `</script>` or `<!--` from a model name) and
    no U+2028/2029 (ASCII only), each written as its \\u escape, which JSON.parse reads back unchanged."""
    text = json.dumps(data, ensure_ascii=True, allow_nan=False, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


@functools.lru_cache(maxsize=1)
def vega_bundle() -> str:
    """vega + vega-lite + vega-embed as one offline script (vl-convert-python's bundle, about 0.9 MB), which sets
    `window.vegaEmbed`; built once per process (about 2 s)."""
    import vl_convert

    js = vl_convert.javascript_bundle()
    if "</script" in js.lower():  # never seen; it would end the inline <script> early
        raise BenchmarkError("the vega bundle contains </script>; it cannot be inlined")
    return js


ASSETS = Path(__file__).resolve().parent / "report_assets"


def build_report(
    metrics_dir: str | os.PathLike = ".", out_dir: str | os.PathLike = "report", tracker: str | os.PathLike | None = None,
    throughput_dir: str | os.PathLike | None = None, published=None, catalog: Catalog | None = None,
) -> Path:
    """Write `out_dir/index.html` and its plots as PNGs; return the page's path. The page is interactive and
    self-contained: a sortable, searchable leaderboard filtered by family, pretrained tag and catalog collection
    (`catalog`; without it, no collection filter), and Vega-Lite charts with hover and zoom, 95% intervals from
    `leaderboard_intervals.csv` where parse wrote them. Runs of `benchmark throughput` in `throughput_dir` add
    their plot; `published` (a `collect.published.Comparison`) adds the section on open_clip's published numbers."""
    import matplotlib

    matplotlib.use("Agg")
    metrics_dir, out_dir = Path(metrics_dir), Path(out_dir)
    path = metrics_dir / "leaderboard.csv"
    if not path.is_file():
        raise BenchmarkError(f"{path} not found; run `benchmark parse` first")
    with open(path, newline="", encoding="utf-8") as fh:
        columns = next(csv.reader(fh), [])
    board = read_csv(path)
    datasets = _dataset_columns(columns)
    counts = status_counts(tracker)
    cost_column, cost_title, cost_note = cost_axis(board)
    pngs = {
        "heatmap": plot_heatmap(board, datasets),
        "accuracy_vs_gflops": plot_scatter(
            board, _gflops, "GFLOPs per image + text sample (log)", "Average vs GFLOPs", "no GFLOPs known"),
        "accuracy_vs_cost": plot_scatter(
            board, lambda r: r.get(cost_column), cost_title, f"Average vs {cost_column}", cost_note),
        "progress": plot_progress(counts),
    }
    sweep_path, sweep, sizes = metrics_dir / "resolution_sweep.csv", [], []
    if sweep_path.is_file():  # written by parse only where a model ran at several image sizes
        with open(sweep_path, newline="", encoding="utf-8") as fh:
            sizes = [c for c in next(csv.reader(fh), []) if c.isdigit()]
        sweep = read_csv(sweep_path, SWEEP_TEXT_COLUMNS)
        pngs["resolution_sweep"] = plot_resolution_sweep(sweep, sizes)
    measured = plot_png(rows(read_runs(throughput_dir))) if throughput_dir and Path(throughput_dir).is_dir() else None
    if measured is not None:
        pngs["throughput"] = measured
    for name, png in pngs.items():
        atomic_write_bytes(out_dir / f"{name}.png", png)
    sweep_figure = (
        '<figure><figcaption>Main metric against image size (resolution sweep)</figcaption>'
        '<div class="chart" id="resolution_sweep"></div></figure>' if sweep else ""
    )
    embedded = {"progress": "Sweep progress", "throughput": "Throughput: batch size against samples/s (benchmark throughput)"}
    figures = sweep_figure + "".join(
        f'<figure id="{name}"><figcaption>{title}</figcaption>'
        f'<img alt="{title}" src="data:image/png;base64,{base64.b64encode(pngs[name]).decode("ascii")}"></figure>'
        for name, title in embedded.items() if name in pngs and (name != "progress" or counts)
    )
    total = sum(counts.values())
    cards = {
        "models": len(board),
        "datasets": len(datasets),
        "pairs succeeded": f"{counts.get('succeeded', 0)} / {total}" if total else "–",
        "failed": counts.get("failed", 0) if total else "–",
        "best average": f"{100 * board[0]['average']:.1f}" if board and board[0].get("average") is not None else "–",
    }
    data = page_data(board, columns, datasets, read_intervals(metrics_dir), catalog, sweep, sizes)
    page = string.Template((ASSETS / "page.html").read_text(encoding="utf-8")).substitute(
        generated=html.escape(utc_now()),
        cards="".join(f'<div class="card"><b>{html.escape(str(v))}</b>{html.escape(k)}</div>' for k, v in cards.items()),
        pngs=" · ".join(f'<a href="{name}.png">{name}.png</a>' for name in pngs),
        published=published_html(published),
        figures=figures,
        style=(ASSETS / "report.css").read_text(encoding="utf-8"),
        data=script_json(data),
        vega=vega_bundle(),
        script=(ASSETS / "report.js").read_text(encoding="utf-8"),
    )
    index = out_dir / "index.html"
    atomic_write_text(index, page)
    return index
