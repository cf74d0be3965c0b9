"""The error boundary as a corpus: every bad input, on every command, is one `error:` line and exit 2 (or the
documented code), never a traceback, and leaves the working folder's files as they were. A new command or option
that lets an exception through, or writes before it refuses, fails here."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from openclip_benchmark.cli import app

M, D = ["-m", "ViT-B-32:openai"], ["-d", "cifar10"]
RUN = ["run", *M, *D]

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
    return folder


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
