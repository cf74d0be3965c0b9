"""Models and datasets: what can be benchmarked, read from data files so the CLI never imports open_clip to know it.

Datasets come from `dataset_mapping.json` (repo root, or the copy packaged in the wheel). Models come from
`data/models.json`, a snapshot generated from the installed open_clip by `build_model_catalog()`
(`benchmark models --refresh`): parameters and GFLOPs are counted on the meta device, so no weights are needed.
"""

from __future__ import annotations

import fnmatch
import functools
import json
import re
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

from .errors import BenchmarkError, UnknownNameError
from .jsonio import atomic_write_json
from .pair import MODEL_REF_PREFIXES, TASKS, Pair, parse_model_ref

PACKAGE_DIR = Path(__file__).resolve().parent
MAPPING_NAME = "dataset_mapping.json"
MODELS_PATH = PACKAGE_DIR / "data" / "models.json"
HF_DATASETS_URL = "https://huggingface.co/datasets/clip-benchmark/"
DEFAULT_LANGUAGES = ("en",)
GLOB_CHARS = "*?["


class CatalogError(BenchmarkError):
    pass


# ---------------------------------------------------------------- datasets


@dataclass(frozen=True)
class DatasetSpec:
    """One benchmark dataset as clip_benchmark's webdataset suite ships it."""

    name: str
    wds_name: str
    url: str
    task: str
    split: str
    size: int
    num_classes: int | None
    captions_per_image: int | None
    metric: str
    collections: tuple[str, ...]
    languages: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["collections"] = list(self.collections)
        out["languages"] = list(self.languages)
        return out


def mapping_path() -> Path:
    """The repo's top-level mapping when running from a checkout, else the copy packaged in the wheel."""
    for candidate in (PACKAGE_DIR.parent / MAPPING_NAME, PACKAGE_DIR / MAPPING_NAME):
        if candidate.is_file():
            return candidate
    raise CatalogError(f"{MAPPING_NAME} not found next to the package; reinstall openclip-benchmark")


def _dataset_from_json(name: str, raw: Any, where: str) -> DatasetSpec:
    if not isinstance(raw, dict):
        raise CatalogError(f"{where}: dataset {name!r} must be an object")
    known = {f.name for f in fields(DatasetSpec)} - {"name"}
    unknown = set(raw) - known
    if unknown:
        raise CatalogError(f"{where}: dataset {name!r} has unknown field(s) {', '.join(sorted(unknown))}")
    for required in ("wds_name", "task", "size", "metric"):
        if raw.get(required) in (None, ""):
            raise CatalogError(f"{where}: dataset {name!r} lacks {required!r}")
    if raw["task"] not in TASKS:
        raise CatalogError(f"{where}: dataset {name!r} has unknown task {raw['task']!r}")
    try:
        spec = DatasetSpec(
            name=name,
            wds_name=str(raw["wds_name"]),
            url=str(raw.get("url") or HF_DATASETS_URL + str(raw["wds_name"])),
            task=raw["task"],
            split=str(raw.get("split") or "test"),
            size=int(raw["size"]),
            num_classes=None if raw.get("num_classes") is None else int(raw["num_classes"]),
            captions_per_image=None if raw.get("captions_per_image") is None else int(raw["captions_per_image"]),
            metric=str(raw["metric"]),
            collections=tuple(str(c) for c in raw.get("collections") or ()),
            languages=tuple(str(lang) for lang in raw.get("languages") or DEFAULT_LANGUAGES),
        )
    except (TypeError, ValueError) as exc:
        raise CatalogError(f"{where}: dataset {name!r}: {exc}") from None
    if spec.size <= 0:
        raise CatalogError(f"{where}: dataset {name!r} has a non-positive size")
    return spec


@functools.lru_cache(maxsize=8)
def _load_datasets(path: Path) -> dict[str, DatasetSpec]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CatalogError(f"dataset mapping {path} does not exist") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CatalogError(f"dataset mapping {path} is not valid JSON: {exc}") from None
    raw = data.get("datasets") if isinstance(data, dict) else None
    if not isinstance(raw, dict) or not raw:
        raise CatalogError(f"dataset mapping {path} needs a non-empty 'datasets' object")
    specs = {name: _dataset_from_json(name, entry, path.name) for name, entry in raw.items()}
    seen: dict[str, str] = {}
    for spec in specs.values():
        if spec.wds_name in seen:
            raise CatalogError(f"{path.name}: {spec.name!r} and {seen[spec.wds_name]!r} are the same webdataset")
        seen[spec.wds_name] = spec.name
    return specs


def load_datasets(path: str | Path | None = None) -> dict[str, DatasetSpec]:
    """Dataset specs by mapping key; the default is the shipped `dataset_mapping.json`."""
    return dict(_load_datasets(Path(path).resolve() if path else mapping_path()))


def _alias(name: str) -> str:
    """clip_benchmark spells one dataset many ways: wds/vtab/cifar10, wds_vtab-cifar10, vtab/cifar10."""
    name = name.strip()
    for prefix in ("wds/", "wds_"):
        if name.startswith(prefix):
            name = name[len(prefix) :]
    return name.replace("/", "-")


def canonical_dataset(name: str, datasets: Mapping[str, DatasetSpec] | None = None) -> str:
    """The mapping key for any spelling of a dataset name; unknown names get the closest keys."""
    datasets = load_datasets() if datasets is None else datasets
    if name in datasets:
        return name
    wanted = _alias(name)
    for key, spec in datasets.items():
        if wanted in (_alias(key), _alias(spec.wds_name)):
            return key
    raise UnknownNameError("dataset", name, datasets)


def dataset_collections(datasets: Mapping[str, DatasetSpec]) -> dict[str, list[str]]:
    """Collection name -> dataset keys, plus one collection per task."""
    out: dict[str, list[str]] = {}
    for spec in datasets.values():
        for collection in (*spec.collections, spec.task):
            out.setdefault(collection, []).append(spec.name)
    return out


def select_datasets(patterns: Iterable[str] | None, datasets: Mapping[str, DatasetSpec]) -> list[DatasetSpec]:
    """Globs, collection names or any spelling of a dataset name; None or empty selects all."""
    patterns = [p for p in (patterns or ()) if p.strip()]
    if not patterns:
        return list(datasets.values())
    collections = {k.lower(): v for k, v in dataset_collections(datasets).items()}
    chosen: dict[str, None] = {}
    for pattern in patterns:
        pattern = pattern.strip()
        if any(c in pattern for c in GLOB_CHARS):
            hits = [k for k in datasets if fnmatch.fnmatchcase(k, pattern) or fnmatch.fnmatchcase(datasets[k].wds_name, pattern)]
            if not hits:
                raise CatalogError(f"no dataset matches {pattern!r}")
        elif pattern.lower() in collections:
            hits = collections[pattern.lower()]
        else:
            try:
                hits = [canonical_dataset(pattern, datasets)]
            except UnknownNameError:
                raise UnknownNameError("dataset or collection", pattern, [*datasets, *collections]) from None
        chosen.update(dict.fromkeys(hits))
    return [datasets[k] for k in chosen]


# ---------------------------------------------------------------- models


@dataclass(frozen=True)
class ModelSpec:
    """One (architecture, pretrained tag) of open_clip. Parameter counts are plain counts; GFLOPs are per sample
    (one image at native size, one text of `context_length` tokens), counted as 2 x multiply-adds like open_clip's
    published profile. None where a tower could not be built (a Hugging Face text tower while offline)."""

    arch: str
    pretrained: str
    params: int | None
    image_params: int | None
    text_params: int | None
    image_gflops: float | None
    text_gflops: float | None
    image_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    interpolation: str
    resize_mode: str
    context_length: int | None
    embed_dim: int

    @property
    def ref(self) -> str:
        return f"{self.arch}:{self.pretrained}"

    @property
    def family(self) -> str:
        return model_family(self.arch)

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["mean"], out["std"] = list(self.mean), list(self.std)
        return out

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> "ModelSpec":
        raw = dict(raw)
        raw["mean"], raw["std"] = tuple(raw["mean"]), tuple(raw["std"])
        return cls(**{f.name: raw.get(f.name) for f in fields(cls)})


_FAMILY_RULES = (
    (r"^coca_", "CoCa"),
    (r"^nllb-clip", "NLLB-CLIP"),
    (r"^(xlm-)?roberta-", "RoBERTa-CLIP"),
    (r"^EVA", "EVA"),
    (r"^MobileCLIP", "MobileCLIP"),
    (r"^PE-Core", "PE-Core"),
    (r"^ViTamin", "ViTamin"),
    (r"^convnext", "ConvNeXt"),
    (r"^RN\d", "ResNet"),
)


def model_family(model: str) -> str:
    """A coarse grouping for summaries: ViT-B, ViT-L, ConvNeXt, EVA, ResNet...; `custom` for local checkpoints."""
    if model.startswith(MODEL_REF_PREFIXES) or "/" in model:
        return "custom"
    for pattern, family in _FAMILY_RULES:
        if re.match(pattern, model):
            return family
    vit = re.match(r"^(ViT-[A-Za-z0-9]+)-", model)
    return vit.group(1) if vit else model


@functools.lru_cache(maxsize=4)
def _load_models(path: Path) -> tuple[ModelSpec, ...]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return tuple(ModelSpec.from_json(m) for m in data["models"])
    except FileNotFoundError:
        raise CatalogError(f"model snapshot {path} is missing; run `benchmark models --refresh`") from None
    except (ValueError, KeyError, TypeError) as exc:
        raise CatalogError(f"model snapshot {path} is malformed ({exc}); run `benchmark models --refresh`") from None


def load_models(path: str | Path | None = None) -> list[ModelSpec]:
    """Every pretrained (arch, tag) of the snapshot, in open_clip's order."""
    return list(_load_models(Path(path).resolve() if path else MODELS_PATH))


def find_model(arch: str, pretrained: str) -> ModelSpec | None:
    """The catalog entry, or None for local-dir:, hf-hub: and checkpoint-path models (and unknown pairs)."""
    return _model_index().get((arch, pretrained))


@functools.lru_cache(maxsize=1)
def _model_index() -> dict[tuple[str, str], ModelSpec]:
    return {(m.arch, m.pretrained): m for m in load_models()}


def model_collections(models: Iterable[ModelSpec]) -> dict[str, list[ModelSpec]]:
    """Names that select several models: architectures, pretrained tags and families."""
    out: dict[str, list[ModelSpec]] = {}
    for m in models:
        for name in dict.fromkeys((m.arch, m.pretrained, m.family)):
            out.setdefault(name, []).append(m)
    return out


def select_models(patterns: Iterable[str] | None, models: list[ModelSpec]) -> list[tuple[str, str]]:
    """(model, pretrained) for each selector: a glob on ARCH:TAG or ARCH, an architecture, a pretrained tag or a
    family (case-insensitive), ARCH:TAG, or an explicit reference (local-dir:, hf-hub:, ARCH:/path/to/ckpt.pt)."""
    patterns = [p.strip() for p in (patterns or ()) if p.strip()]
    if not patterns:
        return [(m.arch, m.pretrained) for m in models]
    collections = {k.lower(): v for k, v in model_collections(models).items()}
    refs = {m.ref for m in models}
    chosen: dict[tuple[str, str], None] = {}
    for pattern in patterns:
        if pattern.startswith(MODEL_REF_PREFIXES):
            hits = [parse_model_ref(pattern)]
        elif any(c in pattern for c in GLOB_CHARS):
            hits = [
                (m.arch, m.pretrained)
                for m in models
                if fnmatch.fnmatchcase(m.ref, pattern) or fnmatch.fnmatchcase(m.arch, pattern)
            ]
            if not hits:
                raise CatalogError(f"no model matches {pattern!r}")
        elif pattern in refs:
            hits = [parse_model_ref(pattern)]
        elif pattern.lower() in collections:
            hits = [(m.arch, m.pretrained) for m in collections[pattern.lower()]]
        elif _is_checkpoint_ref(pattern):
            hits = [parse_model_ref(pattern)]
        else:
            raise UnknownNameError("model", pattern, [*refs, *model_collections(models)])
        chosen.update(dict.fromkeys(hits))
    return list(chosen)


def _is_checkpoint_ref(text: str) -> bool:
    arch, sep, path = text.partition(":")
    return bool(arch and sep) and ("/" in path or path.endswith((".pt", ".pth", ".bin", ".safetensors")))


def enumerate_pairs(
    models: list[tuple[str, str]], datasets: Iterable[DatasetSpec], languages: Iterable[str] | None = None
) -> list[Pair]:
    """Every model x dataset x language the dataset supports; without languages, English only."""
    wanted = tuple(languages) if languages else DEFAULT_LANGUAGES
    pairs = []
    for spec in datasets:
        for language in (lang for lang in wanted if lang in spec.languages):
            for model, pretrained in models:
                pairs.append(Pair(model, pretrained, spec.name, language=language, task=spec.task))
    return pairs


# ---------------------------------------------------------------- model snapshot generation


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
    _load_models.cache_clear()
    _model_index.cache_clear()
    return path
