"""Manifests: what one job runs and how. The job receives the manifest's URL, never pair names.

Every job is a manifest of some kind: an evaluation shard (the default, so manifests written before kinds read as
one) or a similarity run; `options` holds what a kind needs beyond the pairs and settings, read by that kind.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Mapping

from pydantic import (
    ConfigDict, Field, ValidationError, ValidationInfo, ValidatorFunctionWrapHandler, WrapValidator, field_validator,
)

from .documents import Document, PairIdentity, schema_field
from .jsonio import dumps_strict, read_json
from .compute import DEFAULT_CACHE_DIR, PRECISIONS

MANIFEST_SCHEMA = "openclip-benchmark/manifest/1"
EVALUATE = "evaluate"  # an evaluation shard: each pair's metrics into the store
SIMILARITY = "similarity"  # a similarity run: each model scores every image-caption pair of one dataset
KINDS = (EVALUATE, SIMILARITY)


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


def dataset_entries(specs: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Dataset specs (catalog.DatasetSpec) as a mapping file's entries: the name is the key."""
    return {name: {k: v for k, v in spec.to_json().items() if k != "name"} for name, spec in specs.items()}


class Manifest(Document):
    """What one job runs: its kind, its pairs, how, and the entry of each dataset they use."""

    what = "manifest"
    schema_: Literal[MANIFEST_SCHEMA] = schema_field(MANIFEST_SCHEMA)
    shard_id: str = Field(min_length=1)
    store: str = ""  # where its outputs go; a similarity run on this machine alone has none
    settings: RunSettings = RunSettings()
    pairs: tuple[PairIdentity, ...]
    # each dataset the pairs use, as a mapping file's entry (see `dataset_entries`), so a job without the user's
    # mapping file can download and size them; the worker validates them with the catalog's reader
    datasets: dict[str, dict[str, Any]] = {}
    kind: Literal[KINDS] = Field(EVALUATE, validate_default=True)
    options: dict[str, Any] = {}  # what this kind needs beyond pairs and settings

    @field_validator("kind")
    @classmethod
    def _stored(cls, kind: str, info: ValidationInfo) -> str:
        if kind == EVALUATE and not info.data.get("store"):
            raise ValueError("an evaluation shard needs a store for its results")
        return kind

    def to_json(self) -> str:
        return dumps_strict(self.model_dump())

    @classmethod
    def from_json(cls, text: str | bytes) -> "Manifest":
        return cls.model_validate(read_json(text, "manifest"))
