"""`similarity` on many machines: the set in the store, each node scoring its ranks' batches into per-rank parts in
the store, and a collect step that merges the parts into the one-process outputs.

Store keys (storage.layout, reserved: never taken for results): `_datasets/<name>-<fingerprint>/...` (the webdataset
folder's files, uploaded as the job's input), `_manifests/<run>.json` (the run's manifest, as for any job), and
`_similarity/<run>/parts/model-<m>/rank-<r>.npz` (a rank's batches of model m). Node n of N with G GPUs runs the
global ranks nG .. nG+G-1 of NG, so the batches a rank encodes are those of a `--gpus NG` run.
"""

from __future__ import annotations

import hashlib
import io
import os
import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np

from ..core.errors import BenchmarkError
from ..core.manifest import SIMILARITY, Manifest
from ..evaluate import resolve_device
from ..storage.layout import dataset_prefix, manifest_key, similarity_part_key
from ..storage.store import open_store
from .outputs import write_outputs
from .score import Part, Scoring, encode_part, load_scorer, merge, rank_device, read_index, report_errors, start_local


def upload_prefix(name: str, folder: Path) -> str:
    """Where the folder's files go in the store: named by their content, so a changed set never mixes with an
    older upload."""
    files = sorted(p for p in Path(folder).rglob("*") if p.is_file())
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.relative_to(folder).as_posix().encode() + b"\0" + hashlib.sha256(path.read_bytes()).digest())
    return dataset_prefix(name, digest.hexdigest())


def fetch_dataset(store, prefix: str, dest: Path) -> Path:
    folder = Path(dest) / "dataset"
    for info in store.list(prefix):
        path = folder / info.key[len(prefix):]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(store.get(info.key))
    return folder


def read_run(store, run_id: str) -> Manifest:
    key = manifest_key(run_id)
    if not store.exists(key):
        raise BenchmarkError(f"similarity run {run_id!r} has no manifest in the store ({key})")
    manifest = Manifest.from_json(store.get(key))
    if manifest.kind != SIMILARITY:
        raise BenchmarkError(f"{run_id!r} is a {manifest.kind} job, not a similarity run")
    return manifest


def part_bytes(part: Part) -> bytes:
    buf = io.BytesIO()
    arrays = {f"{side}_{b}": arrays[i] for b, arrays in part.batches.items() for i, side in enumerate(("img", "txt"))}
    np.savez(buf, **arrays)
    return buf.getvalue()


def part_from_bytes(data: bytes) -> Part:
    with np.load(io.BytesIO(data)) as npz:
        batches = sorted(int(k.split("_")[1]) for k in npz.files if k.startswith("img_"))
        return Part({b: (npz[f"img_{b}"], npz[f"txt_{b}"]) for b in batches})


def _score_rank(scoring: Scoring, store, run_id: str, rank: int, world: int, device: str) -> None:
    index = read_index(scoring.folder)
    for m, ref in enumerate(scoring.models):
        part = encode_part(load_scorer(scoring, ref, device), index, scoring.batch_size, scoring.num_workers, rank,
                           world)
        store.put(similarity_part_key(run_id, m, rank), part_bytes(part))


def _node_rank_main(local: int, scoring: Scoring, store_url: str, endpoint_url: str | None, run_id: str, node: int,
                    gpus: int, world: int, errors: str) -> None:
    """One GPU's process on a node: opens the store itself (a client does not cross processes)."""
    device, _ = rank_device(scoring, local, gpus)
    with report_errors(errors, local):
        _score_rank(scoring, open_store(store_url, endpoint_url), run_id, node * gpus + local, world, device)


def run_node(manifest: Manifest, scoring: Scoring, store, node: int, nodes: int) -> int:
    """Node `node` of `nodes`: fetch the set, score its G ranks (one process each when G > 1), put their parts."""
    planned, gpus = manifest.options["nodes"], manifest.options["gpus_per_node"]
    if planned != nodes or not 0 <= node < nodes:
        raise BenchmarkError(f"node {node} of {nodes}, but run {manifest.shard_id} was planned for {planned} nodes")
    run_id, world = manifest.shard_id, planned * gpus
    with tempfile.TemporaryDirectory(prefix="similarity-node-") as tmp:
        scoring = replace(scoring, folder=str(fetch_dataset(store, manifest.options["prefix"], Path(tmp))), out=tmp)
        if gpus == 1:
            _score_rank(scoring, store, run_id, node, world, resolve_device(scoring.device))
        else:
            start_local(_node_rank_main, (scoring, str(store.url), getattr(store, "endpoint_url", None), run_id, node,
                                          gpus, world), gpus, scoring)
    return gpus


def collect_run(manifest: Manifest, scoring: Scoring, store, out: str | Path) -> None:
    """Every rank's parts merged and written into `out`, as a one-process run writes them."""
    run_id, world = manifest.shard_id, manifest.options["nodes"] * manifest.options["gpus_per_node"]
    with tempfile.TemporaryDirectory(prefix="similarity-collect-") as tmp:
        scoring = replace(scoring, folder=str(fetch_dataset(store, manifest.options["prefix"], Path(tmp))),
                          out=str(out))
        index, device, scored = read_index(scoring.folder), resolve_device(scoring.device), []
        for m, ref in enumerate(scoring.models):
            keys = [similarity_part_key(run_id, m, rank) for rank in range(world)]
            missing = [rank for rank, key in enumerate(keys) if not store.exists(key)]
            if missing:
                raise BenchmarkError(f"similarity run {run_id}: rank(s) {', '.join(map(str, missing))} have not written "
                                     f"their part of model {m + 1} yet (their node is still running, or failed)")
            parts = [part_from_bytes(store.get(key)) for key in keys]
            scored.append(merge(load_scorer(scoring, ref, device), index, parts, ref, scoring.name))
        write_outputs(scoring, index, scored)


def node_env() -> tuple[int, int]:
    """SkyPilot's node rank and count (a single node without them)."""
    try:
        return int(os.environ.get("SKYPILOT_NODE_RANK", "0")), int(os.environ.get("SKYPILOT_NUM_NODES", "1"))
    except ValueError:
        raise BenchmarkError("SKYPILOT_NODE_RANK and SKYPILOT_NUM_NODES must be integers") from None
