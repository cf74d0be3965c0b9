"""The pair: the unit of result. Its identity lives in its content; store keys are derived, never parsed back."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import Any

from .errors import BenchmarkError

DEFAULT_TASK = "zeroshot_classification"  # clip_benchmark's default `--task`; what tasks/ means by it is its own
INTERPOLATIONS = ("bicubic", "bilinear", "random")
RESIZE_MODES = ("shortest", "longest", "squash")
TASK_NAME = re.compile(r"[a-z][a-z0-9_]*")  # the form of a task name; what it means is the task registry's


@dataclass(frozen=True)
class Preprocess:
    """Preprocessing overrides (CLIPA checkpoints, resolution sweeps); part of a pair's identity."""

    __pydantic_config__ = {"extra": "forbid"}  # what the records' JSON Schemas say: from_dict refuses unknown keys
    image_size: int | None = None
    mean: tuple[float, float, float] | None = None
    std: tuple[float, float, float] | None = None
    interpolation: str | None = None
    resize_mode: str | None = None

    def __post_init__(self):
        if self.image_size is not None and not (16 <= int(self.image_size) <= 4096):
            raise BenchmarkError(f"image size {self.image_size} is out of range (16..4096)")
        for name in ("mean", "std"):
            value = getattr(self, name)
            if value is not None and len(value) != 3:
                raise BenchmarkError(f"{name} needs three numbers, got {len(value)}")
        if self.std is not None and any(s <= 0 for s in self.std):
            raise BenchmarkError("std values must be positive")
        if self.interpolation is not None and self.interpolation not in INTERPOLATIONS:
            raise BenchmarkError(f"interpolation must be one of {', '.join(INTERPOLATIONS)}")
        if self.resize_mode is not None and self.resize_mode not in RESIZE_MODES:
            raise BenchmarkError(f"resize mode must be one of {', '.join(RESIZE_MODES)}")

    def as_dict(self) -> dict[str, Any]:
        """Only the fields that are set, lists for tuples: the canonical, JSON-ready form."""
        out: dict[str, Any] = {}
        for name in ("image_size", "mean", "std", "interpolation", "resize_mode"):
            value = getattr(self, name)
            if value is not None:
                out[name] = [float(v) for v in value] if isinstance(value, tuple) else value
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> "Preprocess":
        data = dict(data or {})
        unknown = set(data) - {"image_size", "mean", "std", "interpolation", "resize_mode"}
        if unknown:
            raise BenchmarkError(f"unknown preprocessing override(s): {', '.join(sorted(unknown))}")
        for name in ("mean", "std"):
            if data.get(name) is not None:
                data[name] = tuple(float(v) for v in data[name])
        if data.get("image_size") is not None:
            data["image_size"] = int(data["image_size"])
        return cls(**data)

    def canonical(self) -> str:
        """Stable text form used in the tracker's `preprocess` column ('' when nothing is overridden)."""
        d = self.as_dict()
        return json.dumps(d, sort_keys=True, separators=(",", ":")) if d else ""

    @classmethod
    def parse(cls, text: str) -> "Preprocess":
        return cls.from_dict(json.loads(text)) if text else cls()

    def __bool__(self) -> bool:
        return bool(self.as_dict())


@dataclass(frozen=True)
class Pair:
    model: str
    pretrained: str
    dataset: str
    language: str = "en"
    task: str = DEFAULT_TASK  # checked for form only: the task registry (tasks/, a layer above) checks the name
    preprocess: Preprocess = field(default_factory=Preprocess)

    def __post_init__(self):
        for name in ("model", "dataset", "language", "task"):
            if not getattr(self, name):
                raise BenchmarkError(f"a pair needs a non-empty {name}")
        if not TASK_NAME.fullmatch(self.task):
            raise BenchmarkError(f"task {self.task!r} is not a task name (lowercase letters, digits, underscores)")

    def identity(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "pretrained": self.pretrained,
            "dataset": self.dataset,
            "language": self.language,
            "task": self.task,
            "preprocess": self.preprocess.as_dict(),
        }

    @classmethod
    def from_identity(cls, data: dict[str, Any]) -> "Pair":
        return cls(
            model=str(data["model"]),
            pretrained=str(data.get("pretrained") or ""),
            dataset=str(data["dataset"]),
            language=str(data.get("language") or "en"),
            task=str(data.get("task") or DEFAULT_TASK),
            preprocess=Preprocess.from_dict(data.get("preprocess")),
        )

    @property
    def id(self) -> str:
        """A digest of the identity: equal pairs share it, different pairs never do in practice."""
        blob = json.dumps(self.identity(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:16]

    def sort_key(self) -> tuple:
        """The identity in column order: how the tracker, plans and metric tables order pairs."""
        return (self.model, self.pretrained, self.dataset, self.language, self.task, self.preprocess.canonical())

    def label(self) -> str:
        text = f"{self.model}:{self.pretrained} × {self.dataset}"
        if self.preprocess:
            text += f" [{self.preprocess.canonical()}]"
        return text


MODEL_REF_PREFIXES = ("local-dir:", "hf-hub:")


def parse_model_ref(text: str) -> tuple[str, str]:
    """`ARCH:TAG`, `ARCH:/path/ckpt.pt`, `local-dir:PATH` or `hf-hub:ORG/REPO` -> (model, pretrained)."""
    text = text.strip()
    if text.startswith(MODEL_REF_PREFIXES):
        return text, ""
    arch, sep, pretrained = text.partition(":")
    if not arch or not sep or not pretrained:
        raise BenchmarkError(f"model {text!r} must be ARCH:PRETRAINED, local-dir:PATH or hf-hub:ORG/REPO")
    return arch, pretrained
