"""Cached image features in the store (`_features/`, see layout.features_key): one dataset split encoded by one
model, as safetensors bytes (any dtype, bf16 included; no pickle). A linear probe's train and test features are kept
so that a re-run, or a sweep with other settings, never encodes them again. torch and safetensors load inside the
functions."""

from __future__ import annotations

import logging

from .store import TransientStoreError

log = logging.getLogger(__name__)


def features_bytes(features, targets) -> bytes:
    from safetensors.torch import save

    return save({"features": features.contiguous(), "targets": targets.contiguous()})


def put_features(store, key: str, features, targets) -> None:
    store.put(key, features_bytes(features, targets))


def get_features(store, key: str):
    """(features, targets) on the CPU, or None where the store has none or an unreadable object (encoded anew)."""
    from safetensors.torch import load

    if not store.exists(key):
        return None
    try:
        tensors = load(store.get(key))
        return tensors["features"], tensors["targets"]
    except TransientStoreError:
        raise
    except Exception as exc:  # noqa: BLE001 - a damaged cache costs an encoding pass, never the pair
        log.warning("cached features %s unreadable (%s: %s); encoding again", key, type(exc).__name__, exc)
        return None
