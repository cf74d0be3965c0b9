"""The built wheel holds the product and no test double, and, installed into a fresh virtual environment outside the
checkout, runs the main commands from an empty folder: nothing it needs (configs/, dataset_mapping.json, data/) may
live only in the repository."""

from __future__ import annotations

import ast
import os
import re
import shutil
import subprocess
import zipfile
from pathlib import Path

import pytest

from fixtures import HANG_S

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def _git_status() -> str:
    return subprocess.run(["git", "status", "--porcelain", "--ignored"], cwd=ROOT, capture_output=True, text=True).stdout


def _uv() -> str:
    uv = shutil.which("uv")
    if uv is None:
        pytest.skip("uv is needed to build and install the wheel")
    return uv


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """`uv build --wheel`, once per test run."""
    base = tmp_path_factory.mktemp("dist")
    built = subprocess.run([_uv(), "build", "--wheel", "--offline", "-o", str(base)], cwd=ROOT, capture_output=True,
                           text=True, timeout=HANG_S)
    assert built.returncode == 0, built.stderr[-2000:]
    (path,) = base.glob("*.whl")
    return path


def test_the_wheel_holds_no_test_double(wheel):
    """Loopback servers, fake results and the images a fake host serves live under tests/: no module of the wheel
    serves HTTP, and everything the demo's fixture module defines is used by some other module of the product."""
    with zipfile.ZipFile(wheel) as zf:
        sources = {name: zf.read(name).decode("utf-8") for name in zf.namelist() if name.endswith(".py")}
    assert "openclip_benchmark/demo.py" in sources and not [n for n in sources if not n.startswith("openclip_benchmark/")]
    servers = [n for n, src in sources.items() if re.search(r"^\s*(from|import) (http\.server|socketserver)\b", src, re.M)]
    assert servers == [] and not [n for n in sources if "loopback" in n]
    tree = ast.parse(sources["openclip_benchmark/synthetic.py"])
    defined = {node.name for node in tree.body if isinstance(node, (ast.FunctionDef, ast.ClassDef))}
    defined |= {t.id for node in tree.body if isinstance(node, ast.Assign) for t in node.targets if isinstance(t, ast.Name)}
    others = "\n".join(src for n, src in sources.items() if n != "openclip_benchmark/synthetic.py")
    synthetic = sources["openclip_benchmark/synthetic.py"]
    unused = sorted(name for name in defined if not name.startswith("_") and not re.search(rf"\b{name}\b", others)
                    and len(re.findall(rf"\b{name}\b", synthetic)) == 1)
    assert unused == [], f"defined in synthetic.py for the tests only: {unused}"


@pytest.fixture(scope="module")
def installed(tmp_path_factory, wheel):
    """`uv venv` + `uv pip install` of the wheel with the locked dependency versions (from uv's cache), once per test
    run."""
    uv = _uv()
    base = tmp_path_factory.mktemp("wheel")
    run = dict(capture_output=True, text=True, timeout=HANG_S)
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

    def benchmark(*args: str) -> str:
        done = subprocess.run([str(installed), *args], cwd=empty, env=env, capture_output=True, text=True,
                              timeout=HANG_S)
        assert done.returncode == 0, (args, done.stdout[-1500:], done.stderr[-1500:])
        return done.stdout

    benchmark("init", "-m", "ViT-B-32:openai", "-d", "cifar10,mscoco_captions")
    assert len((empty / "results.csv").read_text().splitlines()) == 3  # header + 2 pairs
    assert "Plan: 1 shard(s), 2 pair(s)" in " ".join(benchmark("plan").split())
    assert (empty / ".benchmark" / "plan.json").is_file()
    launched = " ".join(benchmark("launch", "--dry-run").split())
    assert "SkyPilot task(s) rendered and valid under SkyPilot's schema" in launched  # packaged configs/
    demo = benchmark("demo", "--images", "16", "--workdir", "d", "--clean")
    assert "demo_shapes" in demo and not (empty / "d").exists()
    assert _git_status() == before  # nothing was written into the checkout
