"""Every script in benchmarks/ runs in --smoke mode, prints its result lines and writes nothing into the checkout.

The scripts are found with a glob, so a new one without `--smoke` (or without its result lines named here) fails.
Each runs as a subprocess from an empty temporary folder, with TMPDIR inside it. A smoke run is sized in CPU, not in
wall time: each of its processes may use `CPU_LIMIT_S` seconds of CPU (RLIMIT_CPU), however long a loaded machine
makes that take; the CPU all of them used is printed. The wall-clock bound only catches a hang.
"""

from __future__ import annotations

import os
import re
import resource
import subprocess
import sys
from pathlib import Path

import pytest

from fixtures import HANG_S

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = sorted((ROOT / "benchmarks").glob("*.py"))
CPU_LIMIT_S = 120  # per process; mostly imports (torch, open_clip, clip_benchmark: 10-25 s each without bytecode)
# the script as __main__ (so spawned children find it), under the CPU limit its children inherit
LIMITED = ("import resource, runpy, sys; resource.setrlimit(resource.RLIMIT_CPU, ({0}, {0})); "
           "sys.argv = sys.argv[1:]; runpy.run_path(sys.argv[0], run_name='__main__')").format(CPU_LIMIT_S)
NUMBER = r"[0-9]+(?:\.[0-9]+)?"
# script: the lines (regular expressions, each matched against a whole line of its output) that carry its result
RESULT_LINES = {
    "cli_latency.py": [rf"benchmark --help +{NUMBER} +{NUMBER} +{NUMBER}",
                       rf"benchmark init \(fresh tracker\) +{NUMBER} +{NUMBER} +{NUMBER}"],
    "dataset_download.py": [rf"[0-9]+ files in parallel +: +{NUMBER} s +\({NUMBER}x faster\)",
                            rf"cached \(2nd pair\) +: +{NUMBER} s +\([0-9]+x faster than downloading again\)"],
    "own_data.py": [rf"dataset add \(whole\) +: +{NUMBER} s +{NUMBER} images/s +\({NUMBER}x faster\)",
                    r"second dataset add +: 0 requests, webdataset unchanged",
                    rf"similarity, 1 process +: +{NUMBER} s +{NUMBER} pairs/s",
                    rf"similarity, [0-9]+ gloo ranks : +{NUMBER} s +{NUMBER} pairs/s  \(ratio ranks / one process: {NUMBER}, same bytes\)"],
    "plan_cost.py": [rf"ours / source: +{NUMBER}x dollars, {NUMBER}x GPU-hours",
                     rf"ours / lower bound: +{NUMBER}x dollars, {NUMBER}x GPU-hours"],
    "sweep_vs_clip_benchmark.py": [rf"speed-up of benchmark run over per pair: +{NUMBER}x",
                                   r"pairs with identical metrics: +([0-9]+)/\1"],
    "throughput_check.py": [rf" +ratio command / plain: {NUMBER}", rf" +ratio pinned / one process: {NUMBER}"],
    "sync_parse.py": [rf"first sync +{NUMBER} +{NUMBER} +{NUMBER}x  aws s3 sync",
                      rf"parse \(CLI, incl. start-up\) +{NUMBER} +{NUMBER} +{NUMBER}x  clip_benchmark build"],
}
SKIPPED_DIRS = (".git", ".venv", "__pycache__", ".pytest_cache")


def _checkout() -> dict[str, tuple[int, int]]:
    """Every file of the checkout (ignored ones too, bar the environment and caches): size and mtime."""
    files = {}
    for folder, dirs, names in os.walk(ROOT):
        dirs[:] = [d for d in dirs if d not in SKIPPED_DIRS]
        for name in names:
            stat = (Path(folder) / name).stat()
            files[os.path.relpath(Path(folder) / name, ROOT)] = (stat.st_size, stat.st_mtime_ns)
    return files


def test_every_benchmark_names_its_result_lines():
    assert sorted(RESULT_LINES) == sorted(p.name for p in SCRIPTS)


def _cpu_of_children() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


@pytest.mark.timeout(HANG_S + 60)
@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_benchmark_smoke(script, tmp_path):
    before, cpu = _checkout(), _cpu_of_children()
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    proc = subprocess.run([sys.executable, "-c", LIMITED, str(script), "--smoke"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=HANG_S)
    print(f"\n{script.name} --smoke: {_cpu_of_children() - cpu:.1f} s of CPU, its processes together")
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    for pattern in RESULT_LINES.get(script.name, ["(name this script's result lines in RESULT_LINES)"]):
        assert re.search(f"^{pattern}$", proc.stdout, re.MULTILINE), f"no line matches {pattern!r} in:\n{proc.stdout}"
    after = _checkout()
    assert {path for path in before.keys() | after.keys() if before.get(path) != after.get(path)} == set()
