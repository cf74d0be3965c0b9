"""Per-sample outcomes of a result: the arrays a confidence interval or a paired test resamples.

A samples document is strict JSON text (so a shard bundle carries it as it carries records) holding named 1-D
arrays, each zlib-compressed and base64-encoded: booleans bit-packed, integers in the narrowest unsigned type
that holds them. It names the result it belongs to by the SHA-256 of the result's exact bytes, so a reader never
takes the samples of another result (or of an earlier run of the same pair) for this one's.
"""

from __future__ import annotations

import base64
import hashlib
import zlib
from typing import Literal, Mapping

import numpy as np
from pydantic import Field

from .documents import Document, Part, schema_field
from .errors import InvalidResultError
from .jsonio import dumps_strict, read_json

SAMPLES_SCHEMA = "openclip-benchmark/samples/1"
MAX_SAMPLES_BYTES = 256 * 2**20  # a few bytes per sample and array: ample for the largest benchmark set
_INT_TYPES = ("uint8", "uint16", "uint32", "int64")


class PackedArray(Part):
    """One 1-D array: booleans bit-packed, integers in the narrowest unsigned type that holds them (int64 beyond),
    scores as float64 (NaN included), little-endian, zlib-compressed, base64-encoded."""

    dtype: Literal["bool", "float64", *_INT_TYPES]
    length: int = Field(ge=0, strict=True)
    data: str


class Samples(Document):
    """A samples document: the per-sample arrays of the result whose exact bytes have SHA-256 `result_sha256`."""

    what = "samples file"
    schema_: Literal[SAMPLES_SCHEMA] = schema_field(SAMPLES_SCHEMA)
    result_sha256: str = Field(pattern="^[0-9a-f]{64}$")
    arrays: dict[str, PackedArray]


def result_digest(result_bytes: bytes) -> str:
    return hashlib.sha256(result_bytes).hexdigest()


def _pack(values: np.ndarray) -> PackedArray:
    values = np.asarray(values)
    if values.ndim != 1:
        raise ValueError(f"per-sample arrays are 1-D, not of shape {values.shape}")
    if values.dtype == bool:
        dtype, raw = "bool", np.packbits(values).tobytes()
    elif values.dtype.kind == "f":  # a per-sample score (CIDEr of one image), NaN included
        dtype, raw = "float64", values.astype("<f8").tobytes()
    else:
        if values.size and values.min() < 0:
            raise ValueError("per-sample integers are indices or ranks, never negative")
        top = int(values.max()) if values.size else 0
        dtype = next(t for t in _INT_TYPES if top <= np.iinfo(t).max)
        raw = values.astype(np.dtype(dtype).newbyteorder("<")).tobytes()
    data = base64.b64encode(zlib.compress(raw, 6)).decode("ascii")
    return PackedArray(dtype=dtype, length=int(values.size), data=data)


def _unpack(name: str, packed: PackedArray) -> np.ndarray:
    try:
        raw = zlib.decompress(base64.b64decode(packed.data, validate=True))
    except (ValueError, zlib.error) as exc:
        raise InvalidResultError(f"samples array {name!r} does not decode ({exc})") from None
    n = packed.length
    if packed.dtype == "bool":
        if len(raw) != (n + 7) // 8:
            raise InvalidResultError(f"samples array {name!r} holds {len(raw)} bytes for {n} booleans")
        return np.unpackbits(np.frombuffer(raw, np.uint8), count=n).astype(bool)
    dtype = np.dtype(packed.dtype).newbyteorder("<")
    if len(raw) != n * dtype.itemsize:
        raise InvalidResultError(f"samples array {name!r} holds {len(raw)} bytes for {n} {packed.dtype} values")
    return np.frombuffer(raw, dtype).astype(np.float64 if dtype.kind == "f" else np.int64)


def make_samples(result_bytes: bytes, arrays: Mapping[str, np.ndarray]) -> bytes:
    """The samples document of the result whose exact stored bytes are `result_bytes`."""
    doc = Samples(result_sha256=result_digest(result_bytes),
                  arrays={name: _pack(values) for name, values in arrays.items()})
    return dumps_strict(doc.model_dump(), indent=None).encode("utf-8")


def read_samples(data: bytes) -> tuple[str, dict[str, np.ndarray]]:
    """(SHA-256 of the result it belongs to, name -> array); raises InvalidResultError naming what is wrong."""
    doc = Samples.model_validate(read_json(data, "samples file", max_bytes=MAX_SAMPLES_BYTES))
    return doc.result_sha256, {name: _unpack(name, packed) for name, packed in doc.arrays.items()}
