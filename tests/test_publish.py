"""`benchmark publish`: the real huggingface_hub against the loopback Hub (`tests/loopback_hub.py`), which
creates the repo, checks the card's front matter, lists the tree, takes preupload, LFS and commit calls and records
what each commit carried."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from openclip_benchmark.catalog import load_catalog
from openclip_benchmark.cli import app
from openclip_benchmark.collect.parse import parse_results
from openclip_benchmark.collect.report import build_report
from openclip_benchmark.core.jsonio import atomic_write_json
from openclip_benchmark.core.pair import Pair, Preprocess
from loopback_hub import Hub
from openclip_benchmark.storage.layout import result_key
from fixtures import synthetic_pairs, synthetic_result

REPO = "bench-team/openclip-results"
TOKEN = "hf_PUBLISHsecret0123456789"
VERSIONS = {"torch": "2.5.1", "open_clip": "2.32.0", "clip_benchmark": "1.6.2", "openclip_benchmark": "0.4.0",
            "python": "3.11.7"}
CATALOG = load_catalog()


def _write(results: Path, pair: Pair) -> None:
    record = synthetic_result(pair)
    record["run"]["versions"] = VERSIONS
    atomic_write_json(results / result_key(pair), record)


def _parse_and_report(root: Path) -> None:
    parsed = parse_results(root / "results", root / "metrics", catalog=CATALOG)
    build_report(root / "metrics", root / "report", catalog=CATALOG, tables=parsed.tables)


def _local(root: Path) -> dict[str, bytes]:
    """What publish should put in the repo, by repo path (the card aside)."""
    files = {name: (root / "metrics" / name).read_bytes() for name in ("leaderboard.csv", "leaderboard.parquet")}
    for csv in sorted((root / "metrics").glob("*.csv")):
        if csv.name != "leaderboard.csv":
            files[f"metrics/{csv.name}"] = csv.read_bytes()
    files |= {f"report/{p.name}": p.read_bytes() for p in sorted((root / "report").iterdir())}
    return files


@pytest.fixture
def root(tmp_path) -> Path:
    for pair in synthetic_pairs(26):
        _write(tmp_path / "results", pair)
    _write(tmp_path / "results", Pair("ViT-B-32", "openai", "cifar10", preprocess=Preprocess(image_size=160)))
    _parse_and_report(tmp_path)
    return tmp_path


def _publish(root: Path, hub: Hub, *extra: str):
    args = ["publish", REPO, "--metrics", str(root / "metrics"), "--report", str(root / "report"),
            "--results", str(root / "results"), "--endpoint", hub.endpoint(), *extra]
    return CliRunner().invoke(app, args)


def test_publish_twice_sends_only_what_changed(root, tmp_path, monkeypatch):
    from huggingface_hub import DatasetCard, hf_hub_download

    monkeypatch.setenv("HF_TOKEN", TOKEN)
    with Hub({}, REPO, exists=False) as hub:
        hub.token = TOKEN
        dry = _publish(root, hub, "--dry-run")
        assert dry.exit_code == 0, dry.output
        assert not hub.exists and not hub.commits and "would be changed" in dry.output  # nothing made or sent

        first = _publish(root, hub, "--private")
        assert first.exit_code == 0, first.output
        local = _local(root)
        assert hub.exists and hub.private and len(hub.commits) == 1
        sent = hub.commits[0]
        assert set(sent["files"]) | set(sent["lfs_files"]) == set(local) | {"README.md"}
        assert {"leaderboard.parquet", "report/heatmap.png"} <= set(sent["lfs_files"])  # binary: LFS, by the Hub's rules
        assert {"metrics/classification_metrics.csv", "metrics/retrieval_metrics.csv",
                "metrics/leaderboard_intervals.csv", "metrics/resolution_sweep.csv", "report/index.html"} <= set(local)
        assert all(hub.files[path] == data for path, data in local.items())
        downloaded = hf_hub_download(REPO, "leaderboard.parquet", repo_type="dataset", endpoint=hub.endpoint(),
                                     token=TOKEN, cache_dir=tmp_path / "hf")  # read back through the CDN redirect
        assert Path(downloaded).read_bytes() == local["leaderboard.parquet"]

        card = DatasetCard(hub.files["README.md"].decode())
        configs = {c["config_name"]: c["data_files"] for c in card.data.configs}
        assert configs["leaderboard"] == "leaderboard.parquet" and configs["leaderboard_intervals"] == "metrics/leaderboard_intervals.csv"
        assert card.data.size_categories == ["n<1K"] and "clip" in card.data.tags
        pairs = synthetic_pairs(26)
        models = {f"{p.model}:{p.pretrained}" for p in pairs}
        assert f"{len(models)} models on {len({p.dataset for p in pairs})} datasets: 27 results" in card.text
        assert all(f"`{m}`" in card.text for m in models) and "`cifar10` (acc1)" in card.text
        assert all(f"| {name} | {VERSIONS[name]} | 27 |" in card.text for name in ("torch", "open_clip", "clip_benchmark"))
        assert "pip install torch==2.5.1 open_clip_torch==2.32.0 clip_benchmark==1.6.2 openclip-benchmark==0.4.0" in card.text
        assert f"benchmark publish {REPO}" in card.text and "--image-size 160" in card.text
        assert "benchmark init -m " in card.text

        uploads = sum(1 for method, path, _ in hub.requests if method == "PUT")
        again = _publish(root, hub)  # nothing changed: nothing sent, no commit
        assert again.exit_code == 0 and "0 files were changed" in again.output and len(hub.commits) == 1
        assert len(hub.preuploads) == 1  # compared with the tree, nothing offered

        _write(root / "results", Pair("RN50", "openai", "cifar10"))  # one more result, parsed; the report not redone
        parse_results(root / "results", root / "metrics", catalog=CATALOG)
        changed = {path for path, data in _local(root).items() if hub.files[path] != data} | {"README.md"}
        assert "leaderboard.parquet" in changed and not any(p.startswith("report/") for p in changed)
        listed = _publish(root, hub, "--dry-run")
        assert listed.exit_code == 0 and all(path in listed.output for path in changed) and len(hub.commits) == 1
        second = _publish(root, hub)
        assert second.exit_code == 0, second.output
        assert len(hub.commits) == 2 and set(hub.commits[1]["files"]) | set(hub.commits[1]["lfs_files"]) == changed
        assert set(hub.preuploads[-1]) == changed  # only the changed files were offered to the Hub at all
        assert sum(1 for method, path, _ in hub.requests if method == "PUT") - uploads == 1  # the new Parquet only
        assert "28 results" in hub.files["README.md"].decode()

        (root / "metrics" / "resolution_sweep.csv").unlink()  # a table that is gone goes from the repo too
        third = _publish(root, hub)
        assert third.exit_code == 0 and hub.commits[2]["deleted"] == ["metrics/resolution_sweep.csv"]
        assert "metrics/resolution_sweep.csv" not in hub.files
        for result in (dry, first, again, listed, second, third):
            assert TOKEN not in result.output
        assert all(TOKEN not in json.dumps(c) for c in hub.commits)


def test_publish_refusals_are_one_line(root, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    with Hub({}, REPO, exists=False) as hub:
        hub.token = TOKEN
        cases = [
            (["publish", "not a repo id!", "--endpoint", hub.endpoint()], "bad repo id"),
            (["publish", "no-owner", "--endpoint", hub.endpoint()], "owner/name"),
            (["publish", REPO, "--metrics", str(tmp_path / "empty"), "--endpoint", hub.endpoint()], "no metric files"),
        ]
        for args, message in cases:
            result = CliRunner().invoke(app, args)
            assert result.exit_code == 2 and result.output.startswith("error: ") and message in result.output, result.output
            assert len(result.output.splitlines()) == 1
        monkeypatch.setenv("HF_TOKEN", "hf_wrongTOKEN")
        wrong = _publish(root, hub)
        assert wrong.exit_code == 2 and "refused the token in $HF_TOKEN" in wrong.output
        assert len(wrong.output.splitlines()) == 1 and "hf_wrongTOKEN" not in wrong.output
        monkeypatch.delenv("HF_TOKEN")
        missing = _publish(root, hub)
        assert missing.exit_code == 2 and missing.output == "error: no Hugging Face token: set HF_TOKEN (a token with " \
                                                            f"write access to {REPO})\n"
        assert not hub.exists and not hub.commits


def test_every_table_parse_writes_is_published(tmp_path):
    """The multilingual table too: publish takes parse's own list of tables, not a second one."""
    from openclip_benchmark.collect.parse import metric_tables
    from openclip_benchmark.collect.publish import collect_files

    metrics = tmp_path / "metrics"
    metrics.mkdir()
    for name in ("leaderboard.csv", "leaderboard.parquet", *(f"{t}.csv" for t in metric_tables())):
        (metrics / name).write_bytes(name.encode())
    files = collect_files(metrics, tmp_path / "report")
    assert "metrics/multilingual_retrieval.csv" in files and "metrics/resolution_sweep.csv" in files
    assert {path for path in files if path.startswith("metrics/")} == {f"metrics/{t}.csv" for t in metric_tables()}
