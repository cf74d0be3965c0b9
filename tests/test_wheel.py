"""The built wheel, installed into a fresh virtual environment outside the checkout, runs the main commands from an
empty folder: nothing it needs (configs/, dataset_mapping.json, data/) may live only in the repository."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def _git_status() -> str:
    return subprocess.run(["git", "status", "--porcelain", "--ignored"], cwd=ROOT, capture_output=True, text=True).stdout


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """`uv build`, then `uv venv` + `uv pip install` of the wheel with the locked dependency versions (from uv's
    cache), once per test run."""
    uv = shutil.which("uv")
    if uv is None:
        pytest.skip("uv is needed to build and install the wheel")
    base = tmp_path_factory.mktemp("wheel")
    run = dict(capture_output=True, text=True, timeout=600)
    built = subprocess.run([uv, "build", "--wheel", "--offline", "-o", str(base / "dist")], cwd=ROOT, **run)
    assert built.returncode == 0, built.stderr[-2000:]
    (wheel,) = (base / "dist").glob("*.whl")
    pins = subprocess.run([uv, "export", "--frozen", "--no-dev", "--no-emit-project", "--no-hashes", "-q"],
                          cwd=ROOT, **run)
    assert pins.returncode == 0, pins.stderr
    (base / "requirements.txt").write_text(pins.stdout)
    venv = base / "venv"
    made = subprocess.run([uv, "venv", "-q", str(venv)], cwd=base, **run)
    assert made.returncode == 0, made.stderr
    done = subprocess.run([uv, "pip", "install", "-q", "--python", str(venv / "bin" / "python"),
                           "-r", str(base / "requirements.txt"), str(wheel)], cwd=base, **run)
    assert done.returncode == 0, done.stderr[-2000:]
    return venv / "bin" / "benchmark"


def test_the_installed_wheel_runs_init_plan_launch_and_demo_from_an_empty_folder(installed, tmp_path):
    before = _git_status()
    empty = tmp_path / "empty"
    empty.mkdir()
    env = {"PATH": f"{installed.parent}:/usr/bin:/bin", "HOME": str(tmp_path / "home"), "COLUMNS": "200"}
    env.update({k: v for k, v in os.environ.items() if k in ("UV_CACHE_DIR", "OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")})

    def benchmark(*args: str, timeout: int = 300) -> str:
        done = subprocess.run([str(installed), *args], cwd=empty, env=env, capture_output=True, text=True,
                              timeout=timeout)
        assert done.returncode == 0, (args, done.stdout[-1500:], done.stderr[-1500:])
        return done.stdout

    benchmark("init", "-m", "ViT-B-32:openai", "-d", "cifar10,mscoco_captions")
    assert len((empty / "results.csv").read_text().splitlines()) == 3  # header + 2 pairs
    assert "Plan: 1 shard(s), 2 pair(s)" in " ".join(benchmark("plan").split())
    assert (empty / ".benchmark" / "plan.json").is_file()
    launched = " ".join(benchmark("launch", "--dry-run").split())
    assert "SkyPilot task(s) rendered and valid under SkyPilot's schema" in launched  # packaged configs/
    demo = benchmark("demo", "--images", "16", "--workdir", "d", "--clean", timeout=600)
    assert "demo_shapes" in demo and not (empty / "d").exists()
    assert _git_status() == before  # nothing was written into the checkout
