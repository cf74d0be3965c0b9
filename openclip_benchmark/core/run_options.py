"""How a shard may run: the choices and defaults that the CLI declares its options with. Light (no pydantic), so
`benchmark --help` reads them without loading the typed manifest."""

from __future__ import annotations

PRECISIONS = ("auto", "fp32", "amp", "amp_bf16")  # auto: autocast on GPU as clip_benchmark does, fp32 on CPU
DEFAULT_CACHE_DIR = "~/.cache/openclip_benchmark"
