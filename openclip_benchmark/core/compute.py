"""How and where a model computes: the one list of precisions and devices that every command's parser, the shard
manifest and the throughput sweep check against, so `--precision fp8` is refused everywhere before any work; and the
default cache folder. Light (no pydantic), so the CLI declares its options with them before any typed record loads."""

from __future__ import annotations

from enum import StrEnum

MAX_CUDA_DEVICES = 8  # cuda:0 .. cuda:7, the GPUs of the largest common node
DEFAULT_CACHE_DIR = "~/.cache/openclip_benchmark"


class Precision(StrEnum):
    auto = "auto"  # autocast (clip_benchmark's --amp) on a GPU, fp32 on a CPU
    fp32 = "fp32"
    amp = "amp"  # autocast: fp16 on a GPU, bf16 on a CPU
    amp_bf16 = "amp_bf16"


# auto: a GPU when torch sees one; cuda:N names one GPU of the machine
Device = StrEnum("Device", [("auto", "auto"), ("cpu", "cpu"), ("cuda", "cuda"),
                            *((f"cuda_{i}", f"cuda:{i}") for i in range(MAX_CUDA_DEVICES))])

PRECISIONS = tuple(p.value for p in Precision)
DEVICES = tuple(d.value for d in Device)
