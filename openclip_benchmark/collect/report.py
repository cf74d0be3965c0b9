"""Metric CSVs -> one self-contained HTML page (inline CSS/JS, plots as embedded PNGs) plus the PNGs beside it."""

from __future__ import annotations

import base64
import csv
import html
import io
import math
import os
from collections import Counter
from pathlib import Path
from typing import Any

from ..core.errors import BenchmarkError
from ..core.jsonio import atomic_write_bytes, atomic_write_text
from ..core.records import utc_now
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
    head = set(LEADERBOARD_TEXT_COLUMNS) | {"params", "image_gflops", "text_gflops", "datasets", "average", "seconds", "cost_usd"}
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


def _cell(column: str, value: Any) -> str:
    if value is None:
        return '<td class="na" data-v="">–</td>'
    if isinstance(value, float):
        if column in ("params",):
            text = f"{value / 1e6:,.0f}M" if value >= 1e6 else f"{value:,.0f}"
        elif column in ("image_gflops", "text_gflops", "seconds"):
            text = f"{value:,.1f}"
        elif column == "cost_usd":
            text = f"${value:,.2f}"
        elif column == "datasets":
            text = f"{value:.0f}"
        else:
            text = f"{100 * value:.1f}"
        return f'<td class="num" data-v="{value!r}">{text}</td>'
    return f'<td data-v="{html.escape(str(value))}">{html.escape(str(value))}</td>'


def leaderboard_html(board: list[dict[str, Any]], columns: list[str]) -> str:
    head = "".join(f'<th data-col="{html.escape(c)}" title="click to sort">{html.escape(c)}</th>' for c in ["#"] + columns)
    body = []
    for rank, row in enumerate(board, 1):
        cells = f'<td class="num" data-v="{rank}">{rank}</td>' + "".join(_cell(c, row.get(c)) for c in columns)
        body.append(f"<tr>{cells}</tr>")
    return f'<table id="leaderboard"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'


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


PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>OpenCLIP benchmark report</title>
<style>
body {{ font: 14px/1.4 system-ui, -apple-system, Segoe UI, Roboto, sans-serif; margin: 24px; color: #222; }}
h1 {{ margin: 0 0 4px; }} .meta {{ color: #666; margin-bottom: 16px; }}
.cards {{ display: flex; gap: 12px; flex-wrap: wrap; margin: 12px 0 20px; }}
.card {{ border: 1px solid #ddd; border-radius: 6px; padding: 8px 14px; min-width: 110px; }}
.card b {{ display: block; font-size: 20px; }}
.scroll {{ overflow: auto; max-height: 70vh; border: 1px solid #ddd; }}
table {{ border-collapse: collapse; font-size: 12px; }}
th, td {{ padding: 3px 7px; border-bottom: 1px solid #eee; white-space: nowrap; }}
th {{ position: sticky; top: 0; background: #f6f6f6; cursor: pointer; user-select: none; }}
th.asc::after {{ content: " ▲"; }} th.desc::after {{ content: " ▼"; }}
td.num {{ text-align: right; font-variant-numeric: tabular-nums; }} td.na {{ color: #bbb; text-align: center; }}
tr:hover td {{ background: #fafae0; }} tr.flag td {{ color: #b00020; }}
figure {{ margin: 16px 0; }} figure img {{ max-width: 100%; border: 1px solid #eee; }}
.grid {{ display: grid; grid-template-columns: repeat(auto-fit, minmax(460px, 1fr)); gap: 12px; }}
</style></head>
<body>
<h1>OpenCLIP benchmark report</h1>
<div class="meta">Generated {generated}. Scores are each dataset's main metric in percent. Ranked by the number of
datasets done, then the average over them; <code>avg_*</code> columns average a collection only where a model has all of it.
Click a column to sort.</div>
<div class="cards">{cards}</div>
<h2>Leaderboard</h2>
<div class="scroll">{table}</div>
{published}
<h2>Plots</h2>
<div class="grid">{figures}</div>
<script>
(function () {{
  var table = document.getElementById("leaderboard");
  var heads = table.tHead.rows[0].cells;
  function sortBy(index, descending) {{
    var body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) {{
      var x = a.cells[index].getAttribute("data-v"), y = b.cells[index].getAttribute("data-v");
      if (x === "" && y === "") return 0;
      if (x === "") return 1;
      if (y === "") return -1;
      var nx = parseFloat(x), ny = parseFloat(y), r;
      r = (!isNaN(nx) && !isNaN(ny)) ? nx - ny : x.localeCompare(y);
      return descending ? -r : r;
    }});
    rows.forEach(function (row) {{ body.appendChild(row); }});
    for (var i = 0; i < heads.length; i++) heads[i].className = "";
    heads[index].className = descending ? "desc" : "asc";
    table.setAttribute("data-sorted-by", heads[index].getAttribute("data-col"));
  }}
  for (var i = 0; i < heads.length; i++) {{
    heads[i].addEventListener("click", (function (index) {{
      return function () {{ sortBy(index, heads[index].className !== "desc"); }};
    }})(i));
  }}
  // index.html#sort=-average (descending) or #sort=model: a link that opens the table sorted
  var wanted = decodeURIComponent((location.hash.match(/sort=(-?)([^&]+)/) || ["", "", "#"])[2]);
  var descending = /sort=-/.test(location.hash);
  for (var j = 0; j < heads.length; j++) {{
    if (heads[j].getAttribute("data-col") === wanted) sortBy(j, descending);
  }}
  document.body.setAttribute("data-ready", "1");
  window.addEventListener("load", function () {{
    var shown = Array.prototype.filter.call(document.images, function (img) {{ return img.complete && img.naturalWidth > 0; }});
    document.body.setAttribute("data-images-loaded", String(shown.length));
  }});
}})();
</script>
</body></html>
"""


def build_report(
    metrics_dir: str | os.PathLike = ".", out_dir: str | os.PathLike = "report", tracker: str | os.PathLike | None = None,
    throughput_dir: str | os.PathLike | None = None, published=None,
) -> Path:
    """Write `out_dir/index.html` and its plots as PNGs; return the page's path. Runs of `benchmark throughput` in
    `throughput_dir` add their plot (batch size against samples/s); `published` (a `collect.published.Comparison`)
    adds the section on open_clip's published numbers."""
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
    plots = {
        "heatmap": ("Model × dataset", plot_heatmap(board, datasets)),
        "accuracy_vs_gflops": (
            "Accuracy against compute",
            plot_scatter(board, _gflops, "GFLOPs per image + text sample (log)", "Average vs GFLOPs", "no GFLOPs known"),
        ),
        "accuracy_vs_cost": (
            "Accuracy against dollars spent",
            plot_scatter(
                board, lambda r: r.get("cost_usd"), "USD spent evaluating the model (log)", "Average vs cost",
                "no GPU price: these runs were on CPU" if any(r.get("seconds") for r in board) else "no cost data yet",
            ),
        ),
        "progress": ("Sweep progress", plot_progress(counts)),
    }
    sweep_path = metrics_dir / "resolution_sweep.csv"
    if sweep_path.is_file():  # written by parse only where a model ran at several image sizes
        with open(sweep_path, newline="", encoding="utf-8") as fh:
            sizes = [c for c in next(csv.reader(fh), []) if c.isdigit()]
        plots["resolution_sweep"] = ("Resolution sweep", plot_resolution_sweep(read_csv(sweep_path, SWEEP_TEXT_COLUMNS), sizes))
    measured = plot_png(rows(read_runs(throughput_dir))) if throughput_dir and Path(throughput_dir).is_dir() else None
    if measured is not None:
        plots["throughput"] = ("Throughput: batch size against samples/s (benchmark throughput)", measured)
    figures = []
    for name, (title, png) in plots.items():
        atomic_write_bytes(out_dir / f"{name}.png", png)
        data = base64.b64encode(png).decode("ascii")
        figures.append(
            f'<figure id="{name}"><figcaption>{html.escape(title)}</figcaption>'
            f'<img alt="{html.escape(title)}" src="data:image/png;base64,{data}"></figure>'
        )
    total = sum(counts.values())
    cards = {
        "models": len(board),
        "datasets": len(datasets),
        "pairs succeeded": f"{counts.get('succeeded', 0)} / {total}" if total else "–",
        "failed": counts.get("failed", 0) if total else "–",
        "best average": f"{100 * board[0]['average']:.1f}" if board and board[0].get("average") is not None else "–",
    }

    page = PAGE.format(
        generated=html.escape(utc_now()),
        cards="".join(f'<div class="card"><b>{html.escape(str(v))}</b>{html.escape(k)}</div>' for k, v in cards.items()),
        table=leaderboard_html(board, columns),
        figures="".join(figures),
        published=published_html(published),
    )
    index = out_dir / "index.html"
    atomic_write_text(index, page)
    return index
