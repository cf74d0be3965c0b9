"""Can `benchmark throughput` be trusted? Two checks in one run, each printed as a ratio.

1. The command against an independent plain loop: `benchmark throughput` (a fresh process) for one model, mode and
   batch size, against `encode_image` on random inputs in a bare `torch.inference_mode` loop written here with
   open_clip alone, both on `--threads` math threads (default 1: on a machine shared with other work, OpenMP threads
   that wait on each other make multi-threaded timings far noisier than the overhead being checked). Interleaved
   rounds, medians compared; the aim is a ratio within 5% of 1.
2. Pinned workers against one process: `--processes N --cores ...` (each worker pinned to its cores, one math thread
   per core) against one unpinned process using all the threads, same sweep; the ratio of aggregate samples/s.

Run: uv run python benchmarks/throughput_check.py [--model ViT-B-32] [--batch-size 16] [--rounds 3]
     uv run python benchmarks/throughput_check.py --smoke     # a tiny model, a few batches, one pinned worker:
                                                               # that it all runs (its CPU goes to imports)
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-c", "from openclip_benchmark.cli import app; app()"]


def command_rate(model: str, batch: int, iters: int, warmup: int, out: Path, extra: list[str] = (),
                 threads: int | None = None) -> dict:
    """Run `benchmark throughput` once in a fresh process (on `threads` math threads, or torch's default); returns its
    run JSON."""
    before = set(out.glob("throughput-*.json"))
    argv = [*CLI, "throughput", "-m", model, "--random-init", "--mode", "image", "--precision", "fp32",
            "--batch-sizes", str(batch), "--iters", str(iters), "--warmup", str(warmup), "--out", str(out), *extra]
    env = {**os.environ, **({"OMP_NUM_THREADS": str(threads)} if threads else {})}
    subprocess.run(argv, check=True, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env,
                   timeout=1800)
    [new] = set(out.glob("throughput-*.json")) - before
    return json.loads(new.read_text())


def plain_rate(model: str, batch: int, iters: int, warmup: int, threads: int) -> float:
    """The same forward passes with nothing of this package: open_clip, torch.randn, a timed loop."""
    import open_clip
    import torch

    torch.set_num_threads(threads)
    net = open_clip.create_model(model, pretrained=None).eval()
    size = open_clip.get_model_preprocess_cfg(net)["size"]
    size = (size, size) if isinstance(size, int) else tuple(size)
    images = torch.randn(batch, 3, *size, generator=torch.Generator().manual_seed(batch))
    with torch.inference_mode():
        for _ in range(warmup):
            net.encode_image(images)
        start = time.perf_counter()
        for _ in range(iters):
            net.encode_image(images)
        return batch * iters / (time.perf_counter() - start)


def _line(label: str, rates: list[float]) -> None:
    print(f"  {label:<20}: {statistics.median(rates):9.2f} images/s  (rounds: {', '.join(f'{r:.2f}' for r in rates)})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="ViT-B-32")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--iters", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="math threads of both sides of the first check")
    parser.add_argument("--processes", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument("--smoke", action="store_true",
                        help="a tiny local model, one round of a few batches, one pinned worker")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        model = args.model
        if args.smoke:  # every process imports torch and open_clip: one worker, not one per core of the machine
            sys.path.insert(0, str(ROOT))
            from openclip_benchmark.synthetic import make_tiny_model

            model = make_tiny_model(tmp, "tiny")
            args.iters, args.warmup, args.rounds, args.batch_size, args.processes = 5, 2, 1, 8, 1
        out = Path(tmp) / "throughput"
        plain, command = [], []
        for _ in range(args.rounds):  # interleaved, so that a busy neighbour slows both alike
            plain.append(plain_rate(model, args.batch_size, args.iters, args.warmup, args.threads))
            run = command_rate(model, args.batch_size, args.iters, args.warmup, out, threads=args.threads)
            command.append(run["measurements"][0]["samples_per_s"])
        env = run["environment"]
        print(f"device: {env['device_name']} ({env['cpu_count']} CPUs), torch {env['versions']['torch']}, "
              f"open_clip {env['versions']['open_clip']}")
        print(f"{model} image fp32 batch {args.batch_size}, {args.iters} timed batches after {args.warmup} warm-up, "
              f"{args.rounds} rounds, {env['torch_threads']} thread(s) each")
        _line("plain loop", plain)
        _line("benchmark throughput", command)
        print(f"  ratio command / plain: {statistics.median(command) / statistics.median(plain):.3f}")

        cores = sorted(os.sched_getaffinity(0))
        pinned, single = [], []
        for _ in range(args.rounds):
            run = command_rate(model, args.batch_size, args.iters, args.warmup, out,
                               ["--processes", str(args.processes), "--cores", ",".join(map(str, cores))])
            pinned.append(run["measurements"][0]["samples_per_s"])
            workers = run["environment"]["workers"]
            alone = command_rate(model, args.batch_size, args.iters, args.warmup, out)
            single.append(alone["measurements"][0]["samples_per_s"])
        print(f"{args.processes} pinned worker(s) on cores {cores} vs one unpinned process with "
              f"{alone['environment']['torch_threads']} threads")
        print("  workers: " + "; ".join(f"worker {w['worker']} cores {w['cores']} affinity {w['affinity']} "
                                        f"threads {w['threads']}" for w in workers))
        _line("pinned aggregate", pinned)
        _line("one process", single)
        print(f"  ratio pinned / one process: {statistics.median(pinned) / statistics.median(single):.3f}")


if __name__ == "__main__":
    main()
