"""The error boundary as a corpus (`bad_inputs.txt`): every bad input, on every command, is one `error:` line and
exit 2, never a traceback, and leaves the working folder's files as they were. A new command or option that lets an
exception through, or writes before it refuses, fails here."""

from __future__ import annotations

import hashlib
import json
import os
import shlex
from pathlib import Path

import pytest
from typer.testing import CliRunner

from openclip_benchmark.catalog import mapping_path
from openclip_benchmark.cli import app

CORPUS = Path(__file__).with_name("bad_inputs.txt")


def _cases() -> list[tuple[str, list[str]]]:
    """`name | arguments` per line of the corpus file (shell words), comments and blank lines aside."""
    cases = []
    for line in CORPUS.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, args = line.partition(" | ")
            words = [str(mapping_path()) if word == "{shipped_mapping}" else word for word in shlex.split(args)]
            cases.append((name, words))
    return cases


CASES = _cases()


def _snapshot(folder: Path) -> dict[str, str]:
    """Every file and folder under `folder` with a digest of its bytes: what a failed command must leave alone.
    The empty lock file beside an existing tracker is the file lock's own (it is made to be reused), not a change."""
    out = {}
    for path in sorted(folder.rglob("*")):
        if path.suffix == ".lock" and path.with_suffix("").is_file():
            continue
        rel = path.relative_to(folder).as_posix()
        out[rel] = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "dir"
    return out


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """A working folder with a small tracker and a few broken inputs next to it."""
    folder = tmp_path_factory.mktemp("bad-input")
    runner = CliRunner()
    old = os.getcwd()
    os.chdir(folder)
    try:
        made = runner.invoke(app, ["init", "-m", "ViT-B-32:openai", "-d", "cifar10,mscoco_captions"])
        assert made.exit_code == 0, made.output
    finally:
        os.chdir(old)
    (folder / "bad.json").write_text('{"datasets": ')
    (folder / "bad.csv").write_text("model,pretrained\nx\n")
    (folder / "folder.csv").mkdir()
    (folder / "keep").mkdir()
    (folder / "keep" / "notes.txt").write_text("mine")
    (folder / "elsewhere").mkdir()
    _own_data_inputs(folder)
    return folder


def _own_data_inputs(folder: Path) -> None:
    """Tables, metric files and dataset mappings as a user (or someone who shares a mapping) may hand them over."""
    (folder / "a_file").write_text("not a folder")
    (folder / "table.csv").write_text("url,caption\nhttp://127.0.0.1:9/a.png,a photo\n")
    (folder / "latin1.csv").write_bytes("url,caption\nhttp://127.0.0.1:9/a.png,caf\xe9\n".encode("latin-1"))
    (folder / "empty.csv").write_text("")
    (folder / "header.csv").write_text("url,caption\n")
    (folder / "bad.parquet").write_text("not parquet")
    (folder / "metrics_latin1").mkdir()
    (folder / "metrics_latin1" / "leaderboard.csv").write_bytes(b"model,cifar10\nViT-B-32,\xff\xfe\n")
    (folder / "no_results_here").mkdir()
    (folder / "victim").mkdir()
    (folder / "victim" / "precious.txt").write_text("keep me")
    (folder / "own" / "wds_a").mkdir(parents=True)
    own = dict(task="zeroshot_retrieval", size=1, captions_per_image=1, metric="image_retrieval_recall@5",
               collections=["own"])
    entries = {
        "climbing_key.json": ("a/../../victim", dict(own, wds_name="wds_a", url=(folder / "own" / "wds_a").as_uri())),
        "climbing_url.json": ("mine", dict(own, wds_name="wds_mine", url=(folder / "own").as_uri() + "/../victim")),
        "path_wds_name.json": ("mine", dict(own, wds_name="../victim", url=(folder / "own" / "wds_a").as_uri())),
        "outside_root.json": ("victim", dict(own, wds_name="wds_victim", url=(folder / "victim").as_uri())),
        "own_mapping.json": ("mine", dict(own, wds_name="wds_mine", url=(folder / "own" / "wds_mine").as_uri())),
    }
    for name, (key, entry) in entries.items():
        data = json.loads(mapping_path().read_text())
        data["datasets"][key] = entry
        (folder / name).write_text(json.dumps(data))


@pytest.mark.parametrize("name,args", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_one_line_exit_2_and_changes_nothing(name, args, workdir, monkeypatch):
    monkeypatch.chdir(workdir)
    for var in ("BENCHMARK_STORE", "BENCHMARK_DATASETS", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE",
                "R2_ENDPOINT_URL", "BENCHMARK_DEBUG"):
        monkeypatch.delenv(var, raising=False)
    before = _snapshot(workdir)
    result = CliRunner().invoke(app, args, env={"COLUMNS": "200"})
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.exit_code == 2, (result.exit_code, result.stdout[-500:], result.stderr[-500:], result.exception)
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "unexpected" not in lines[0] and "Traceback" not in result.stdout + result.stderr
    assert _snapshot(workdir) == before
