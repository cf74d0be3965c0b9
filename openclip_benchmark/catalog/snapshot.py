"""The model snapshot generator: builds every open_clip pretrained architecture on the meta device and counts its
parameters and GFLOPs. Imports torch, open_clip and transformers, so only `benchmark models --refresh` loads it;
the reader in `catalog` never does."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Iterable

from ..core.errors import UnknownNameError
from ..core.jsonio import atomic_write_json
from . import MODELS_PATH, CatalogError, ModelSpec, clear_caches


def build_model_catalog(
    archs: Iterable[str] | None = None, progress: Callable[[str], None] | None = None
) -> list[ModelSpec]:
    """Count parameters and GFLOPs of every open_clip pretrained model on the meta device (no weights).

    Each architecture is built once; pretrained tags only change preprocessing. Imports torch and open_clip.
    """
    import logging

    import open_clip

    wanted = set(archs) if archs is not None else None
    listed = [(a, t) for a, t in open_clip.list_pretrained() if wanted is None or a in wanted]
    if wanted is not None and (missing := wanted - {a for a, _ in listed}):
        raise UnknownNameError("architecture", sorted(missing)[0], {a for a, _ in open_clip.list_pretrained()})
    logging.getLogger().setLevel(logging.ERROR)  # open_clip warns "no pretrained weights" for every build
    measured: dict[str, dict[str, Any]] = {}
    out = []
    for arch, tag in listed:
        if arch not in measured:
            if progress:
                progress(arch)
            measured[arch] = _measure_arch(open_clip, arch)
        m = measured[arch]
        pre = open_clip.get_pretrained_cfg(arch, tag) or {}
        out.append(
            ModelSpec(
                arch=arch,
                pretrained=tag,
                params=m["params"],
                image_params=m["image_params"],
                text_params=m["text_params"],
                image_gflops=m["image_gflops"],
                text_gflops=m["text_gflops"],
                image_size=m["image_size"],
                mean=tuple(float(v) for v in pre.get("mean") or m["mean"]),
                std=tuple(float(v) for v in pre.get("std") or m["std"]),
                interpolation=pre.get("interpolation") or m["interpolation"],
                resize_mode=pre.get("resize_mode") or m["resize_mode"],
                context_length=m["context_length"],
                embed_dim=m["embed_dim"],
            )
        )
    return out


# The architecture fields of the Hugging Face configs of the text towers open_clip uses, so that `--refresh` counts
# them without the Hub (values from each model's config.json on huggingface.co; the parameter counts they give
# match open_clip's docs/model_profile.csv exactly, which tests/test_catalog.py checks).
_ROBERTA = dict(max_position_embeddings=514, type_vocab_size=1, pad_token_id=1, layer_norm_eps=1e-5)
_NLLB = dict(vocab_size=256206, d_model=1024, encoder_attention_heads=16, decoder_attention_heads=16,
             max_position_embeddings=1024, scale_embedding=True, pad_token_id=1)
HF_TEXT_CONFIGS: dict[str, tuple[str, dict[str, Any]]] = {
    "roberta-base": ("roberta", dict(_ROBERTA, vocab_size=50265, hidden_size=768, num_hidden_layers=12,
                                     num_attention_heads=12, intermediate_size=3072)),
    "xlm-roberta-base": ("xlm-roberta", dict(_ROBERTA, vocab_size=250002, hidden_size=768, num_hidden_layers=12,
                                             num_attention_heads=12, intermediate_size=3072)),
    "xlm-roberta-large": ("xlm-roberta", dict(_ROBERTA, vocab_size=250002, hidden_size=1024, num_hidden_layers=24,
                                              num_attention_heads=16, intermediate_size=4096)),
    "facebook/nllb-200-distilled-600M": ("m2m_100", dict(_NLLB, encoder_layers=12, decoder_layers=12,
                                                         encoder_ffn_dim=4096, decoder_ffn_dim=4096)),
    "facebook/nllb-200-distilled-1.3B": ("m2m_100", dict(_NLLB, encoder_layers=24, decoder_layers=24,
                                                         encoder_ffn_dim=8192, decoder_ffn_dim=8192)),
}


def _count(module) -> int:
    return int(sum(p.numel() for p in module.parameters()))


def _gflops(fn, *args) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        fn(*args)
    return round(counter.get_total_flops() / 1e9, 3)


def _measure_arch(open_clip, arch: str) -> dict[str, Any]:
    import torch

    cfg = open_clip.get_model_config(arch)
    if cfg is None:
        raise CatalogError(f"open_clip has no config for {arch!r}")
    hf_name = cfg.get("text_cfg", {}).get("hf_model_name")
    with torch.device("meta"):
        if hf_name:
            from open_clip.model import _build_vision_tower

            visual = _build_vision_tower(cfg["embed_dim"], cfg["vision_cfg"])
        else:
            model = open_clip.create_model(arch, pretrained=None, device="meta")
            visual = model.visual
    size = getattr(visual, "image_size", None) or cfg["vision_cfg"].get("image_size")
    height, width = (size, size) if isinstance(size, int) else tuple(size)
    pre = getattr(visual, "preprocess_cfg", {}) or {}
    if hf_name:
        text_params, text_gflops, context = _measure_hf_text(cfg)
    else:
        context = int(model.context_length)
        text_params = _count(model) - _count(visual)
        text_gflops = _gflops(model.encode_text, torch.zeros(1, context, dtype=torch.long, device="meta"))
    image_params = _count(visual)
    return {
        "image_params": image_params,
        "image_gflops": _gflops(visual, torch.empty(1, 3, height, width, device="meta")),
        "image_size": int(height),
        "mean": pre.get("mean") or open_clip.OPENAI_DATASET_MEAN,
        "std": pre.get("std") or open_clip.OPENAI_DATASET_STD,
        "interpolation": pre.get("interpolation") or "bicubic",
        "resize_mode": pre.get("resize_mode") or "shortest",
        "embed_dim": int(cfg["embed_dim"]),
        "params": None if text_params is None else image_params + text_params,
        "text_params": text_params,
        "text_gflops": text_gflops,
        "context_length": context,
    }


def _measure_hf_text(cfg: dict[str, Any]) -> tuple[int | None, float | None, int]:
    """Hugging Face text towers branch on tensor values, so they cannot run on the meta device: build one on the
    CPU without initialising its weights and count one forward pass. Unknown configs need the Hub."""
    import torch
    from open_clip import hf_model
    from open_clip.model import CLIPTextCfg
    from transformers import AutoConfig
    from transformers.initialization import no_init_weights

    text_cfg = CLIPTextCfg(**cfg["text_cfg"])
    known = HF_TEXT_CONFIGS.get(text_cfg.hf_model_name)
    try:
        config = AutoConfig.for_model(known[0], **known[1]) if known else AutoConfig.from_pretrained(text_cfg.hf_model_name)
    except OSError:  # offline, and not in the table above
        return None, None, text_cfg.context_length
    # HFTextEncoder picks the encoder of encoder-decoder models only when it loads the config itself
    real_auto_config = hf_model.AutoConfig
    hf_model.AutoConfig = type("OfflineConfig", (), {"from_pretrained": staticmethod(lambda *a, **k: config)})
    try:
        with no_init_weights():
            text = hf_model.HFTextEncoder(
                text_cfg.hf_model_name,
                output_dim=cfg["embed_dim"],
                pooler_type=text_cfg.hf_pooler_type,
                proj_type=text_cfg.hf_proj_type,
                pretrained=False,
            )
    finally:
        hf_model.AutoConfig = real_auto_config
    tokens = torch.ones(1, text_cfg.context_length, dtype=torch.long)
    return _count(text), _gflops(text, tokens), text_cfg.context_length


def write_model_catalog(models: list[ModelSpec], path: str | Path | None = None) -> Path:
    """Save the snapshot atomically, with the versions it was generated from."""
    import open_clip
    import torch

    payload = {
        "generated_by": "benchmark models --refresh",
        "open_clip_version": open_clip.__version__,
        "torch_version": torch.__version__.split("+")[0],
        "models": [m.to_json() for m in models],
    }
    path = Path(path) if path else MODELS_PATH
    atomic_write_json(path, payload)
    clear_caches()
    return path
