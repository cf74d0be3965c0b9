"""The store's key layout: where results, failure records, per-sample outcomes, shard manifests, shard bundles and
cached image features live, and which keys hold result records. The one module that builds or tests a key; keys derive from a pair's identity and are never
parsed back (the identity lives inside the record)."""

from __future__ import annotations

import hashlib
import json
import re
import secrets
from typing import Any

from ..core.pair import Pair

MANIFEST_PREFIX = "_manifests/"
BUNDLE_PREFIX = "_bundles/"
DATASET_PREFIX = "_datasets/"  # webdataset folders uploaded for jobs elsewhere (a similarity run's set)
SIMILARITY_PREFIX = "_similarity/"  # a similarity run's nodes: their ranks' parts
FEATURES_PREFIX = "_features/"  # image features of a dataset split by one model (a linear probe's), for re-runs
# folders that hold no result records, at the store root (or at any depth of a mirror: a store kept in a subfolder)
RESERVED_PREFIXES = (MANIFEST_PREFIX, BUNDLE_PREFIX, DATASET_PREFIX, SIMILARITY_PREFIX, FEATURES_PREFIX)
RESULT_SUFFIX = ".json"
FAILURE_SUFFIX = ".failure.json"
# per-sample outcomes (core/samples.py): JSON text, but not `.json`, so no reader of records (ours, or a
# `clip_benchmark build results/**/*.json`) ever takes one for a result
SAMPLES_SUFFIX = ".samples"


def slug(text: str, limit: int = 48) -> str:
    """Filename-safe, never empty, no dots (so never '..'); not meant to be read back."""
    out = re.sub(r"[^A-Za-z0-9_-]+", "-", str(text)).strip("-_")[:limit].strip("-_")
    return out or "x"


def result_key(pair: Pair) -> str:
    """Store key of a pair's result JSON, relative to the store root."""
    tail = f"{slug(pair.language)}-{slug(pair.task)}"
    if pair.preprocess:
        tail += "-" + slug("-".join(f"{k}{v}" for k, v in sorted(pair.preprocess.as_dict().items())))
    return f"{slug(pair.model)}/{slug(pair.pretrained or 'none')}/{slug(pair.dataset)}/{tail}-{pair.id}{RESULT_SUFFIX}"


def failure_key(pair: Pair) -> str:
    """The failure record sits beside where the result would be."""
    return result_key(pair)[: -len(RESULT_SUFFIX)] + FAILURE_SUFFIX


def samples_key(record_key: str) -> str:
    """The per-sample outcomes sit beside their result: `<result key without .json>.samples`."""
    return record_key[: -len(RESULT_SUFFIX)] + SAMPLES_SUFFIX


def manifest_key(shard_id: str) -> str:
    return f"{MANIFEST_PREFIX}{slug(shard_id, 96)}.json"


def bundle_key(shard_id: str, stamp: str) -> str:
    """A fresh key per shard run (retries never overwrite an earlier run's bundle)."""
    return f"{BUNDLE_PREFIX}{slug(shard_id, limit=100)}/{slug(stamp, limit=40)}-{secrets.token_hex(4)}.json"


def is_bundle(key: str) -> bool:
    return key.startswith(BUNDLE_PREFIX)


def is_reserved(key: str) -> bool:
    """Under a reserved folder at any depth: `_bundles/...`, or `runs/_bundles/...` of a store kept in a subfolder."""
    return any(f"{part}/" in RESERVED_PREFIXES for part in key.split("/")[:-1])


def is_record_key(key: str) -> bool:
    """A key that may hold a result or failure record: a JSON outside the reserved folders."""
    return key.endswith(RESULT_SUFFIX) and not is_reserved(key)


def dataset_prefix(name: str, fingerprint: str) -> str:
    """Where a dataset folder's files go: by name and content, so a changed set never mixes with an older upload."""
    return f"{DATASET_PREFIX}{slug(name, 64)}-{slug(fingerprint, 16)}/"


def similarity_part_key(run_id: str, model_index: int, rank: int) -> str:
    return f"{SIMILARITY_PREFIX}{slug(run_id, 96)}/parts/model-{model_index}/rank-{rank}.npz"


def features_key(pair: Pair, split: str, encoding: dict[str, Any]) -> str:
    """Where the image features of the pair's dataset split by the pair's model live: keyed by everything they depend
    on (model, preprocessing, dataset, split, and `encoding`: precision, device type, batch size, loader workers), so
    a cached set equals a fresh one to the bit, whichever task's pair asks."""
    identity = {"model": pair.model, "pretrained": pair.pretrained, "preprocess": pair.preprocess.as_dict(),
                "dataset": pair.dataset, "split": split, **encoding}
    digest = hashlib.sha256(json.dumps(identity, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:16]
    model = f"{slug(pair.model)}/{slug(pair.pretrained or 'none')}"
    return f"{FEATURES_PREFIX}{model}/{slug(pair.dataset)}/{slug(split)}-{digest}.safetensors"


def is_samples_key(key: str) -> bool:
    """A key that may hold the per-sample outcomes of a result: a `.samples` file outside the reserved folders."""
    return key.endswith(SAMPLES_SUFFIX) and not is_reserved(key)
