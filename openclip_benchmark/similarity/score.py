"""Encode a retrieval webdataset for `similarity`: one model load per model, the data read once, batch by batch;
on one process or on N torch.distributed ranks of this machine (NCCL on GPUs, gloo on CPUs).

The set is cut into fixed batches of consecutive samples, as clip_benchmark's loader cuts it; rank r encodes the
batches r, r + N, r + 2N... and rank 0 gathers them back in order. Every batch is encoded by the same code on the same
samples whatever N is, so the merged embeddings, and every output written from them, are the one-process run's.
torch is imported inside the functions.
"""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..core.errors import BenchmarkError
from ..core.pair import Pair, Preprocess
from ..core.wds import SPLIT, Member, members
from ..evaluate import EncodedDataset, encode_captioned, load_model, resolve_device, resolve_precision
from ..tasks.zeroshot_retrieval import RECALL_K
from ..tasks.zeroshot_retrieval import TASK as RETRIEVAL
from .outputs import write_outputs

IMAGE_EXTENSIONS = ("webp", "png", "jpg", "jpeg")  # clip_benchmark's order of preference


@dataclass(frozen=True)
class Sample:
    key: str
    url: str  # the sample's `url` member (`dataset add` writes one), else its key
    captions: tuple[str, ...]
    image: Member


@dataclass(frozen=True)
class Scoring:
    """What every rank needs: picklable, so that spawned ranks receive it whole."""

    name: str
    folder: str
    models: tuple[tuple[str, str], ...]
    out: str
    batch_size: int = 64
    num_workers: int = 2
    device: str = "auto"
    precision: str = "auto"
    cache_dir: str | None = None
    threshold: float = 0.2
    heatmap_size: int = 16
    seed: int = 0
    export_embeddings: bool = False
    distractors: int = 0
    timeout_s: float = 3600.0


@dataclass
class Scored:
    """One model's embeddings of the whole set, on rank 0."""

    model: str
    pretrained: str
    image_emb: Any  # numpy (images, dim) float32
    text_emb: Any  # numpy (captions, dim) float32
    recalls: dict[str, float]
    context_length: int


@dataclass
class Part:
    """What one rank encoded of one model: batch index -> (image, text) embeddings as numpy arrays."""

    batches: dict[int, tuple[Any, Any]] = field(default_factory=dict)


def read_index(folder: str | Path) -> list[Sample]:
    """Every sample of the test split in shard and member order, grouped as webdataset groups a tar's members, with
    its captions and where its image lies."""
    from webdataset.tariterators import group_by_keys

    samples = []
    for found in group_by_keys(members(Path(folder))):
        where, key = found["__url__"], found["__key__"]
        image = next((found[e] for e in IMAGE_EXTENSIONS if e in found), None)
        if image is None or "txt" not in found:
            raise BenchmarkError(f"{where}: sample {key} lacks an image ({', '.join(IMAGE_EXTENSIONS)}) or its txt "
                                 "captions")
        captions = tuple(found["txt"].read().decode("utf-8").splitlines())
        if not captions:
            raise BenchmarkError(f"{where}: sample {key} has no caption")
        url = found["url"].read().decode("utf-8") if "url" in found else key
        samples.append(Sample(key, url, captions, image))
    if not samples:
        raise BenchmarkError(f"dataset folder {folder} has no samples in its {SPLIT} split")
    return samples


def batches(samples: int, batch_size: int) -> list[list[int]]:
    return [list(range(i, min(samples, i + batch_size))) for i in range(0, samples, batch_size)]


class _Images:
    """The images of the index, decoded as clip_benchmark's wds reader decodes them, then transformed."""

    def __init__(self, index: list[Sample], transform):
        self.index, self.transform = index, transform

    def __len__(self):
        return len(self.index)

    def __getitem__(self, i: int):
        from webdataset.autodecode import ImageHandler

        data = self.index[i].image.read()
        return i, self.transform(ImageHandler("pil", extensions=list(IMAGE_EXTENSIONS))("x.png", data))


def _collate(items):
    import torch

    return [i for i, _ in items], torch.stack([image for _, image in items])


def encode_part(loaded, index: list[Sample], batch_size: int, num_workers: int, rank: int, world: int) -> Part:
    """The batches r, r + N, ... of the set, each image batch with its captions through `encode_captioned`."""
    import torch

    every = batches(len(index), batch_size)
    mine = every[rank::world]
    part = Part()
    if not mine:
        return part
    loader = torch.utils.data.DataLoader(_Images(index, loaded.transform), batch_sampler=mine, collate_fn=_collate,
                                         num_workers=min(num_workers, len(mine)))
    for b, (ids, images) in zip(range(rank, len(every), world), loader):
        image_emb, text_emb = encode_captioned(loaded, images.to(loaded.device),
                                               [c for i in ids for c in index[i].captions])
        part.batches[b] = (image_emb.float().numpy(), text_emb.float().numpy())
    return part


def merge(loaded, index: list[Sample], parts: list[Part], ref: tuple[str, str], dataset: str) -> Scored:
    """The ranks' batches in order, and the set's recalls by the retrieval task's own arithmetic (clip_benchmark's)."""
    import numpy as np
    import torch

    batches = {b: arrays for part in parts for b, arrays in part.batches.items()}
    ordered = [batches[b] for b in range(len(batches))]
    encoded = EncodedDataset(RETRIEVAL.dataset_type, image_features=[torch.from_numpy(i) for i, _ in ordered],
                             text_features=[torch.from_numpy(t) for _, t in ordered],
                             text_image_index=[i for i, s in enumerate(index) for _ in s.captions],
                             num_samples=len(index))
    recall_k = tuple(k for k in RECALL_K if k <= len(index))
    recalls = RETRIEVAL.evaluate(Pair(*ref, dataset, task=RETRIEVAL.name), loaded, encoded, None, recall_k=recall_k)
    context = int(getattr(loaded.tokenizer, "context_length", None) or loaded.model.context_length)
    return Scored(*ref, np.concatenate([i for i, _ in ordered]), np.concatenate([t for _, t in ordered]), recalls,
                  context)


def load_scorer(scoring: Scoring, ref: tuple[str, str], device: str):
    try:
        return load_model(*ref, Preprocess(), device, resolve_precision(scoring.precision, device), scoring.cache_dir)
    except BenchmarkError:
        raise
    except Exception as exc:  # open_clip's many ways to say a model reference is wrong
        label = f"{ref[0]}:{ref[1]}" if ref[1] else ref[0]
        raise BenchmarkError(f"model {label} cannot be loaded: {type(exc).__name__}: {exc}") from None


def run_rank(scoring: Scoring, rank: int = 0, world: int = 1, device: str | None = None) -> list[Scored] | None:
    """This rank's part of every model; rank 0 gathers, writes the outputs and returns the scored models."""
    import torch.distributed as dist

    index = read_index(scoring.folder)
    device = device or resolve_device(scoring.device)
    scored = []
    for ref in scoring.models:
        loaded = load_scorer(scoring, ref, device)
        part = encode_part(loaded, index, scoring.batch_size, scoring.num_workers, rank, world)
        parts = [part]
        if world > 1:
            parts = [None] * world if rank == 0 else None
            dist.gather_object(part, parts, dst=0)
        if rank == 0:
            scored.append(merge(loaded, index, parts, ref, scoring.name))
        del loaded
    if rank != 0:
        return None
    write_outputs(scoring, index, scored)
    return scored


# ---------------------------------------------------------------- N ranks on this machine


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _rank_main(rank: int, scoring: Scoring, world: int, port: int, errors: str) -> None:
    """A local rank: joins the group on loopback and runs its part."""
    import datetime

    import torch.distributed as dist

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    device, backend = rank_device(scoring, rank, world)
    dist.init_process_group(backend, rank=rank, world_size=world,
                            timeout=datetime.timedelta(seconds=scoring.timeout_s))
    try:
        with report_errors(errors, rank):
            run_rank(scoring, rank, world, device)
    finally:
        dist.destroy_process_group()


def run_ranks(scoring: Scoring, world: int) -> None:
    """`world` ranks of `run_rank` on this machine, joined in a torch.distributed group on loopback."""
    start_local(_rank_main, (scoring, world, _free_port()), world, scoring)


def start_local(target, args: tuple, processes: int, scoring: Scoring) -> None:
    """`processes` local processes of `target(local_rank, *args, errors)`, each bounded by `scoring.timeout_s` (one
    that dies or hangs ends all). GPU processes are spawned (CUDA cannot be forked); CPU ones are forked, so they
    start without importing torch and open_clip again, and each runs its share of the cores' threads."""
    import torch
    import torch.multiprocessing as mp

    cuda = resolve_device(scoring.device).startswith("cuda")
    if cuda and processes > torch.cuda.device_count():
        raise BenchmarkError(f"{processes} GPUs asked for, but torch sees {torch.cuda.device_count()} GPU(s)")
    errors = tempfile.mkdtemp(prefix="similarity-ranks-")
    try:
        context = mp.start_processes(target, args=(*args, errors), nprocs=processes, join=False,
                                     start_method="spawn" if cuda else "fork")
        deadline = time.monotonic() + scoring.timeout_s
        try:
            while not context.join(timeout=1):
                if time.monotonic() > deadline:
                    raise BenchmarkError(f"the {processes} ranks did not finish within {scoring.timeout_s:g} s")
        except (mp.ProcessRaisedException, mp.ProcessExitedException) as exc:
            said = sorted(Path(errors).glob("*.txt"))
            raise BenchmarkError(said[0].read_text() if said else f"a rank failed: {str(exc).strip()[-300:]}") from None
        finally:
            for process in context.processes:
                if process.is_alive():
                    process.terminate()
                process.join(5)
    finally:
        shutil.rmtree(errors, ignore_errors=True)


def rank_device(scoring: Scoring, local_rank: int, processes: int) -> tuple[str, str]:
    """(device, backend) of a local rank: its own GPU and NCCL, or the CPU, its share of the threads and gloo."""
    import torch

    device = resolve_device(scoring.device)
    if device.startswith("cuda"):
        torch.cuda.set_device(local_rank)
        return f"cuda:{local_rank}", "nccl"
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // processes))
    return device, "gloo"


def report_errors(errors: str, rank: int):
    """A context for a local rank's body: a BenchmarkError becomes a file the parent reads, and exit 2."""
    import contextlib

    @contextlib.contextmanager
    def guard():
        try:
            yield
        except BenchmarkError as exc:
            Path(errors, f"{rank}.txt").write_text(str(exc))
            raise SystemExit(2) from None

    return guard()
