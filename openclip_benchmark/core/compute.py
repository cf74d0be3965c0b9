"""How and where a model computes: the precisions every command and the shard manifest accept, and the default cache
folder. Light (no pydantic), so the CLI declares its options with them before any typed record loads."""

from __future__ import annotations

PRECISIONS = ("auto", "fp32", "amp", "amp_bf16")  # auto: autocast on GPU as clip_benchmark does, fp32 on CPU
DEFAULT_CACHE_DIR = "~/.cache/openclip_benchmark"
