"""Typed JSON documents (pydantic): the base every record, manifest and plan file shares, the pair identity as a field
type, and one-line messages for what fails validation.

pydantic costs about 0.2 s to import, so the modules that `benchmark --help` loads never import this one at their top.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar

from pydantic import (
    BaseModel, BeforeValidator, ConfigDict, Field, ModelWrapValidatorHandler, PlainSerializer, ValidationError,
    model_validator,
)

from .errors import BenchmarkError, InvalidResultError
from .pair import Pair, Preprocess


class Part(BaseModel):
    """A frozen, validated part of a document (a result's run block); what it refuses, its document reports."""

    model_config = ConfigDict(frozen=True, validate_by_name=True, validate_by_alias=True, serialize_by_alias=True)


class Document(Part):
    """A frozen, validated JSON document. `schema` (the document's kind and version) is a reserved name in pydantic,
    so the field is `schema_` in code and `schema` in the JSON. Whatever it refuses, read from outside or built in
    code (the CLI's settings go through here too), is one InvalidResultError line, never pydantic's report."""

    what: ClassVar[str] = "document"  # how messages name it

    @model_validator(mode="wrap")
    @classmethod
    def _one_line(cls, data: Any, handler: ModelWrapValidatorHandler):
        try:
            return handler(data)
        except ValidationError as exc:  # not a ValueError of ours: pydantic passes it on as it is
            raise InvalidResultError(message(exc, f"invalid {cls.what}")) from None


def message(exc: ValidationError, prefix: str) -> str:
    """The first error, where it is (unless the message names it) and what is wrong, on one line."""
    errors = exc.errors()
    first = errors[0] if errors else {"loc": (), "msg": str(exc)}
    where = ".".join(str(part) for part in first["loc"])
    text = str(first["msg"]).removeprefix("Value error, ")
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"{prefix}: {where + ': ' if where and not text.startswith(where) else ''}{text}{more}"


def schema_field(value: str):
    """The `schema` key of a document kind: its one allowed value, the default when code builds one."""
    return Field(value, alias="schema")


def _preprocess(value: Any) -> Preprocess:
    if isinstance(value, Preprocess):
        return value
    if value is not None and not isinstance(value, dict):
        raise ValueError("preprocess must be an object")
    try:
        return Preprocess.from_dict(value)
    except (BenchmarkError, TypeError, ValueError) as exc:
        raise ValueError(str(exc)) from None


def _pair(value: Any) -> Pair:
    if isinstance(value, Pair):
        return value
    if not isinstance(value, dict):
        raise ValueError("a pair must be an object")
    return pair_from_identity(value)


def pair_from_identity(data: dict[str, Any]) -> Pair:
    """Pair.from_identity with its refusals as ValueError, which pydantic reports where they happened."""
    for key in ("model", "dataset"):
        if not isinstance(data.get(key), str) or not data[key]:
            raise ValueError(f"missing or empty {key!r}")
    try:
        return Pair.from_identity(data)
    except (BenchmarkError, KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"bad identity: {exc}") from None


# the preprocessing overrides as they are written: only the fields that are set
PreprocessField = Annotated[Preprocess, BeforeValidator(_preprocess), PlainSerializer(Preprocess.as_dict)]
# a pair as its identity object (model, pretrained, dataset, language, task, preprocess)
PairIdentity = Annotated[Pair, BeforeValidator(_pair), PlainSerializer(Pair.identity)]
