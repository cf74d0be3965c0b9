"""Manifests: what one job runs and how. The job receives the manifest's URL, never pair names.

Every job is a manifest of some kind: an evaluation shard (the default, so manifests written before kinds read as
one) or a similarity run; `options` holds what a kind needs beyond the pairs and settings, read by that kind.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Mapping

from .errors import BenchmarkError
from .jsonio import dumps_strict, loads_strict
from .pair import Pair

MANIFEST_SCHEMA = "openclip-benchmark/manifest/1"
EVALUATE = "evaluate"  # an evaluation shard: each pair's metrics into the store
SIMILARITY = "similarity"  # a similarity run: each model scores every image-caption pair of one dataset
KINDS = (EVALUATE, SIMILARITY)
PRECISIONS = ("auto", "fp32", "amp", "amp_bf16")


@dataclass(frozen=True)
class RunSettings:
    batch_size: int = 64
    num_workers: int = 4
    precision: str = "auto"  # auto: autocast on GPU as clip_benchmark does, fp32 on CPU
    device: str = "auto"
    cache_dir: str = "~/.cache/openclip_benchmark"
    dataset_root: str | None = None  # a folder of wds_<name>/ datasets; None downloads from the catalog URL

    def __post_init__(self):
        if self.batch_size < 1 or self.num_workers < 0:
            raise BenchmarkError("batch size must be >= 1 and workers >= 0")
        if self.precision not in PRECISIONS:
            raise BenchmarkError(f"precision must be one of {', '.join(PRECISIONS)}")


@dataclass(frozen=True)
class Manifest:
    shard_id: str
    store: str
    pairs: tuple[Pair, ...]
    settings: RunSettings = field(default_factory=RunSettings)
    # each dataset the pairs use, as a mapping file's entry (see `dataset_entries`), so a job without the user's
    # mapping file can download and size them; the worker validates them with the catalog's reader
    datasets: dict[str, dict[str, Any]] = field(default_factory=dict)
    kind: str = EVALUATE
    options: dict[str, Any] = field(default_factory=dict)  # what this kind needs beyond pairs and settings

    def __post_init__(self):
        if self.kind not in KINDS:
            raise BenchmarkError(f"unknown manifest kind {self.kind!r}; known: {', '.join(KINDS)}")

    def to_json(self) -> str:
        return dumps_strict(
            {
                "schema": MANIFEST_SCHEMA,
                "kind": self.kind,
                "shard_id": self.shard_id,
                "store": self.store,
                "settings": asdict(self.settings),
                "pairs": [p.identity() for p in self.pairs],
                "datasets": self.datasets,
                "options": self.options,
            }
        )

    @classmethod
    def from_json(cls, text: str | bytes) -> "Manifest":
        try:
            data: dict[str, Any] = loads_strict(text)
            if data.get("schema") != MANIFEST_SCHEMA:
                raise ValueError(f"unknown manifest schema {data.get('schema')!r}")
            pairs = tuple(Pair.from_identity(p) for p in data["pairs"])
            return cls(
                shard_id=str(data["shard_id"]),
                store=str(data["store"]),
                pairs=pairs,
                settings=RunSettings(**data.get("settings", {})),
                datasets=_object(data.get("datasets"), "datasets"),
                kind=str(data.get("kind", EVALUATE)),
                options=_object(data.get("options"), "options"),
            )
        except BenchmarkError:
            raise
        except (ValueError, KeyError, TypeError) as exc:
            raise BenchmarkError(f"invalid manifest: {exc}") from None


def _object(raw: Any, name: str) -> dict[str, Any]:
    """A JSON object field; absent (a manifest written before it existed) is empty."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise BenchmarkError(f"invalid manifest: {name!r} must be an object")
    return raw


def dataset_entries(specs: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Dataset specs (catalog.DatasetSpec) as a mapping file's entries: the name is the key."""
    return {name: {k: v for k, v in spec.to_json().items() if k != "name"} for name, spec in specs.items()}
