"""report: one self-contained, interactive HTML page, checked in headless Chromium through Playwright (Debian's
chromium, no browser download) at catalog scale: 196 models x 51 datasets."""

from __future__ import annotations

import csv
import json
import random
import re
import shutil
from collections import Counter

import pytest
from test_parse import write_results
from typer.testing import CliRunner

from fixtures import synthetic_pairs, synthetic_result
from openclip_benchmark.cli import app
from openclip_benchmark.core.jsonio import atomic_write_json
from openclip_benchmark.core.pair import Pair
from openclip_benchmark.catalog import load_catalog, model_family
from openclip_benchmark.collect.charts import cost_axis
from openclip_benchmark.collect.parse import build_leaderboard, parse_results, read_table, write_table
from openclip_benchmark.collect.report import build_report, cell_intervals, page_data, script_json, vega_bundle
from openclip_benchmark.tracker import open_tracker

HOSTILE_MODEL = '<img src=x onerror="alert(1)">'
BASE_PLOTS = ("heatmap", "accuracy_vs_gflops", "accuracy_vs_cost", "progress")
PLOTS = BASE_PLOTS + ("resolution_sweep",)  # the fixture has pairs at several image sizes
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CATALOG = load_catalog()
DATA_TAG = '<script type="application/json" id="report-data">'


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("report")
    pairs = write_results(root / "results", n=130)
    atomic_write_json(root / "results" / "hostile.json", synthetic_result(Pair(HOSTILE_MODEL, "x", "cifar10")))
    with open_tracker(root / "results.csv", create=True) as tracker:
        extra = synthetic_pairs(160)[130:]
        tracker.add(pairs + extra)
        for p in pairs:
            tracker.update(p, status="succeeded")
        for p in extra[:10]:
            tracker.update(p, status="failed", error="boom")
    parse_results(root / "results", root / "metrics", catalog=load_catalog())
    page = build_report(root / "metrics", root / "report", root / "results.csv", catalog=CATALOG)
    return root, page


def embedded_data(text: str) -> dict:
    """The page's data: the JSON in its `report-data` script element."""
    start = text.index(DATA_TAG) + len(DATA_TAG)
    return json.loads(text[start:text.index("</script>", start)])


def test_report_files_are_self_contained(built):
    root, page = built
    assert page == root / "report" / "index.html"
    for name in PLOTS:
        assert (root / "report" / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    text = page.read_text()
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", text), "the page must not load anything from the network"
    assert "<script src" not in text and "<link" not in text
    ours = text.replace(vega_bundle(), "")  # the library's own strings name its schema and editor, which it never loads
    assert "http://" not in ours and "https://" not in ours
    assert ours.count('<img alt="Sweep progress" src="data:image/png;base64,') == 1  # small; the charts are Vega-Lite
    data = embedded_data(text)
    with open(root / "metrics" / "leaderboard.csv", newline="") as fh:
        board = list(csv.DictReader(fh))
    assert [r[data["columns"].index("model")] for r in data["rows"]] == [b["model"] for b in board]
    # user-supplied names are text in JSON, never markup
    assert HOSTILE_MODEL not in text and HOSTILE_MODEL in [r[0] for r in data["rows"]]
    assert "130 / 160" in text  # succeeded / tracked
    assert set(data["collections"]) >= {"imagenet_robustness", "vtab", "retrieval"}
    assert data["data"]["sweep"] and not any("lo" in s for s in data["data"]["scores"])  # no intervals here


def test_embedded_json_cannot_end_its_script():
    hostile = {"model": "</script><!-- <img src=x onerror=alert(1)> & \u2028\u2029 </SCRIPT>"}
    text = script_json(hostile)
    assert not set(text) & set("<>&\u2028\u2029") and json.loads(text) == hostile


def test_family_and_collections_come_from_the_catalog():
    board = [{"model": m, "pretrained": "x", "preprocess": None, "average": 0.5, "cifar10": 0.5}
             for m in ("ViT-B-32", "convnext_base_w", "RN50", "EVA02-B-16", "coca_ViT-L-14", "local-dir:/m/tiny")]
    data = page_data(board, ["model", "pretrained", "preprocess", "average", "cifar10"], ["cifar10"], CATALOG, {})
    assert data["families"] == ["ViT-B", "ConvNeXt", "ResNet", "EVA", "CoCa", "custom"]
    assert data["collections"]["vtab"] == ["cifar10"] and "retrieval" not in data["collections"]
    assert page_data(board, ["model"], [], None, {})["collections"] == {}


def test_cost_axis_says_when_there_is_no_gpu_price():
    assert cost_axis([{"cost_usd": 0.2, "seconds": 9.0}])[0] == "cost_usd"
    column, title, note = cost_axis([{"cost_usd": None, "seconds": 9.0}])
    assert column == "seconds" and "no GPU price" in note and "seconds" in title
    assert "1 model(s) have no GPU price" in cost_axis([{"cost_usd": 0.2, "seconds": 9.0}, {"cost_usd": None, "seconds": 3.0}])[2]
    assert cost_axis([{"cost_usd": None, "seconds": None}])[2] == "no cost data yet"


def test_intervals_are_read_where_both_bounds_are_given(tmp_path):
    assert cell_intervals(None) == {}
    (tmp_path / "leaderboard_intervals.csv").write_text(
        "model,pretrained,preprocess,dataset,value,ci_low,ci_high\n"
        "ViT-B-32,openai,,cifar10,0.9,0.88,0.92\nViT-B-32,openai,,mnist,0.5,,\n")
    assert cell_intervals(read_table(tmp_path / "leaderboard_intervals.csv")) == {
        ("ViT-B-32", "openai", "", "cifar10"): (0.88, 0.92)}  # "": no preprocessing override


def test_report_renders_in_headless_chromium(built, browser, tmp_path):
    root, page = built
    tab = open_page(browser, page.resolve().as_uri() + "#sort=model")
    table = tab.locator("#leaderboard")
    assert table.get_attribute("data-sorted-by") == "model"
    models = tab.eval_on_selector_all("#leaderboard tbody tr", "rows => rows.map(r => r.cells[1].textContent)")
    with open(root / "metrics" / "leaderboard.csv", newline="") as fh:
        assert len(models) == len(list(csv.DictReader(fh))) > 10
    assert models == sorted(models, key=lambda m: m.casefold())  # the JS sort ran on the link's column
    assert HOSTILE_MODEL in models and tab.locator("img[src='x']").count() == 0
    assert tab.evaluate("Array.from(document.images).every(i => i.complete && i.naturalWidth > 0)")
    assert tab.evaluate("document.getElementById('resolution_sweep').getAttribute('data-points')") != "0"
    shot = tmp_path / "shot.png"
    tab.screenshot(path=shot, full_page=True)
    assert shot.stat().st_size > 50_000
    tab.close()

def test_report_cli_parses_when_stale(built, tmp_path):
    root, _ = built
    runner = CliRunner()
    args = ["report", "--results", str(root / "results"), "--metrics", str(tmp_path), "--tracker", str(root / "results.csv")]
    res = runner.invoke(app, args + ["--out", str(tmp_path / "r")])
    assert res.exit_code == 0, res.output
    assert "parse ->" in res.output and (tmp_path / "leaderboard.csv").exists() and (tmp_path / "r" / "index.html").exists()
    res = runner.invoke(app, args + ["--out", str(tmp_path / "r2")])
    assert res.exit_code == 0 and "parse ->" not in res.output  # CSVs are newer than every result
    res = runner.invoke(app, ["report", "--results", str(tmp_path / "none"), "--metrics", str(tmp_path / "none")])
    assert res.exit_code == 2 and res.output.startswith("error: ") and len(res.output.splitlines()) == 1


def test_report_takes_parses_tables_in_memory_and_makes_the_same_page_from_the_csvs(built, tmp_path, monkeypatch):
    from openclip_benchmark.collect import report
    from openclip_benchmark.pipeline import collect

    root, _ = built
    parsed = parse_results(root / "results", tmp_path / "metrics", catalog=CATALOG)
    alone = build_report(tmp_path / "metrics", tmp_path / "alone", root / "results.csv", catalog=CATALOG)  # reads CSVs
    memory = build_report(tmp_path / "nowhere", tmp_path / "memory", root / "results.csv", catalog=CATALOG,
                          tables=parsed.tables)  # no CSV there: nothing is read back
    assert embedded_data(alone.read_text()) == embedded_data(memory.read_text())
    for png in (tmp_path / "alone").glob("*.png"):
        assert png.read_bytes() == (tmp_path / "memory" / png.name).read_bytes()  # the same specs, rendered

    def no_csv(_):
        raise AssertionError("the report read back the CSVs parse had just written")

    monkeypatch.setattr(report, "read_report_tables", no_csv)
    outcome = collect.report(root / "results", tmp_path / "fresh", root / "results.csv", tmp_path / "r", CATALOG)
    assert outcome.parsed is not None and outcome.page.is_file()  # stale: parsed, and the tables handed on
    again = collect.report(root / "results", tmp_path / "metrics", root / "results.csv", tmp_path / "r2", CATALOG,
                           parsed=parsed)  # `benchmark demo`: parse, then report of what it parsed
    assert again.parsed is None and embedded_data(again.page.read_text()) == embedded_data(memory.read_text())


def test_report_with_no_results_yet(tmp_path):
    (tmp_path / "results").mkdir()
    parse_results(tmp_path / "results", tmp_path, catalog=load_catalog())
    page = build_report(tmp_path, tmp_path / "report")
    assert embedded_data(page.read_text())["rows"] == []
    assert all((tmp_path / "report" / f"{name}.png").is_file() for name in BASE_PLOTS)

def test_heatmap_keeps_the_top_of_a_large_board(built, monkeypatch):
    import struct

    from openclip_benchmark.collect import charts, report

    root, _ = built
    table = read_table(root / "metrics" / "leaderboard.csv")
    board, datasets = table.rows, report._dataset_columns(table.columns)

    def height(png: bytes) -> int:
        return struct.unpack(">II", png[16:24])[1]

    def plot_heatmap() -> bytes:
        return charts.png(charts.heatmap(charts.board_data(board, table.columns, datasets, {}), datasets))

    full = height(plot_heatmap())
    monkeypatch.setattr(charts, "HEATMAP_MAX_ROWS", 3)
    assert len(board) > 3 and height(plot_heatmap()) < full


# ---------------------------------------------------------------- in a real browser, at catalog scale

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
LARGE_HOSTILE = '</script><img src=x onerror="window.pwned=1">'
AT = """([id, xv, yv]) => {  // the page point of a datum: the chart canvas + vega's padding and origin + the scales
  const v = window.reportViews[id], x = v.scale("x"), y = v.scale("y"), pad = v.padding(), [ox, oy] = v.origin();
  const box = v.container().querySelector("canvas").getBoundingClientRect();
  return [box.left + pad.left + ox + x(xv) + (x.bandwidth ? x.bandwidth() / 2 : 0),
          box.top + pad.top + oy + y(yv) + (y.bandwidth ? y.bandwidth() / 2 : 0)];
}"""


@pytest.fixture(scope="module")
def browser():
    if CHROMIUM is None:
        pytest.skip("chromium is not installed (.ci/run installs Debian's chromium)")
    playwright = pytest.importorskip("playwright.sync_api")
    with playwright.sync_playwright() as driver:
        chromium = driver.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


def open_page(browser, url: str, requests: list | None = None):
    """A tab with the page loaded and its charts drawn (`data-ready`); script errors fail the test."""
    tab = browser.new_page(viewport={"width": 1400, "height": 1000})
    errors: list[str] = []
    tab.on("pageerror", lambda exc: errors.append(str(exc)))
    if requests is not None:
        tab.on("request", lambda request: requests.append(request.url))
    tab.goto(url)
    tab.wait_for_selector("body[data-ready='1']", timeout=30_000)
    assert not errors and tab.locator("body").get_attribute("data-error") is None, errors
    return tab


@pytest.fixture(scope="module")
def large(tmp_path_factory):
    """The catalog's 196 models x 51 datasets, written as parse writes them (nothing evaluated), with a 95% interval
    on each dataset's score but one, and a model whose name is markup."""
    root = tmp_path_factory.mktemp("large")
    rng = random.Random(11)
    rows = []
    for i, m in enumerate(CATALOG.models):
        skill = rng.random()
        for spec in CATALOG.datasets.values():
            rows.append({"model": LARGE_HOSTILE if i == 7 else m.arch, "pretrained": m.pretrained, "preprocess": "",
                         "dataset": spec.name, "language": "en", "task": spec.task, "params": m.params,
                         "image_gflops": m.image_gflops, "text_gflops": m.text_gflops, "seconds": 60.0,
                         "cost_usd": 0.01 + 0.05 * rng.random(), spec.metric: 0.2 + 0.5 * skill + 0.25 * rng.random()})
    board, columns = build_leaderboard(rows, CATALOG)
    write_table(root, "leaderboard", board, columns)
    with open(root / "leaderboard_intervals.csv", "w", newline="") as fh:
        out = csv.writer(fh)
        out.writerow(["model", "pretrained", "preprocess", "dataset", "value", "ci_low", "ci_high"])
        for b in board:
            for d in (spec.leaderboard_column for spec in CATALOG.datasets.values()):
                bounds = ("", "") if (b is board[0] and d == "cifar10") else (b[d] - 0.02, min(1.0, b[d] + 0.015))
                out.writerow([b["model"], b["pretrained"], "", d, b[d], *bounds])
    return build_report(root, root / "report", catalog=CATALOG), board


@pytest.fixture(scope="module")
def large_tab(browser, large):
    page, board = large
    requests: list[str] = []
    tab = open_page(browser, page.resolve().as_uri(), requests)
    mib, ms = page.stat().st_size / 2**20, int(tab.locator("body").get_attribute("data-render-ms"))
    print(f"\nreport at {len(board)} models x {len(CATALOG.datasets)} datasets: {mib:.2f} MiB, rendered in {ms} ms")
    yield tab, board, requests, mib, ms
    tab.close()


def _rows(tab) -> list[list[str]]:
    return tab.eval_on_selector_all("#leaderboard tbody tr", "rows => rows.map(r => Array.from(r.cells, c => c.textContent))")


def _head(tab) -> list[str]:
    return tab.eval_on_selector_all("#leaderboard thead th", "cells => cells.map(c => c.textContent)")


def _changed(tab, action) -> None:
    """Do `action` and wait until the table and every chart show its result."""
    before = tab.locator("body").get_attribute("data-updates") or "0"
    action()
    tab.wait_for_function(f"document.body.getAttribute('data-updates') !== '{before}'", timeout=10_000)


def _hover(tab, chart: str, x, y) -> str:
    tab.evaluate(f"document.getElementById('{chart}').scrollIntoView({{block: 'center'}})")
    px, py = tab.evaluate(AT, [chart, x, y])
    left, top, right, bottom = tab.evaluate(f"(r => [r.left, r.top, r.right, r.bottom])"
                                            f"(document.getElementById('{chart}').getBoundingClientRect())")
    if not (left < px < right - 20 and top < py < bottom - 20):  # a chart larger than its box scrolls in it
        tab.evaluate(f"document.getElementById('{chart}').scrollBy({px - (left + right) / 2}, {py - (top + bottom) / 2})")
        px, py = tab.evaluate(AT, [chart, x, y])
    tab.mouse.move(px - 8, py - 8)
    tab.mouse.move(px, py)
    tab.wait_for_selector("#vg-tooltip-element.visible", timeout=5_000)
    return tab.inner_text("#vg-tooltip-element")


def _isolated(candidates: list[dict], board: list[dict]) -> dict:
    """The candidate farthest from every other model in both scatters the test hovers (ImageNet against GFLOPs, the
    average against dollars; each axis scaled to its range): with many datasets the averages crowd, and a hover
    shows the topmost of two points."""
    import math

    def axes(b):
        return (math.log(b["image_gflops"] + b["text_gflops"]), b["imagenet1k"], b["cost_usd"], b["average"])

    spans = [max(axes(b)[i] for b in board) - min(axes(b)[i] for b in board) or 1.0 for i in range(4)]

    def gap(c):
        here = axes(c)
        apart = lambda o, i, j: math.hypot((here[i] - axes(o)[i]) / spans[i], (here[j] - axes(o)[j]) / spans[j])  # noqa: E731
        return min(min(apart(o, 0, 1), apart(o, 2, 3)) for o in board if o is not c)

    return max(candidates, key=gap)


def test_large_report_is_small_offline_and_quick(large_tab):
    """The render time is printed (the large_tab fixture), not asserted: it measures the machine as much as the page."""
    tab, board, requests, mib, ms = large_tab
    assert mib < 3.0, f"{mib:.2f} MiB; the aim is under 3"
    assert all(url.startswith(("file:", "data:", "about:")) for url in requests), requests
    assert tab.evaluate("window.pwned") is None and tab.locator("img[src='x']").count() == 0
    assert len(_rows(tab)) == len(board) == 196
    assert tab.locator("#heatmap").get_attribute("data-points") == str(196 * (len(CATALOG.datasets) + 1))  # + the family column


def test_large_report_hover_shows_model_value_and_interval_and_zooms(large_tab):
    tab, board, *_ = large_tab
    first, hostile = board[0], next(b for b in board if b["model"] == LARGE_HOSTILE)
    label = f"{first['model']}:{first['pretrained']}"
    tip = _hover(tab, "heatmap", "imagenet1k", label)
    v = first["imagenet1k"]
    assert first["model"] in tip and first["pretrained"] in tip and "imagenet1k" in tip and f"{100 * v:.2f}" in tip
    assert f"{100 * (v - 0.02):.1f} – {100 * min(1.0, v + 0.015):.1f}" in tip
    assert "95%" not in _hover(tab, "heatmap", "cifar10", label)  # its interval cells are empty
    assert model_family(first["model"]) in _hover(tab, "heatmap", "(family)", label)  # the family colour column
    tip = _hover(tab, "heatmap", "mnist", f"{LARGE_HOSTILE}:{hostile['pretrained']}")
    assert LARGE_HOSTILE in tip and tab.evaluate("window.pwned") is None  # shown as text

    _changed(tab, lambda: tab.select_option("#scatter-y", "imagenet1k"))
    m = _isolated(board[1:20], board)  # a point no other model's covers, so the hover finds it
    tip = _hover(tab, "accuracy_vs_gflops", m["image_gflops"] + m["text_gflops"], 100 * m["imagenet1k"])
    assert m["model"] in tip and f"{100 * m['imagenet1k']:.2f}" in tip and "95% interval" in tip
    _changed(tab, lambda: tab.select_option("#scatter-y", "average"))
    tip = _hover(tab, "accuracy_vs_cost", m["cost_usd"], 100 * m["average"])
    assert m["model"] in tip and f"{100 * m['average']:.2f}" in tip and "95%" not in tip  # no interval for averages

    width = "(() => { const d = window.reportViews.accuracy_vs_cost.scale('x').domain(); return d[1] / d[0]; })()"
    before = tab.evaluate(width)
    tab.mouse.wheel(0, -400)  # zoom in around the pointer
    tab.wait_for_function(f"{width} < {before} * 0.9", timeout=5_000)
    step = "window.reportViews.heatmap.signal('y_step')"
    cells = tab.evaluate(step)
    tab.click("#zoom-in")
    tab.wait_for_function(f"{step} > {cells}", timeout=5_000)


def test_large_report_table_sorts_filters_and_searches(large_tab):
    tab, board, *_ = large_tab
    head = _head(tab)
    average = head.index("average")
    _changed(tab, lambda: tab.click("#leaderboard th[data-col='params']"))
    assert tab.locator("#leaderboard").get_attribute("data-sorted-by") == "params"
    params = [float(r[head.index("params")].rstrip("M")) for r in _rows(tab)]
    assert params == sorted(params)  # ascending first for a model column
    _changed(tab, lambda: tab.click("#leaderboard th[data-col='average']"))
    values = [float(r[average]) for r in _rows(tab)]
    assert values == sorted(values, reverse=True) and values[0] == round(100 * max(b["average"] for b in board), 1)
    assert tab.locator("#heatmap").get_attribute("data-points") == str(196 * (len(CATALOG.datasets) + 1))

    families = Counter(model_family(b["model"]) for b in board)
    _changed(tab, lambda: tab.select_option("#family", "ViT-B"))
    assert len(_rows(tab)) == families["ViT-B"] and {r[3] for r in _rows(tab)} == {"ViT-B"}
    assert tab.locator("#heatmap").get_attribute("data-points") == str(families["ViT-B"] * (len(CATALOG.datasets) + 1))
    both = sum(model_family(b["model"]) == "ViT-B" and b["pretrained"] == "openai" for b in board)
    _changed(tab, lambda: tab.select_option("#pretrained", "openai"))
    assert 0 < len(_rows(tab)) == both
    assert tab.locator("#accuracy_vs_gflops").get_attribute("data-points") == str(both)

    _changed(tab, lambda: tab.click("#reset"))
    members = CATALOG.collections()["imagenet_robustness"]
    _changed(tab, lambda: tab.select_option("#collection", "imagenet_robustness"))
    assert [c for c in _head(tab) if c in CATALOG.datasets] == sorted(members) and len(_rows(tab)) == 196
    assert tab.locator("#heatmap").get_attribute("data-points") == str(196 * (len(members) + 1))

    _changed(tab, lambda: tab.click("#reset"))
    wanted = [b for b in board if "convnext" in f"{b['model']} {b['pretrained']} {model_family(b['model'])}".lower()]
    _changed(tab, lambda: tab.fill("#search", "ConvNeXt"))
    rows = _rows(tab)
    assert 0 < len(rows) == len(wanted) and tab.locator("#shown").inner_text().startswith(f"{len(wanted)} of 196 models")
    score = tab.locator("#leaderboard tbody tr").first.locator("td.ci").first.get_attribute("title")
    assert "95% interval" in score  # the table's tooltip
    _changed(tab, lambda: tab.click("#reset"))
    assert len(_rows(tab)) == 196
