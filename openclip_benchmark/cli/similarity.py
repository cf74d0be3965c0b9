"""Command: `benchmark similarity`, image-caption pairs scored one by one, with statistics, plots and recalls."""

from __future__ import annotations

from typing import Optional

import typer

from ..core.manifest import RunSettings
from ..core.paths import check_output_folder
from .app import app, comma_list, console, load_catalog
from .own_data import ALLOW_PRIVATE_URLS, DEFAULTS_ROOT, MAPPING


@app.command()
def similarity(
    models: Optional[str] = typer.Option(None, "--models", "-m", help="Comma list: ARCH:TAG, local-dir:PATH, "
                                         "hf-hub:ORG/REPO (not with --collect)."),
    dataset: Optional[str] = typer.Option(None, "--dataset", "-d", help="A retrieval dataset of the mapping (your "
                                          "own, or a catalog one) or a webdataset folder."),
    table: Optional[str] = typer.Option(None, "--csv", help="A table of URLs and captions: added first (`dataset "
                                        "add`), then scored."),
    name: Optional[str] = typer.Option(None, help="Name the --csv table is added under (default: its file name)."),
    url_col: str = typer.Option("url", help="--csv: column of image URLs."),
    caption_col: str = typer.Option("caption", help="--csv: column of captions."),
    root: str = typer.Option(DEFAULTS_ROOT, help="Folder of your datasets (for --csv)."),
    allow_private_urls: bool = ALLOW_PRIVATE_URLS,
    out: str = typer.Option("similarity", help="Output folder."),
    threshold: float = typer.Option(0.2, help="The summary counts the share of pairs under this cosine similarity."),
    heatmap_size: int = typer.Option(16, help="Images in the heatmap's seeded sample."),
    seed: int = typer.Option(0, help="Seed of the heatmap sample and the distractor draws."),
    export_embeddings: bool = typer.Option(False, help="Write float16 embeddings and Parquet metadata "
                                           "(clip-retrieval's layout) under OUT/embeddings/."),
    distractors: int = typer.Option(0, help="Validation mode: each image against its captions and K random others, "
                                    "dumped to similarity_distractors.txt."),
    gpus: int = typer.Option(1, help="torch.distributed ranks on this machine: GPUs (NCCL), or CPU processes (gloo) "
                             "without CUDA."),
    batch_size: int = typer.Option(64),
    num_workers: int = typer.Option(2, min=0, help="Image decoding workers per rank."),
    precision: str = typer.Option("auto", help="auto, fp32, amp, amp_bf16; auto = amp on GPU, fp32 on CPU."),
    device: str = typer.Option("auto", help="auto, cpu, cuda."),
    cache_dir: str = typer.Option(RunSettings.cache_dir, help="Where weights and catalog datasets are cached."),
    timeout: float = typer.Option(3600.0, min=1, help="Seconds the ranks may take (a rank that dies ends all)."),
    backend: str = typer.Option("local", help="local (this machine), or skypilot (--nodes machines)."),
    nodes: int = typer.Option(1, help="skypilot: machines, each scoring its ranks' share into the store."),
    gpus_per_node: int = typer.Option(1, help="skypilot: GPUs per machine (one rank each)."),
    gpu: str = typer.Option("L4", help="skypilot: the GPU type."),
    spot: bool = typer.Option(False, "--spot/--on-demand", help="skypilot: spot instances."),
    store: Optional[str] = typer.Option(None, help="skypilot: the bucket (s3://bucket/prefix) for the set and parts."),
    endpoint_url: Optional[str] = typer.Option(None, help="S3 endpoint (Cloudflare R2); default $R2_ENDPOINT_URL."),
    dry_run: bool = typer.Option(False, "--dry-run", help="skypilot: render and validate the task, send nothing."),
    collect: Optional[str] = typer.Option(None, help="Merge the parts of this skypilot RUN id from --store into --out."),
    dataset_mapping: Optional[str] = MAPPING,
):
    """Score every image-caption pair of a dataset with each model: results CSV, summary, plots, recall@1/5/10."""
    from ..core.errors import BenchmarkError
    from ..datasets.captions import FetchOptions
    from ..pipeline import similarity as use_case

    check_output_folder(out, "--out")
    if (backend == "skypilot" or collect) and not store:
        raise BenchmarkError("--backend skypilot and --collect need --store s3://bucket/prefix")
    if collect:
        _print_summary(use_case.collect_similarity(store, endpoint_url, collect, out), out)
        return
    source = use_case.Source(dataset=dataset, table=table, name=name, root=root, dataset_mapping=dataset_mapping,
                             url_col=url_col, caption_col=caption_col,
                             options=FetchOptions(allow_private_urls=allow_private_urls))
    settings = dict(batch_size=batch_size, num_workers=num_workers, precision=precision, threshold=threshold,
                    heatmap_size=heatmap_size, seed=seed, export_embeddings=export_embeddings,
                    distractors=distractors, timeout_s=timeout)
    catalog, refs = load_catalog(dataset_mapping), comma_list(models)
    if backend == "skypilot":
        done = use_case.launch_similarity(catalog, refs, source, store_url=store, endpoint_url=endpoint_url,
                                          nodes=nodes, gpus_per_node=gpus_per_node, gpu=gpu, spot=spot,
                                          dry_run=dry_run, work_dir=out, cache_dir=cache_dir, **settings)
        out_ = console()
        out_.print(f"run {done.run_id}: task {done.rendered} ({nodes} x {gpu}:{gpus_per_node})", highlight=False)
        if done.job_id is None:
            out_.print("dry run: validated by SkyPilot's schema, nothing uploaded or sent", highlight=False)
        else:
            out_.print(f"submitted as job {done.job_id}; when it ends: benchmark similarity --collect "
                       f"{done.run_id} --store {store} --out {out}", highlight=False, markup=False)
        return
    if backend != "local":
        raise BenchmarkError(f"unknown backend {backend!r}; choose local or skypilot")
    _print_summary(use_case.similarity(catalog, refs, source, out, gpus=gpus, cache_dir=cache_dir, device=device,
                                       **settings), out)


def _print_summary(rows: list[dict[str, str]], out: str) -> None:
    from rich.table import Table

    from ..similarity.outputs import DISTRACTOR_COLUMN

    shown = [("mean", "mean"), ("std", "std"), ("median", "median"),
             ("share_under_threshold", f"< {float(rows[0]['threshold']):g}"), ("truncated", "truncated"),
             ("image_retrieval_recall@1", "I@1"), ("image_retrieval_recall@5", "I@5"),
             ("text_retrieval_recall@1", "T@1"), ("text_retrieval_recall@5", "T@5")]
    distractors = DISTRACTOR_COLUMN in rows[0]
    if distractors:
        shown.append((DISTRACTOR_COLUMN, "own > distractors"))
    table = Table(title=f"similarity: {rows[0]['images']} images, {rows[0]['captions']} captions",
                  caption="I@k / T@k: image / text retrieval recall@k")
    table.add_column("model", overflow="fold")
    for _, label in shown:
        table.add_column(label, justify="right")
    for row in rows:
        ref = f"{row['model']}:{row['pretrained']}" if row["pretrained"] else row["model"]
        table.add_row(ref, *(row[key][:6] for key, _ in shown))
    console().print(table)
    console().print(f"written to {out}/: similarity_results.csv, similarity_summary.csv, similarity_distribution.png, "
                    "similarity_heatmap.png" + (", similarity_distractors.txt" if distractors else ""), highlight=False)


@app.command("similarity-node", hidden=True)
def similarity_node(
    store: str = typer.Option(..., envvar="SIMILARITY_STORE", help="The run's store."),
    run: str = typer.Option(..., envvar="SIMILARITY_RUN", help="The run id."),
    endpoint_url: Optional[str] = typer.Option(None, help="S3 endpoint (Cloudflare R2); default $R2_ENDPOINT_URL."),
):
    """What each node of a skypilot similarity task runs (node rank and count from SkyPilot's environment)."""
    from ..pipeline.similarity import similarity_node as run_node

    ranks = run_node(store, endpoint_url, run)
    console().print(f"run {run}: this node's {ranks} rank(s) wrote their parts", highlight=False)
