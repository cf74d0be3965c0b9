"""Shard manifests: what one job runs and how. The job receives the manifest's URL, never pair names."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from .compute import PRECISIONS
from .errors import BenchmarkError
from .jsonio import dumps_strict, loads_strict
from .pair import Pair

if TYPE_CHECKING:
    from ..catalog import DatasetSpec

MANIFEST_SCHEMA = "openclip-benchmark/manifest/1"


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
    # the spec of each dataset the pairs use, so a job without the user's mapping file can download and size them
    datasets: dict[str, "DatasetSpec"] = field(default_factory=dict)

    def to_json(self) -> str:
        return dumps_strict(
            {
                "schema": MANIFEST_SCHEMA,
                "shard_id": self.shard_id,
                "store": self.store,
                "settings": asdict(self.settings),
                "pairs": [p.identity() for p in self.pairs],
                "datasets": {name: _spec_json(spec) for name, spec in self.datasets.items()},
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
                datasets=_datasets(data.get("datasets")),
            )
        except BenchmarkError:
            raise
        except (ValueError, KeyError, TypeError) as exc:
            raise BenchmarkError(f"invalid manifest: {exc}") from None


def _datasets(raw: Any) -> dict[str, "DatasetSpec"]:
    """The manifest's dataset specs, validated as a mapping file is. None (a manifest that carries none) is no
    fallback to any mapping: its datasets are read from the job's --dataset-root as the catalog lacks them."""
    from ..catalog import datasets_from_json

    return {} if raw is None else datasets_from_json(raw, "manifest")


def _spec_json(spec: "DatasetSpec") -> dict[str, Any]:
    """A mapping file's entry: the name is its key."""
    out = spec.to_json()
    del out["name"]
    return out
