"""Shard manifests: what one job runs and how. The job receives the manifest's URL, never pair names."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    BeforeValidator, ConfigDict, Field, PlainSerializer, ValidationError, ValidatorFunctionWrapHandler, WithJsonSchema,
    WrapValidator,
)

from .documents import Document, PairIdentity, schema_field
from .jsonio import dumps_strict, read_json
from .compute import DEFAULT_CACHE_DIR, PRECISIONS

MANIFEST_SCHEMA = "openclip-benchmark/manifest/1"


def _precision(value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
    """One of PRECISIONS, refused in the words every command uses."""
    try:
        return handler(value)
    except ValidationError:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}") from None


class RunSettings(Document):
    """How a shard runs: batch size, data-loader workers, precision, device, where caches and datasets are."""

    model_config = ConfigDict(extra="forbid", strict=True)
    what = "run settings"
    batch_size: int = Field(64, ge=1)
    num_workers: int = Field(4, ge=0)
    precision: Annotated[Literal[PRECISIONS], WrapValidator(_precision)] = "auto"
    device: str = "auto"
    cache_dir: str = DEFAULT_CACHE_DIR
    dataset_root: str | None = None  # a folder of wds_<name>/ datasets; None downloads from the catalog URL


def _dataset_specs(raw: Any) -> dict[str, Any]:
    """The manifest's dataset specs (catalog.DatasetSpec), validated as a mapping file's are (CatalogError names what
    is wrong). None (a manifest that carries none) is no fallback to any mapping: its datasets are read from the job's
    --dataset-root as the catalog lacks them."""
    from ..catalog import DatasetSpec, datasets_from_json

    if raw is None:
        return {}
    if isinstance(raw, dict) and all(isinstance(spec, DatasetSpec) for spec in raw.values()):
        return dict(raw)
    return datasets_from_json(raw, "manifest")


def _specs_json(specs: dict[str, Any]) -> dict[str, Any]:
    """A mapping file's entries: the name is the key."""
    return {name: {k: v for k, v in spec.to_json().items() if k != "name"} for name, spec in specs.items()}


# each dataset the pairs use, as a mapping file's entry, so a job without the user's mapping file can download and
# size them
DatasetSpecs = Annotated[
    dict[str, Any], BeforeValidator(_dataset_specs), PlainSerializer(_specs_json),
    WithJsonSchema({"type": "object", "additionalProperties": {"type": "object"},
                    "description": "dataset name -> its entry, as in a dataset mapping file (dataset_mapping.json)"}),
]


class Manifest(Document):
    """What one job runs: its pairs, how, and the spec of each dataset they use."""

    what = "manifest"
    schema_: Literal[MANIFEST_SCHEMA] = schema_field(MANIFEST_SCHEMA)
    shard_id: str = Field(min_length=1)
    store: str = Field(min_length=1)
    settings: RunSettings = RunSettings()
    pairs: tuple[PairIdentity, ...]
    datasets: DatasetSpecs = {}

    def to_json(self) -> str:
        return dumps_strict(self.model_dump())

    @classmethod
    def from_json(cls, text: str | bytes) -> "Manifest":
        return cls.model_validate(read_json(text, "manifest"))
