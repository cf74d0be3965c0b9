"""Shard bundles: one object per shard run holding the exact bytes of every record the run wrote.

A sync that fetches a shard's bundle needs no GET for the shard's results whose listed ETag is the MD5 of the
bundled bytes (S3 and R2 give single-part PUTs that ETag), so 10,000 results cost ~250 GETs, not 10,000.
"""

from __future__ import annotations

import hashlib

from ..core.clock import utc_now
from ..core.errors import InvalidResultError
from ..core.jsonio import dumps_strict, loads_document
from .layout import bundle_key
from .store import Store

BUNDLE_SCHEMA = "openclip-benchmark/bundle/1"


def make_bundle(shard_id: str, written: dict[str, bytes]) -> bytes:
    """The bundle of `written` (store key -> the bytes put there), each record kept as its exact text."""
    records = [{"key": key, "data": data.decode("utf-8")} for key, data in written.items()]
    return dumps_strict({"schema": BUNDLE_SCHEMA, "shard_id": shard_id, "written_at": utc_now(), "records": records},
                        indent=None).encode("utf-8")


def write_bundle(store: Store, shard_id: str, written: dict[str, bytes]) -> str:
    """Put the bundle of `written` into `store` (atomically, as every put); returns its key."""
    key = bundle_key(shard_id, utc_now())
    store.put(key, make_bundle(shard_id, written))
    return key


def read_bundle(data: bytes) -> dict[str, dict[str, bytes]]:
    """key -> {md5 hex of the bytes: bytes}; raises InvalidResultError naming what is wrong.

    Keys are returned as written: the caller decides which keys it may use (never more than a listed object).
    """
    doc = loads_document(data, BUNDLE_SCHEMA, "bundle")
    records = doc.get("records")
    if not isinstance(records, list):
        raise InvalidResultError("bundle has no list of records")
    offered: dict[str, dict[str, bytes]] = {}
    for i, item in enumerate(records):
        if not (isinstance(item, dict) and isinstance(item.get("key"), str) and isinstance(item.get("data"), str)):
            raise InvalidResultError(f"bundle record {i} is not {{key: string, data: string}}")
        try:
            body = item["data"].encode("utf-8")
        except UnicodeEncodeError:
            raise InvalidResultError(f"bundle record {i} is not valid text") from None
        offered.setdefault(item["key"], {})[hashlib.md5(body).hexdigest()] = body
    return offered
