"""report: one self-contained HTML page with a sortable leaderboard and plots, checked in headless Chromium."""

from __future__ import annotations

import csv
import re
import shutil
import subprocess
from html.parser import HTMLParser

import pytest
from test_parse import write_results
from typer.testing import CliRunner

from openclip_benchmark.cli import app
from openclip_benchmark.core.jsonio import atomic_write_json
from openclip_benchmark.core.pair import Pair
from openclip_benchmark.catalog import load_catalog
from openclip_benchmark.collect.parse import parse_results
from openclip_benchmark.collect.report import build_report
from openclip_benchmark.synthetic import synthetic_pairs, synthetic_result
from openclip_benchmark.tracker import open_tracker

HOSTILE_MODEL = '<img src=x onerror="alert(1)">'
BASE_PLOTS = ("heatmap", "accuracy_vs_gflops", "accuracy_vs_cost", "progress")
PLOTS = BASE_PLOTS + ("resolution_sweep",)  # the fixture has pairs at several image sizes
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


class Page(HTMLParser):
    """The parts of the DOM the checks need: body attributes, the table, the images."""

    def __init__(self, text: str):
        super().__init__()
        self.body: dict[str, str] = {}
        self.table: dict[str, str] = {}
        self.rows: list[list[str]] = []
        self.images: list[str] = []
        self._in_body_row = self._in_cell = False
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "body":
            self.body = attrs
        elif tag == "table" and attrs.get("id") == "leaderboard":
            self.table = attrs
        elif tag == "tbody":
            self._in_body_row = True
        elif tag == "tr" and self._in_body_row:
            self.rows.append([])
        elif tag == "td" and self._in_body_row:
            self._in_cell = True
            self.rows[-1].append("")
        elif tag == "img":
            self.images.append(attrs.get("src", ""))

    def handle_endtag(self, tag):
        if tag == "tbody":
            self._in_body_row = False
        elif tag == "td":
            self._in_cell = False

    def handle_data(self, data):
        if self._in_cell:
            self.rows[-1][-1] += data


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
    page = build_report(root / "metrics", root / "report", root / "results.csv")
    return root, page


def test_report_files_are_self_contained(built):
    root, page = built
    assert page == root / "report" / "index.html"
    for name in PLOTS:
        assert (root / "report" / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    text = page.read_text()
    dom = Page(text)
    assert len(dom.images) == len(PLOTS) and all(src.startswith("data:image/png;base64,") for src in dom.images)
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", text), "the page must not load anything from the network"
    with open(root / "metrics" / "leaderboard.csv", newline="") as fh:
        board = list(csv.DictReader(fh))
    assert len(dom.rows) == len(board) and [r[1] for r in dom.rows] == [b["model"] for b in board]
    # user-supplied names are text, never markup
    assert HOSTILE_MODEL not in text and "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;" in text
    assert "130 / 160" in text  # succeeded / tracked


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (.ci/run installs Debian's chromium)")
def test_report_renders_in_headless_chromium(built, tmp_path):
    root, page = built
    url = page.resolve().as_uri() + "#sort=model"
    args = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp_path / 'profile'}",
    ]
    proc = subprocess.run(args + ["--dump-dom", url], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    dom = Page(proc.stdout)
    assert dom.body.get("data-ready") == "1", "the page's script did not run"
    assert dom.body.get("data-images-loaded") == str(len(PLOTS)), "not every plot decoded"
    assert dom.table.get("data-sorted-by") == "model"
    models = [r[1] for r in dom.rows]
    assert len(models) > 10 and models == sorted(models, key=str.casefold)  # the JS sort ran on the link's column
    shot = tmp_path / "shot.png"
    proc = subprocess.run(
        args + ["--window-size=1400,2200", f"--screenshot={shot}", page.resolve().as_uri()], capture_output=True, timeout=120
    )
    assert proc.returncode == 0 and shot.stat().st_size > 50_000


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


def test_report_with_no_results_yet(tmp_path):
    (tmp_path / "results").mkdir()
    parse_results(tmp_path / "results", tmp_path, catalog=load_catalog())
    page = build_report(tmp_path, tmp_path / "report")
    dom = Page(page.read_text())
    assert dom.rows == [] and len(dom.images) == len(BASE_PLOTS)


def test_heatmap_keeps_the_top_of_a_large_board(built, monkeypatch):
    import struct

    from openclip_benchmark.collect import report

    root, _ = built
    board = report.read_csv(root / "metrics" / "leaderboard.csv")
    with open(root / "metrics" / "leaderboard.csv", newline="") as fh:
        datasets = report._dataset_columns(next(csv.reader(fh)))

    def height(png: bytes) -> int:
        return struct.unpack(">II", png[16:24])[1]

    full = height(report.plot_heatmap(board, datasets))
    monkeypatch.setattr(report, "HEATMAP_MAX_ROWS", 3)
    assert len(board) > 3 and height(report.plot_heatmap(board, datasets)) < full
