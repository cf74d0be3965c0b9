"""CLI latency: `benchmark --help` and `benchmark init` over the full catalog, against `python -c pass`.

Each command runs as a fresh process, several times, interleaved, in this one run; medians and ratios are printed.
Targets on the 2-core dev machine: --help under 0.3 s, init (196 models x 43 datasets) under 2 s. Typer's rich help
formatter imports rich.markdown, pygments and markdown-it on every --help; the plain row shows what click's own
formatter costs, for comparison.

Prints one row per command: median and min seconds over the runs, and the median as a multiple of `python -c pass`.

    uv run python benchmarks/cli_latency.py [--repeat 7]
    uv run python benchmarks/cli_latency.py --smoke      # each command once: that the script still runs
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-c", "from openclip_benchmark.cli import app; app()"]


def timed(argv: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT, env=env, timeout=300)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--smoke", action="store_true", help="each command once: that the script still runs")
    args = parser.parse_args()
    if args.smoke:  # fewer repetitions by default; --repeat given explicitly still wins
        parser.set_defaults(repeat=1)
        args = parser.parse_args()
    env = {**os.environ, "COLUMNS": "120"}
    with tempfile.TemporaryDirectory() as tmp:
        tracker = Path(tmp) / "results.csv"
        init = [*CLI, "init", "--tracker", str(tracker)]
        commands = {  # name: (argv, extra environment)
            "python -c pass": ([sys.executable, "-c", "pass"], {}),
            "benchmark --help": ([*CLI, "--help"], {}),
            "benchmark --help, plain (TYPER_USE_RICH=0)": ([*CLI, "--help"], {"TYPER_USE_RICH": "0"}),
            "benchmark init (fresh tracker)": (init, {}),
            "benchmark init (merge, nothing new)": (init, {}),
        }
        times: dict[str, list[float]] = {name: [] for name in commands}
        timed([*CLI, "--help"], env)  # warm the page cache and .pyc files once
        for _ in range(max(1, args.repeat)):
            for name, (argv, extra) in commands.items():
                if name.endswith("(fresh tracker)"):
                    tracker.unlink(missing_ok=True)
                times[name].append(timed(argv, {**env, **extra}))
        pairs = sum(1 for _ in tracker.open()) - 1
    base = statistics.median(times["python -c pass"])
    print(f"{'command':44} {'median s':>9} {'min s':>7} {'x python':>9}   ({args.repeat} runs each, {pairs} pairs)")
    for name, values in times.items():
        median = statistics.median(values)
        print(f"{name:44} {median:9.3f} {min(values):7.3f} {median / base:9.1f}")


if __name__ == "__main__":
    main()
