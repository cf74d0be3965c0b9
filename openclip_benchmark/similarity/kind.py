"""The similarity kind of manifest: a run's pairs (one per model, on the set), its settings and options, and what a
job of this kind runs: the whole run on this machine (its ranks here, the files into `out`), or, as one node of a
cluster job, this node's ranks' parts into the store, for `nodes.collect_run` to merge.
"""

from __future__ import annotations

from pathlib import Path

from ..core.errors import BenchmarkError
from ..core.manifest import SIMILARITY, Manifest, RunSettings
from ..core.pair import Pair
from ..tasks.zeroshot_retrieval import TASK as RETRIEVAL
from .nodes import node_env, run_node
from .score import Scoring, run_rank, run_ranks

SCORING_OPTIONS = ("threshold", "heatmap_size", "seed", "export_embeddings", "distractors", "timeout_s")
# folder: the set on the launcher's machine (a run here reads it there); prefix: its files in the store, for nodes
# elsewhere ("" where it was not uploaded); the nodes and the GPUs (ranks) of each
PLACEMENT_OPTIONS = ("folder", "prefix", "nodes", "gpus_per_node")


def similarity_manifest(run_id: str, store_url: str, scoring: Scoring, *, prefix: str, nodes: int,
                        gpus: int) -> Manifest:
    pairs = tuple(Pair(model, pretrained, scoring.name, task=RETRIEVAL.name) for model, pretrained in scoring.models)
    settings = RunSettings(batch_size=scoring.batch_size, num_workers=scoring.num_workers, precision=scoring.precision,
                           device=scoring.device, cache_dir=scoring.cache_dir)
    options = {"folder": scoring.folder, "prefix": prefix, "nodes": nodes, "gpus_per_node": gpus,
               **{name: getattr(scoring, name) for name in SCORING_OPTIONS}}
    return Manifest(shard_id=run_id, store=store_url, pairs=pairs, settings=settings, kind=SIMILARITY, options=options)


def scoring_of(manifest: Manifest, out: str | Path = "") -> Scoring:
    """What the run's ranks need, from its manifest (the set where the launcher has it)."""
    missing = [name for name in PLACEMENT_OPTIONS + SCORING_OPTIONS if name not in manifest.options]
    if missing or not manifest.pairs:
        raise BenchmarkError(f"invalid similarity manifest {manifest.shard_id}: it lacks "
                             f"{', '.join(missing) or 'pairs'}")
    s = manifest.settings
    return Scoring(manifest.pairs[0].dataset, str(manifest.options["folder"]),
                   tuple((p.model, p.pretrained) for p in manifest.pairs), str(out), batch_size=s.batch_size,
                   num_workers=s.num_workers, device=s.device, precision=s.precision, cache_dir=s.cache_dir,
                   **{name: manifest.options[name] for name in SCORING_OPTIONS})


def run_similarity(manifest: Manifest, store, out: Path | None) -> int:
    """With `out`, the whole run here (one process, or its ranks under torch.distributed); without, this node's
    share (SkyPilot's node rank and count) into the store. How many ranks ran here."""
    scoring = scoring_of(manifest, out or "")
    if out is None:
        return run_node(manifest, scoring, store, *node_env())
    gpus = manifest.options["gpus_per_node"]
    if gpus == 1:
        run_rank(scoring)
    else:
        run_ranks(scoring, gpus)
    return gpus
