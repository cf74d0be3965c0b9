"""`similarity` on many machines: the set and a run manifest in the store, each node scoring its ranks' batches into
per-rank parts in the store, and a collect step that merges the parts into the one-process outputs.

Store keys (storage.layout, reserved: never taken for results): `_datasets/<name>-<fingerprint>/...` (the webdataset
folder's files), `_similarity/<run>/manifest.json` (the Job and the node and GPU counts), and
`_similarity/<run>/parts/model-<m>/rank-<r>.npz` (a rank's batches of model m). Node n of N with G GPUs runs the
global ranks nG .. nG+G-1 of NG, so the batches a rank encodes are those of a `--gpus NG` run.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tempfile
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np

from ..core.errors import BenchmarkError
from ..evaluate import resolve_device
from ..storage.layout import dataset_prefix, similarity_manifest_key, similarity_part_key
from ..storage.store import open_store
from .outputs import write_outputs
from .score import Job, Share, encode_share, load_scorer, merge, rank_device, read_index, report_errors, start_local


def upload_dataset(store, name: str, folder: Path) -> str:
    """Put every file of the folder under a key prefix named by its content; the prefix."""
    files = sorted(p for p in Path(folder).rglob("*") if p.is_file())
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.relative_to(folder).as_posix().encode() + b"\0" + hashlib.sha256(path.read_bytes()).digest())
    prefix = dataset_prefix(name, digest.hexdigest())
    for path in files:
        store.put(prefix + path.relative_to(folder).as_posix(), path.read_bytes())
    return prefix


def fetch_dataset(store, prefix: str, dest: Path) -> Path:
    folder = Path(dest) / "dataset"
    for info in store.list(prefix):
        path = folder / info.key[len(prefix):]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(store.get(info.key))
    return folder


def write_manifest(store, run_id: str, job: Job, prefix: str, nodes: int, gpus_per_node: int) -> str:
    manifest = {"run_id": run_id, "job": {k: v for k, v in asdict(job).items() if k not in ("folder", "out")},
                "dataset_prefix": prefix, "nodes": nodes, "gpus_per_node": gpus_per_node}
    key = similarity_manifest_key(run_id)
    store.put(key, json.dumps(manifest, indent=2).encode("utf-8"))
    return key


def read_manifest(store, run_id: str) -> dict:
    key = similarity_manifest_key(run_id)
    if not store.exists(key):
        raise BenchmarkError(f"similarity run {run_id!r} has no manifest in the store ({key})")
    manifest = json.loads(store.get(key))
    manifest["job"]["models"] = tuple(tuple(ref) for ref in manifest["job"]["models"])
    return manifest


def share_bytes(share: Share) -> bytes:
    buf = io.BytesIO()
    arrays = {f"{side}_{b}": arrays[i] for b, arrays in share.batches.items() for i, side in enumerate(("img", "txt"))}
    np.savez(buf, **arrays)
    return buf.getvalue()


def share_from_bytes(data: bytes) -> Share:
    with np.load(io.BytesIO(data)) as npz:
        batches = sorted(int(k.split("_")[1]) for k in npz.files if k.startswith("img_"))
        return Share({b: (npz[f"img_{b}"], npz[f"txt_{b}"]) for b in batches})


def _score_rank(job: Job, store, run_id: str, rank: int, world: int, device: str) -> None:
    index = read_index(job.folder)
    for m, ref in enumerate(job.models):
        share = encode_share(load_scorer(job, ref, device), index, job.batch_size, job.num_workers, rank, world)
        store.put(similarity_part_key(run_id, m, rank), share_bytes(share))


def _node_rank_main(local: int, job: Job, store_url: str, endpoint_url: str | None, run_id: str, node: int, gpus: int,
                    world: int, errors: str) -> None:
    """One GPU's process on a node: opens the store itself (a client does not cross processes)."""
    device, _ = rank_device(job, local, gpus)
    with report_errors(errors, local):
        _score_rank(job, open_store(store_url, endpoint_url), run_id, node * gpus + local, world, device)


def run_node(store, run_id: str, node: int, nodes: int) -> int:
    """Node `node` of `nodes`: fetch the set, score its G ranks (one process each when G > 1), put their parts."""
    manifest = read_manifest(store, run_id)
    if manifest["nodes"] != nodes or not 0 <= node < nodes:
        raise BenchmarkError(f"node {node} of {nodes}, but run {run_id} was planned for {manifest['nodes']} nodes")
    gpus, world = manifest["gpus_per_node"], manifest["nodes"] * manifest["gpus_per_node"]
    with tempfile.TemporaryDirectory(prefix="similarity-node-") as tmp:
        job = Job(**manifest["job"], folder=str(fetch_dataset(store, manifest["dataset_prefix"], Path(tmp))),
                  out=tmp)
        if gpus == 1:
            _score_rank(job, store, run_id, node, world, resolve_device(job.device))
        else:
            start_local(_node_rank_main, (job, str(store.url), getattr(store, "endpoint_url", None), run_id, node,
                                          gpus, world), gpus, job)
    return gpus


def collect_run(store, run_id: str, out: str | Path) -> Job:
    """Every rank's parts merged and written into `out`, as a one-process run writes them."""
    manifest = read_manifest(store, run_id)
    world = manifest["nodes"] * manifest["gpus_per_node"]
    with tempfile.TemporaryDirectory(prefix="similarity-collect-") as tmp:
        job = Job(**manifest["job"], folder=str(fetch_dataset(store, manifest["dataset_prefix"], Path(tmp))),
                  out=str(out))
        index, device, scored = read_index(job.folder), resolve_device(job.device), []
        for m, ref in enumerate(job.models):
            keys = [similarity_part_key(run_id, m, rank) for rank in range(world)]
            missing = [rank for rank, key in enumerate(keys) if not store.exists(key)]
            if missing:
                raise BenchmarkError(f"similarity run {run_id}: rank(s) {', '.join(map(str, missing))} have not written "
                                     f"their part of model {m + 1} yet (their node is still running, or failed)")
            shares = [share_from_bytes(store.get(key)) for key in keys]
            scored.append(merge(load_scorer(job, ref, device), index, shares, ref, job.name))
        write_outputs(replace(job, out=str(out)), index, scored)
    return job


def node_env() -> tuple[int, int]:
    """SkyPilot's node rank and count (a single node without them)."""
    try:
        return int(os.environ.get("SKYPILOT_NODE_RANK", "0")), int(os.environ.get("SKYPILOT_NUM_NODES", "1"))
    except ValueError:
        raise BenchmarkError("SKYPILOT_NODE_RANK and SKYPILOT_NUM_NODES must be integers") from None
