"""Result and failure records: clip_benchmark's keys plus a `run` block, typed, and validated on every read."""

from __future__ import annotations

import math
import traceback as tb
from typing import Annotated, Any, Literal, Protocol

from pydantic import ConfigDict, Field, ValidationInfo, field_validator, model_validator

from .clock import utc_now
from .documents import Document, Part, PreprocessField, pair_from_identity, schema_field
from .errors import InvalidResultError
from .jsonio import read_json
from .pair import DEFAULT_TASK, TASK_NAME, Pair, Preprocess

RESULT_SCHEMA = "openclip-benchmark/result/1"
FAILURE_SCHEMA = "openclip-benchmark/failure/1"
MAX_RECORD_BYTES = 4 * 2**20


class Naming(Protocol):
    """What a reader that knows the catalog (catalog.Catalog) brings: the pair as the catalog names it (it raises
    InvalidResultError for an identity it refuses), and the main metric of a dataset and task."""

    def canonical_pair(self, pair: Pair) -> Pair: ...

    def main_metric(self, dataset: str, task: str) -> str: ...


class PairRecord(Document):
    """The pair a record is about, under clip_benchmark's keys. Code builds one from `pair=`; a reader given a catalog
    (validation context `catalog`) gets the pair as the catalog names it (`wds/cifar10` -> `cifar10`)."""

    schema_: str = schema_field(RESULT_SCHEMA)
    dataset: str = Field(min_length=1)
    model: str = Field(min_length=1)
    pretrained: str = ""
    task: str = Field(DEFAULT_TASK, pattern=f"^{TASK_NAME.pattern}$")
    language: str = Field("en", min_length=1)
    preprocess: PreprocessField = Preprocess()

    @model_validator(mode="before")
    @classmethod
    def _named(cls, data: Any, info: ValidationInfo) -> Any:
        if not isinstance(data, dict):
            return data  # refused by the field validation
        data = dict(data)
        pair = data.pop("pair", None)
        if not isinstance(pair, Pair):
            pair = pair_from_identity(data)
        catalog = (info.context or {}).get("catalog")
        if catalog is not None:  # its InvalidResultError is no ValueError: pydantic passes it on as it is
            pair = catalog.canonical_pair(pair)
        data.update(pair.identity(), preprocess=pair.preprocess)
        data.setdefault("schema", cls.model_fields["schema_"].default)
        return data

    @property
    def pair(self) -> Pair:
        return Pair(self.model, self.pretrained, self.dataset, self.language, self.task, self.preprocess)


Count = Annotated[int, Field(ge=0)]


class ModelProfile(Part):
    """Parameters and GFLOPs per sample that the worker counted, for models the catalog lacks."""

    model_config = ConfigDict(extra="allow", strict=True)
    params: Count | None = None
    image_params: Count | None = None
    text_params: Count | None = None
    image_gflops: float | None = Field(None, ge=0)
    text_gflops: float | None = Field(None, ge=0)
    image_size: Count | None = None


class Run(Part):
    """How a pair's run went. Every field is optional (clip_benchmark's own files have no run block; older results lack
    the later fields), and a field a later version adds is kept as written, so older readers go on reading."""

    model_config = ConfigDict(extra="allow", strict=True)
    started: str | None = None
    finished: str | None = None
    seconds: float | None = Field(None, ge=0)
    images_per_s: float | None = Field(None, ge=0)
    num_samples: Count | None = None
    device: str | None = None
    gpu_name: str | None = None
    precision: str | None = None
    batch_size: int | None = Field(None, ge=1)
    num_workers: Count | None = None
    classifier_cached: bool | None = None
    shard_id: str | None = None
    attempt: int | None = Field(None, ge=1)
    versions: dict[str, str] | None = None
    model_profile: ModelProfile | None = None
    cost_usd: float | None = Field(None, ge=0)  # what the run cost, where the backend knows it
    spot: bool | None = None  # whether it ran on a spot instance, where the backend knows it
    # a task that learns on features (a linear probe): the images it learned from, the seconds and optimiser steps of
    # that learning (the plan's fitting term is calibrated from them), the splits whose features the store held
    fit_samples: Count | None = None
    fit_seconds: float | None = Field(None, ge=0)
    fit_steps: Count | None = None
    features_cached: list[str] | None = None


Metric = Annotated[float, Field(strict=True)] | None  # None: clip_benchmark's NaN (acc5 under five classes)


class Result(PairRecord):
    """A result: clip_benchmark's keys (`clip_benchmark build` reads them), the metrics, and how the run went. Keys the
    model does not name (clip_benchmark's optional `classnames`, `templates`) are kept.

    Read with a catalog, a result whose main metric (the catalog's for its dataset, else its task's) is not a finite
    number is invalid: it must never stand in for a good result of the same pair."""

    model_config = ConfigDict(extra="allow")
    what = "result"
    schema_: Literal[RESULT_SCHEMA] = schema_field(RESULT_SCHEMA)
    metrics: dict[str, Metric] = Field(min_length=1)
    run: Run = Run()

    @field_validator("metrics", mode="before")
    @classmethod
    def _settings_out(cls, metrics: Any) -> Any:
        """A setting clip_benchmark writes among the metrics (the linear probe's `normalized`) is no metric."""
        return {k: v for k, v in metrics.items() if not isinstance(v, bool)} if isinstance(metrics, dict) else metrics

    @field_validator("metrics")
    @classmethod
    def _numbers(cls, metrics: dict[str, float | None], info: ValidationInfo) -> dict[str, float | None]:
        if all(value is None for value in metrics.values()):
            raise ValueError("no metric is a number")
        catalog = (info.context or {}).get("catalog")
        if catalog is not None and {"dataset", "task"} <= set(info.data):
            metric = catalog.main_metric(info.data["dataset"], info.data["task"])
            value = metrics.get(metric)
            if value is None or not math.isfinite(value):
                raise ValueError(f"the main metric {metric!r} is not a finite number")
        return metrics


class ErrorInfo(Part):
    model_config = ConfigDict(extra="allow", strict=True)
    type: str = "Error"
    message: str = ""
    traceback: str = ""  # its tail


class Failure(PairRecord):
    """A failure record: why the pair failed, on which attempt, in which shard and stage."""

    model_config = ConfigDict(extra="allow")
    what = "failure record"
    schema_: Literal[FAILURE_SCHEMA] = schema_field(FAILURE_SCHEMA)
    error: ErrorInfo
    attempt: int = Field(1, ge=1, strict=True)
    time: str | None = None
    shard_id: str | None = None
    stage: str | None = None  # where it failed: load_model, dataset, evaluate


Record = Result | Failure
_KINDS: dict[str, type[Result] | type[Failure]] = {RESULT_SCHEMA: Result, FAILURE_SCHEMA: Failure}


def make_result(pair: Pair, metrics: dict[str, Any], run: dict[str, Any]) -> dict[str, Any]:
    """The result JSON: `clip_benchmark build` reads the top-level keys; we add identity and run data."""
    return Result(pair=pair, metrics=metrics, run=run).model_dump(exclude_unset=True)


def make_failure(pair: Pair, exc: BaseException, attempt: int, **context: Any) -> dict[str, Any]:
    lines = tb.format_exception(type(exc), exc, exc.__traceback__)
    error = {"type": type(exc).__name__, "message": str(exc)[:2000], "traceback": "".join(lines)[-4000:]}
    failure = Failure(pair=pair, error=error, attempt=int(attempt), time=utc_now(), **context)
    return failure.model_dump(exclude_unset=True)


def read_record(data: bytes | str, catalog: Naming | None = None) -> Record:
    """Decode and validate by content (ours, or one clip_benchmark wrote); any defect is an InvalidResultError.

    A NaN literal reads as a missing metric: clip_benchmark's own json.dump writes one for acc5 on datasets with fewer
    than 5 classes, and those results are valid. With `catalog`, the pair is named as the catalog names it (e.g.
    clip_benchmark's `zeroshot_classification` for a multilabel dataset), and the main metric must be a number."""
    obj = read_json(data, "record", max_bytes=MAX_RECORD_BYTES, nan_as_null=True)
    if not isinstance(obj, dict):
        raise InvalidResultError("a record must be a JSON object")
    schema = obj.get("schema", RESULT_SCHEMA)
    kind = _KINDS.get(schema) if isinstance(schema, str) else None
    if kind is None:
        raise InvalidResultError(f"unknown schema {schema!r}"[:200])
    return kind.model_validate(obj, context={"catalog": catalog})
