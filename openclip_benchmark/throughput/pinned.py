"""CPU worker processes, each pinned to its share of the cores with its math libraries limited to that many threads,
running the same sweep in lock-step: before each timed phase every worker says it is ready and waits for the go, so
their timed phases overlap and the sum of their samples/s is what the machine does with all of them at once.

A worker is `python -m openclip_benchmark.throughput.pinned FD`: an argument list, never a shell line. Its settings
come as one JSON line on stdin (then one `go` line per step), it answers on the pipe FD, and its stdout and stderr go
to `logs/worker_<i>.{out,err}`. It pins itself with os.sched_setaffinity before torch starts its threads (the parent
prefixes `taskset` where Python lacks it) and reports the affinity it reads back. torch is imported in the worker."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Callable

from ..core.errors import BenchmarkError
from .records import Measurement
from .settings import Sweep
from .timing import environment, run_sweep

THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS",
                    "VECLIB_MAXIMUM_THREADS")


class WorkerError(BenchmarkError):
    """A worker process died or broke the protocol: the measurement is lost, the input was fine."""

    exit_code = 1


@dataclass(frozen=True)
class Worker:
    index: int
    cores: tuple[int, ...]

    def argv(self, fd: int | str) -> list[str]:
        command = [sys.executable, "-m", __name__, str(fd)]
        if hasattr(os, "sched_setaffinity"):
            return command
        taskset = shutil.which("taskset")
        if taskset is None:
            raise BenchmarkError("cannot pin workers here: no os.sched_setaffinity and no taskset")
        return [taskset, "-c", ",".join(map(str, self.cores)), *command]

    def environment(self) -> dict[str, str]:
        threads = str(len(self.cores))
        return {**os.environ, **dict.fromkeys(THREAD_VARIABLES, threads), "PYTHONUNBUFFERED": "1"}


def workers_for(shares: list[tuple[int, ...]]) -> list[Worker]:
    return [Worker(i, cores) for i, cores in enumerate(shares)]


def log_paths(log_dir: Path, worker: Worker) -> tuple[Path, Path]:
    return log_dir / f"worker_{worker.index}.out", log_dir / f"worker_{worker.index}.err"


class _Running:
    """One started worker: its process, its answer pipe and its logs."""

    def __init__(self, worker: Worker, sweep: Sweep, log_dir: Path):
        self.worker = worker
        self.out_path, self.err_path = log_paths(log_dir, worker)
        read_fd, write_fd = os.pipe()
        with open(self.out_path, "w") as out, open(self.err_path, "w") as err:
            self.process = subprocess.Popen(worker.argv(write_fd), stdin=subprocess.PIPE, stdout=out, stderr=err,
                                            env=worker.environment(), pass_fds=(write_fd,), text=True)
        os.close(write_fd)
        self.answers = os.fdopen(read_fd, "r")
        self.send(json.dumps({"cores": list(worker.cores), "sweep": sweep.to_json()}))

    def send(self, line: str) -> None:
        try:
            self.process.stdin.write(line + "\n")
            self.process.stdin.flush()
        except BrokenPipeError:
            pass  # it died; its next answer is the end of the pipe, reported there

    def answer(self) -> dict[str, Any]:
        line = self.answers.readline()
        if not line:
            code = self.process.wait()
            tail = (self.err_path.read_text(errors="replace").strip().splitlines() or [""])[-1]
            raise WorkerError(f"worker {self.worker.index} exited with code {code}: {tail or 'no output'} "
                              f"(log: {self.err_path})")
        return json.loads(line)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        self.answers.close()
        if self.process.stdin:
            self.process.stdin.close()


def run_workers(sweep: Sweep, workers: list[Worker], log_dir: Path,
                say: Callable[[str], None] = lambda line: None) -> tuple[list[Measurement], list[dict[str, Any]]]:
    """Run the sweep in every worker at once, step by step; returns the combined measurements and, per worker, what
    it reported about itself (cores asked for, affinity read back, threads, environment)."""
    log_dir.mkdir(parents=True, exist_ok=True)
    running: list[_Running] = []
    try:
        for worker in workers:
            running.append(_Running(worker, sweep, log_dir))
        steps = 0
        while True:
            answers = [r.answer() for r in running]
            kinds = {"done" if "done" in a else "ready" for a in answers}
            if kinds == {"ready"}:
                steps += 1
                for r in running:
                    r.send("go")
                continue
            if kinds != {"done"}:
                raise WorkerError(f"workers out of step at step {steps}: some finished, some did not")
            break
        for r in running:
            r.process.wait()
    finally:
        for r in running:
            r.stop()
    say(f"{len(workers)} worker(s) finished {steps} step(s)")
    reports = [{"worker": r.worker.index, **{k: v for k, v in a.items() if k != "done"}}
               for r, a in zip(running, answers)]
    return combine([[Measurement.from_json(m) for m in a["done"]] for a in answers], reports), reports


def combine(per_worker: list[list[Measurement]], reports: list[dict[str, Any]]) -> list[Measurement]:
    """Step k of every worker as one measurement: samples/s and samples summed, every batch time kept, the wall time
    the longest worker's; each worker's own figures under `workers`."""
    out = []
    for step in zip(*per_worker):
        statuses = {m.status for m in step}
        status = next(s for s in ("oom", "skipped", "failed", "ok") if s in statuses)
        peaks = [m.peak_memory_bytes for m in step if m.peak_memory_bytes is not None]
        out.append(replace(
            step[0], status=status, error="; ".join(dict.fromkeys(m.error for m in step if m.error)),
            samples=sum(m.samples for m in step), seconds=max(m.seconds for m in step),
            samples_per_s=sum(m.samples_per_s for m in step), timings_s=[t for m in step for t in m.timings_s],
            peak_memory_bytes=sum(peaks) if peaks else None,
            workers=[{"worker": i, "cores": rep["cores"], "affinity": rep["affinity"], "threads": rep["threads"],
                      "status": m.status, "samples_per_s": m.samples_per_s, "samples": m.samples,
                      "seconds": m.seconds, "ms_p50": m.ms(50)}
                     for i, (m, rep) in enumerate(zip(step, reports))],
        ))
    return out


# ---------------------------------------------------------------- inside a worker


def _main(fd: int) -> None:
    answers = os.fdopen(fd, "w", buffering=1)
    spec = json.loads(sys.stdin.readline())
    cores = [int(c) for c in spec["cores"]]
    if hasattr(os, "sched_setaffinity"):  # before torch starts its thread pools, which inherit it
        os.sched_setaffinity(0, cores)
    affinity = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None

    import torch

    torch.set_num_threads(len(cores))
    sweep = Sweep.from_json(spec["sweep"])
    print(f"worker on cores {cores}, affinity read back {affinity}, {torch.get_num_threads()} torch thread(s)")

    def ready() -> None:
        answers.write(json.dumps({"ready": True}) + "\n")
        if sys.stdin.readline().strip() != "go":
            raise SystemExit("the parent went away")

    try:
        measurements = run_sweep(sweep, say=print, before_timing=ready)
    except BenchmarkError as exc:  # one line for the parent to show, as the CLI would
        print(f"error: {' '.join(str(exc).split())}", file=sys.stderr)
        raise SystemExit(exc.exit_code) from None
    answers.write(json.dumps({"done": [asdict(m) for m in measurements], "cores": cores, "affinity": affinity,
                              "threads": torch.get_num_threads(), "environment": environment(sweep.device)}) + "\n")
    answers.close()


if __name__ == "__main__":
    _main(int(sys.argv[1]))
