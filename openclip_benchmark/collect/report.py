"""Metric tables -> one self-contained, interactive HTML page, plus PNGs of its charts beside it.

Each chart is one Vega-Lite spec from `charts`: the page embeds it, drawn by vega-embed from the offline bundle of
the vl-convert-python package (inlined, with the data as JSON), and the PNG is vl-convert's rendering of the same
spec. Written by hand (report_assets/report.js), only what the library lacks: the leaderboard table (sort, filter,
search) and handing each chart the rows that pass the filters. The tables come from parse in memory when both run in
one command, else from the CSVs it wrote."""

from __future__ import annotations

import base64
import functools
import html
import json
import os
import string
from collections import Counter
from pathlib import Path
from typing import Any

from ..catalog import Catalog, model_family
from ..core.errors import BenchmarkError
from ..core.jsonio import atomic_write_bytes, atomic_write_text
from ..core.clock import utc_now
from ..throughput.plot import throughput_spec
from ..throughput.records import read_runs, rows
from ..tracker import Tracker
from . import charts
from .parse import LEADERBOARD_HEAD, LEADERBOARD_TAIL, Table, dataset_column, read_table

REPORT_TABLES = ("leaderboard", "leaderboard_intervals", "resolution_sweep")  # the first is required


def read_report_tables(metrics_dir: str | os.PathLike) -> dict[str, Table]:
    """The tables a report is made of, from the CSVs parse wrote (for a report run on its own)."""
    metrics_dir = Path(metrics_dir)
    if not (metrics_dir / "leaderboard.csv").is_file():
        raise BenchmarkError(f"{metrics_dir / 'leaderboard.csv'} not found; run `benchmark parse` first")
    return {name: read_table(path) for name in REPORT_TABLES if (path := metrics_dir / f"{name}.csv").is_file()}


def status_counts(tracker: str | os.PathLike | None) -> Counter:
    if tracker is None or not Path(tracker).exists():
        return Counter()
    return Counter(e.status for e in Tracker.load(tracker))


def _dataset_columns(columns: list[str]) -> list[str]:
    fixed = {*LEADERBOARD_HEAD, *LEADERBOARD_TAIL}
    return [c for c in columns if c not in fixed and not c.startswith("avg_")]


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



def cell_intervals(table: Table | None) -> dict[tuple, tuple[float, float]]:
    """(model, pretrained, preprocess, leaderboard column) -> (ci_low, ci_high) from parse's `leaderboard_intervals`;
    empty without it; cells without both bounds are left out."""
    return {(r["model"], r["pretrained"], r["preprocess"], r["dataset"]): (r["ci_low"], r["ci_high"])
            for r in (table.rows if table is not None else ()) if r["ci_low"] is not None and r["ci_high"] is not None}


def report_charts(board: list[dict[str, Any]], columns: list[str], datasets: list[str], intervals: dict,
                  sweep: Table | None, throughput: dict[str, Any] | None,
                  catalog: Catalog | None = None) -> dict[str, dict[str, Any]]:
    """The page's interactive charts by element id, each one Vega-Lite spec (its PNG is rendered from it)."""
    data = charts.board_data(board, columns, datasets, intervals)
    cost_column, cost_title, cost_note = charts.cost_axis(board)
    specs = {
        "heatmap": charts.heatmap(data, datasets),
        "accuracy_vs_gflops": charts.scatter(data, "gflops", "GFLOPs per image + text sample (log)",
                                             "Accuracy against compute", "no GFLOPs known for the models shown"),
        "accuracy_vs_cost": charts.scatter(
            data, "cost", cost_title,
            "Accuracy against seconds spent" if cost_column == "seconds" else "Accuracy against dollars spent",
            cost_note or "no cost data for the models shown", cost_note),
    }
    if sweep is not None and sweep.rows:
        specs["resolution_sweep"] = charts.resolution_sweep(sweep.rows, [c for c in sweep.columns if c.isdigit()], board, catalog)
    if throughput is not None:
        specs["throughput"] = throughput
    return specs


def page_data(board: list[dict[str, Any]], columns: list[str], datasets: list[str], catalog: Catalog | None,
              specs: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """What the page's script works from: the leaderboard as rows of values in `columns` order, families,
    collections (catalog collections -> the leaderboard columns they hold), and the charts' specs with their
    datasets held once (`data`; the leaderboard's charts share theirs), each spec naming the ones it draws."""
    collections: dict[str, list[str]] = {}
    if catalog is not None:
        column_of = {
            dataset_column(spec.name, lang, catalog, task): spec.name
            for spec in catalog.datasets.values() for lang in spec.languages for task in spec.tasks
        }
        for name, members in catalog.collections().items():
            held = [c for c in datasets if column_of.get(c) in members]
            if held:
                collections[name] = held
    shared: dict[str, list] = {}
    for spec in specs.values():
        shared.update(spec["datasets"])
    return {
        "columns": columns,
        "datasets": datasets,
        "rows": [[charts.short(r.get(c)) for c in columns] for r in board],
        "families": [model_family(r["model"]) for r in board],
        "collections": collections,
        "cost": dict(zip(("column", "title", "note"), charts.cost_axis(board))),
        "data": shared,
        "charts": [{"id": name, "data": list(spec["datasets"]),
                    "spec": {k: v for k, v in spec.items() if k != "datasets"}} for name, spec in specs.items()],
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
    tables: dict[str, Table] | None = None,
) -> Path:
    """Write `out_dir/index.html` and its charts as PNGs; return the page's path. The page is interactive and
    self-contained: a sortable, searchable leaderboard filtered by family, pretrained tag and catalog collection
    (`catalog`; without it, no collection filter), and Vega-Lite charts with hover and zoom, 95% intervals where
    parse computed them. `tables` are parse's (`ParseReport.tables`); without them the CSVs in `metrics_dir` are
    read. Runs of `benchmark throughput` in `throughput_dir` add their chart; `published` (a
    `collect.published.Comparison`) adds the section on open_clip's published numbers."""
    out_dir = Path(out_dir)
    tables = tables if tables is not None else read_report_tables(metrics_dir)
    board, columns = tables["leaderboard"].rows, tables["leaderboard"].columns
    datasets = _dataset_columns(columns)
    counts = status_counts(tracker)
    measured = throughput_spec(rows(read_runs(throughput_dir))) if throughput_dir and Path(throughput_dir).is_dir() else None
    specs = report_charts(board, columns, datasets, cell_intervals(tables.get("leaderboard_intervals")),
                          tables.get("resolution_sweep"), measured, catalog)
    pngs = {name: charts.png(spec) for name, spec in {**specs, "progress": charts.progress(counts)}.items()}
    for name, png in pngs.items():
        atomic_write_bytes(out_dir / f"{name}.png", png)
    figures = "".join(f'<figure><div class="chart" id="{name}"></div></figure>'
                      for name in ("resolution_sweep", "throughput") if name in specs)
    if counts:  # small and static: the PNG itself
        figures += ('<figure id="progress"><img alt="Sweep progress" src="data:image/png;base64,'
                    f'{base64.b64encode(pngs["progress"]).decode("ascii")}"></figure>')
    total = sum(counts.values())
    cards = {
        "models": len(board),
        "datasets": len(datasets),
        "pairs succeeded": f"{counts.get('succeeded', 0)} / {total}" if total else "–",
        "failed": counts.get("failed", 0) if total else "–",
        "best average": f"{100 * board[0]['average']:.1f}" if board and board[0].get("average") is not None else "–",
    }
    page = string.Template((ASSETS / "page.html").read_text(encoding="utf-8")).substitute(
        generated=html.escape(utc_now()),
        cards="".join(f'<div class="card"><b>{html.escape(str(v))}</b>{html.escape(k)}</div>' for k, v in cards.items()),
        pngs=" · ".join(f'<a href="{name}.png">{name}.png</a>' for name in pngs),
        published=published_html(published),
        figures=figures,
        style=(ASSETS / "report.css").read_text(encoding="utf-8"),
        data=script_json(page_data(board, columns, datasets, catalog, specs)),
        vega=vega_bundle(),
        script=(ASSETS / "report.js").read_text(encoding="utf-8"),
    )
    index = out_dir / "index.html"
    atomic_write_text(index, page)
    return index
