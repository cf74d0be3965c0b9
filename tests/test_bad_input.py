"""The error boundary as a corpus: every bad input, on every command, is one `error:` line and exit 2 (or the
documented code), never a traceback, and leaves the working folder's files as they were. A new command or option
that lets an exception through, or writes before it refuses, fails here."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from openclip_benchmark.catalog import mapping_path
from openclip_benchmark.cli import app

M, D = ["-m", "ViT-B-32:openai"], ["-d", "cifar10"]
RUN = ["run", *M, *D]
ADD = ["dataset", "add", "mine", "--root", "fresh_root"]
SIM = ["similarity", *M, "-d", "mscoco_captions"]
ENDPOINT = ["throughput", "-m", "clip", "--endpoint", "http://127.0.0.1:9/v1"]

CASES: list[tuple[str, list[str]]] = [
    ("unknown command", ["no-such-command"]),
    ("unknown global option", ["--bogus"]),
    ("unknown option", ["status", "--bogus"]),
    ("run: batch size 0", [*RUN, "--batch-size", "0"]),
    ("run: no --models", ["run", *D]),
    ("run: negative workers", [*RUN, "--num-workers", "-1"]),
    ("run: unknown model", ["run", "-m", "NotAModel:nothing", *D]),
    ("run: unknown dataset", ["run", *M, "-d", "no_such_dataset"]),
    ("run: unknown precision", [*RUN, "--precision", "fp8"]),
    ("run: image size not a number", [*RUN, "--image-size", "abc"]),
    ("run: image size out of range", [*RUN, "--image-size", "8"]),
    ("run: mean of two numbers", [*RUN, "--mean", "0.1,0.2"]),
    ("run: unknown interpolation", [*RUN, "--interpolation", "nearest"]),
    ("run: store prefix with ..", [*RUN, "--store", "s3://bkt/../x"]),
    ("run: unsupported store", [*RUN, "--store", "ftp://host/x"]),
    ("init: glob matches no model", ["init", "-m", "NoSuch-*"]),
    ("init: unknown dataset", ["init", "-d", "no_such_dataset"]),
    ("init: unknown language", ["init", *M, *D, "-l", "xx"]),
    ("init: --reset with no terminal", ["init", *M, *D, "--reset"]),
    ("init: missing mapping", ["init", "--dataset-mapping", "missing.json"]),
    ("init: mapping not JSON", ["init", "--dataset-mapping", "bad.json"]),
    ("status: missing tracker", ["status", "--no-queue", "--tracker", "missing.csv"]),
    ("status: tracker is a folder", ["status", "--no-queue", "--tracker", "folder.csv"]),
    ("status: malformed tracker", ["status", "--no-queue", "--tracker", "bad.csv"]),
    ("plan: batch size 0", ["plan", "--batch-size", "0"]),
    ("plan: target under 5 minutes", ["plan", "--target-minutes", "1"]),
    ("plan: missing price table", ["plan", "--prices", "missing.json"]),
    ("plan: tracker is a folder", ["plan", "--tracker", "folder.csv"]),
    ("launch: negative budget", ["launch", "--dry-run", "--budget", "-1"]),
    ("launch: budget below every shard", ["launch", "--dry-run", "--budget", "0.0001"]),
    ("launch: budget below every shard, local", ["launch", "--dry-run", "--backend", "local", "--budget", "0.0001"]),
    ("launch: unknown backend", ["launch", "--dry-run", "--backend", "nope"]),
    ("launch: pool with the local backend", ["launch", "--dry-run", "--backend", "local", "--pool", "p"]),
    ("launch: no jobs allowed", ["launch", "--dry-run", "--max-jobs", "0"]),
    ("sync: no store", ["sync"]),
    ("sync: store prefix with ..", ["sync", "--store", "s3://bkt/../x"]),
    ("sync: no bucket", ["sync", "--store", "s3://"]),
    ("sync: unsupported store", ["sync", "--store", "http://host/x"]),
    ("sync: no workers", ["sync", "--store", "elsewhere", "--workers", "0"]),
    ("parse: missing results folder", ["parse", "--results", "no_results"]),
    ("worker: missing manifest", ["worker", "--manifest", "missing.json"]),
    ("worker: manifest not a manifest", ["worker", "--manifest", "bad.json"]),
    ("worker: manifest URL without a key", ["worker", "--manifest", "s3://bucket"]),
    ("models: unknown model", ["models", "NoSuchModel"]),
    ("datasets: unknown dataset", ["datasets", "no_such_dataset"]),
    ("prices: missing price table", ["prices", "--prices", "missing.json"]),
    ("demo: too few images", ["demo", "--workdir", "fresh_demo", "--images", "3"]),
    ("demo: a folder it did not make", ["demo", "--workdir", "keep"]),
    ("interactive: autostop of 0 minutes", ["interactive", "up", "--idle-minutes", "0"]),
    ("pool up: no name", ["pool", "up"]),
    ("throughput: unknown model", ["throughput", "-m", "NotAModel:nothing"]),
    ("throughput: batch size 0", ["throughput", *M, "--batch-sizes", "0"]),
    ("throughput: negative batch size", ["throughput", *M, "--batch-sizes", "8,-1"]),
    ("throughput: empty batch size list", ["throughput", *M, "--batch-sizes", ","]),
    ("throughput: batch size not a number", ["throughput", *M, "--batch-sizes", "8,big"]),
    ("throughput: unknown mode", ["throughput", *M, "--mode", "video"]),
    ("throughput: unknown precision", ["throughput", *M, "--precision", "fp8"]),
    ("throughput: both --iters and --seconds", ["throughput", *M, "--iters", "3", "--seconds", "1"]),
    ("throughput: cores that do not exist", ["throughput", *M, "--cores", "4096"]),
    ("throughput: cores not a range", ["throughput", *M, "--cores", "3-1"]),
    ("throughput: more processes than cores", ["throughput", *M, "--processes", "4097"]),
    ("throughput: no processes", ["throughput", *M, "--processes", "0"]),
    ("throughput: unknown dataset source", ["throughput", *M, "--source", "no_such_dataset"]),
    ("throughput: unreachable endpoint", ["throughput", "-m", "clip", "--endpoint", "http://127.0.0.1:9/v1",
                                          "--mode", "text", "--batch-sizes", "1"]),
    ("throughput: endpoint not http", ["throughput", "-m", "clip", "--endpoint", "ftp://host/v1"]),
    ("throughput: API key variable unset", ["throughput", "-m", "clip", "--endpoint", "http://127.0.0.1:9/v1",
                                            "--api-key-env", "NO_SUCH_KEY_VARIABLE"]),
    # issue 20: names and folders from a mapping stay inside their roots (the victim folder must survive)
    ("dataset remove: a key that climbs out of the root",
     ["dataset", "remove", "a/../../victim", "--dataset-mapping", "climbing_key.json", "--root", "own"]),
    ("dataset remove: a folder outside the root",
     ["dataset", "remove", "victim", "--dataset-mapping", "outside_root.json", "--root", "own"]),
    ("dataset list: a key that climbs out of the root", ["dataset", "list", "--dataset-mapping", "climbing_key.json"]),
    ("init: a mapping key that climbs out", ["init", "--dataset-mapping", "climbing_key.json"]),
    ("parse: a mapping key that climbs out", ["parse", "--dataset-mapping", "climbing_key.json"]),
    ("datasets: a file:// URL with ..", ["datasets", "--dataset-mapping", "climbing_url.json"]),
    ("run: a webdataset name that is a path", ["run", *M, "-d", "mine", "--dataset-mapping", "path_wds_name.json"]),
    # issue 20: dataset add checks everything before it fetches or writes
    ("dataset add: mapping not JSON", [*ADD, "--csv", "table.csv", "--dataset-mapping", "bad.json"]),
    ("dataset add: the shipped mapping", [*ADD, "--csv", "table.csv", "--dataset-mapping", str(mapping_path())]),
    ("dataset add: a mapping inside a file", [*ADD, "--csv", "table.csv", "--dataset-mapping", "a_file/m.json"]),
    ("dataset add: --root is a file", ["dataset", "add", "mine", "--csv", "table.csv", "--root", "a_file"]),
    # issue 20: ordinary bad paths are one line naming them, before any work
    ("parse: --out is a file", ["parse", "--out", "a_file"]),
    ("report: --out is a file", ["report", "--results", "no_results_here", "--out", "a_file"]),
    ("report: a metrics CSV that is not UTF-8",
     ["report", "--results", "no_results_here", "--metrics", "metrics_latin1", "--out", "fresh_report"]),
    ("dataset list: --root is a file", ["dataset", "list", "--root", "a_file"]),
    ("dataset remove: --root is a file", ["dataset", "remove", "mine", "--root", "a_file"]),
    ("throughput: --out is a file", ["throughput", *M, "--out", "a_file"]),
    ("similarity: --out is a file", [*SIM, "--out", "a_file"]),
    ("compare: --out is a file", ["compare", "--published", "--results", "no_results_here", "--out", "a_file"]),
    ("sync: --results is a file", ["sync", "--store", "elsewhere", "--results", "a_file"]),
    ("run: --store is a file", [*RUN, "--store", "a_file"]),
    # issue 20: refused from what the catalog knows, before any download or import
    ("similarity: a catalog classification set", ["similarity", *M, "-d", "cifar10"]),
    ("throughput: unknown model with --dry-run", ["throughput", "-m", "NotAModel:nothing", "--dry-run"]),
    ("dataset remove: unknown dataset, no lock left", ["dataset", "remove", "nope", "--root", "fresh_root"]),
    # the newer commands
    ("dataset remove: a catalog dataset", ["dataset", "remove", "cifar10", "--dataset-mapping", "own_mapping.json"]),
    ("dataset list: mapping not JSON", ["dataset", "list", "--dataset-mapping", "bad.json"]),
    ("dataset add: a name with ..", ["dataset", "add", "../mine", "--csv", "table.csv", "--root", "fresh_root"]),
    ("dataset add: a catalog name", ["dataset", "add", "wds_vtab-cifar10", "--csv", "table.csv", "--root", "fresh_root"]),
    ("dataset add: missing table", [*ADD, "--csv", "missing.csv"]),
    ("dataset add: table not UTF-8", [*ADD, "--csv", "latin1.csv"]),
    ("dataset add: empty table", [*ADD, "--csv", "empty.csv"]),
    ("dataset add: header only", [*ADD, "--csv", "header.csv"]),
    ("dataset add: misnamed column", [*ADD, "--csv", "table.csv", "--url-col", "image"]),
    ("dataset add: not Parquet", [*ADD, "--csv", "bad.parquet"]),
    ("dataset add: no threads", [*ADD, "--csv", "table.csv", "--threads", "0"]),
    ("dataset add: timeout 0", [*ADD, "--csv", "table.csv", "--timeout", "0"]),
    ("dataset add: max bytes 0", [*ADD, "--csv", "table.csv", "--max-bytes", "0"]),
    ("dataset add: a context of 2 tokens", [*ADD, "--csv", "table.csv", "--context-length", "2"]),
    ("dataset add: negative retries", [*ADD, "--csv", "table.csv", "--retries", "-1"]),
    ("parse: results is a file", ["parse", "--results", "a_file"]),
    ("report: missing results folder", ["report", "--results", "no_results", "--out", "fresh_report"]),
    ("compare: no arguments", ["compare"]),
    ("compare: one model", ["compare", "ViT-B-32:openai"]),
    ("compare: two models and --published", ["compare", "A", "B", "--published"]),
    ("compare: negative tolerance", ["compare", "--published", "--tolerance", "-1"]),
    ("compare: missing results folder", ["compare", "--published", "--results", "no_results"]),
    ("compare: missing published table",
     ["compare", "--published", "--results", "no_results_here", "--table", "missing.yaml"]),
    ("compare: a model without results", ["compare", "NoSuch:x", "ViT-B-32:openai", "--results", "no_results_here"]),
    ("throughput: endpoint with pinned workers", [*ENDPOINT, "--processes", "2"]),
    ("throughput: endpoint with a dataset source", [*ENDPOINT, "--source", "cifar10"]),
    ("throughput: endpoint concurrency 0", [*ENDPOINT, "--concurrency", "0"]),
    ("throughput: endpoint timeout 0", [*ENDPOINT, "--timeout", "0"]),
    ("throughput: image size not a number", ["throughput", *M, "--image-size", "big"]),
    ("throughput: pinned workers on a GPU", ["throughput", *M, "--processes", "1", "--device", "cuda"]),
    ("throughput: no timed batches", ["throughput", *M, "--iters", "0"]),
    ("throughput: negative seconds", ["throughput", *M, "--seconds", "-1"]),
    ("throughput: negative warm-up", ["throughput", *M, "--warmup", "-1"]),
    ("throughput: a mapping key that climbs out", ["throughput", *M, "--dataset-mapping", "climbing_key.json"]),
    ("similarity: no models", ["similarity", "-d", "mscoco_captions"]),
    ("similarity: neither dataset nor table", ["similarity", *M]),
    ("similarity: both dataset and table", [*SIM, "--csv", "table.csv"]),
    ("similarity: unknown dataset", ["similarity", *M, "-d", "no_such_set"]),
    ("similarity: unknown model", ["similarity", "-m", "NoSuchNet:tag", "-d", "mscoco_captions"]),
    ("similarity: heatmap size 0", [*SIM, "--heatmap-size", "0"]),
    ("similarity: negative distractors", [*SIM, "--distractors", "-1"]),
    ("similarity: no GPUs", [*SIM, "--gpus", "0"]),
    ("similarity: batch size 0", [*SIM, "--batch-size", "0"]),
    ("similarity: skypilot without a store", [*SIM, "--backend", "skypilot"]),
    ("similarity: unknown backend", [*SIM, "--backend", "slurm"]),
    ("similarity: skypilot on 0 nodes", [*SIM, "--backend", "skypilot", "--store", "s3://bkt/p", "--nodes", "0"]),
    ("similarity: --csv table not UTF-8", ["similarity", *M, "--csv", "latin1.csv", "--root", "fresh_root"]),
    ("similarity: --csv into the shipped mapping",
     ["similarity", *M, "--csv", "table.csv", "--root", "fresh_root", "--dataset-mapping", str(mapping_path())]),
    ("worker: manifest is a folder", ["worker", "--manifest", "folder.csv"]),
    ("status: tracker not UTF-8", ["status", "--no-queue", "--tracker", "latin1.csv"]),
    ("plan: tracker not UTF-8", ["plan", "--tracker", "latin1.csv"]),
    ("init: mapping not UTF-8", ["init", "--dataset-mapping", "latin1.csv"]),
    ("prices: price table not JSON", ["prices", "--prices", "bad.json"]),
    ("cancel: unknown backend", ["cancel", "--backend", "nope"]),
]


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
        made = runner.invoke(app, ["init", *M, "-d", "cifar10,mscoco_captions"])
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
