"""Command: `benchmark similarity`, image-caption pairs scored one by one, with statistics, plots and recalls."""

from __future__ import annotations

from typing import Optional

import typer

from ..core.paths import check_output_folder
from .app import app, comma_list, console, load_catalog
from .options import (DEFAULT_BATCH_SIZE, DEFAULT_CACHE_DIR, DEFAULT_OWN_ROOT, AllowPrivateUrls, Backend, BatchSize,
                      CacheDir, CaptionColumn, DeviceOption, EndpointUrl, Models, NumWorkers, OwnRoot, PrecisionOption,
                      RegisterMapping, Spot, Store, UrlColumn)
from .tables import FIGURE, Column, print_table


@app.command()
def similarity(
    models: Models = None,
    dataset: Optional[str] = typer.Option(None, "--dataset", "-d", help="A retrieval dataset of the mapping (your "
                                          "own, or a catalog one) or a webdataset folder."),
    table: Optional[str] = typer.Option(None, "--csv", help="A table of URLs and captions: added first (`dataset "
                                        "add`), then scored."),
    name: Optional[str] = typer.Option(None, help="Name the --csv table is added under (default: its file name)."),
    url_col: UrlColumn = "url",
    caption_col: CaptionColumn = "caption",
    root: OwnRoot = DEFAULT_OWN_ROOT,
    allow_private_urls: AllowPrivateUrls = False,
    out: str = typer.Option("similarity", help="Output folder."),
    threshold: float = typer.Option(0.2, help="The summary counts the share of pairs under this cosine similarity."),
    heatmap_size: int = typer.Option(16, help="Images in the heatmap's seeded sample."),
    seed: int = typer.Option(0, help="Seed of the heatmap sample and the distractor draws."),
    export_embeddings: bool = typer.Option(False, help="Write float16 embeddings and Parquet metadata "
                                           "(clip-retrieval's layout) under OUT/embeddings/."),
    distractors: int = typer.Option(0, help="Validation mode: each image against its captions and K random others, "
                                    "dumped to similarity_distractors.txt."),
    gpus: int = typer.Option(1, "--gpus", "--gpus-per-node", help="GPUs per machine, one rank each: "
                             "torch.distributed ranks here (NCCL; gloo CPU processes without CUDA), or per node."),
    batch_size: BatchSize = DEFAULT_BATCH_SIZE,
    num_workers: NumWorkers = 2,
    precision: PrecisionOption = "auto",
    device: DeviceOption = "auto",
    cache_dir: CacheDir = DEFAULT_CACHE_DIR,
    timeout: float = typer.Option(3600.0, min=1, help="Seconds the ranks may take (a rank that dies ends all)."),
    backend: Backend = "local",
    nodes: int = typer.Option(1, help="skypilot: machines, each scoring its ranks' share into the store."),
    gpu: str = typer.Option("L4", help="skypilot: the GPU type."),
    spot: Spot = False,
    store: Store = None,
    endpoint_url: EndpointUrl = None,
    dry_run: bool = typer.Option(False, "--dry-run", help="skypilot: render and validate the task, send nothing."),
    collect: Optional[str] = typer.Option(None, help="Merge the parts of this skypilot RUN id from --store into --out."),
    dataset_mapping: RegisterMapping = None,
):
    """Score every image-caption pair of a dataset with each model: results CSV, summary, plots, recall@1/5/10."""
    from ..datasets.captions import FetchOptions
    from ..pipeline import similarity as use_case

    check_output_folder(out, "--out")
    if collect:
        done = use_case.collect_similarity(store, endpoint_url, collect, out)
    else:
        source = use_case.Source(dataset=dataset, table=table, name=name, root=root, dataset_mapping=dataset_mapping,
                                 url_col=url_col, caption_col=caption_col,
                                 options=FetchOptions(allow_private_urls=allow_private_urls))
        done = use_case.similarity(
            load_catalog(dataset_mapping), comma_list(models), source, out, backend=backend.value, gpus=gpus, nodes=nodes,
            gpu=gpu, spot=spot, store_url=store, endpoint_url=endpoint_url, dry_run=dry_run, cache_dir=cache_dir,
            batch_size=batch_size, num_workers=num_workers, precision=precision, device=device, threshold=threshold,
            heatmap_size=heatmap_size, seed=seed, export_embeddings=export_embeddings, distractors=distractors,
            timeout_s=timeout,
        )
    if done.rows:
        _print_summary(done.rows, out)
        return
    shown = console()
    for note in done.notes:
        shown.print(note, markup=False)
    if done.job_id is None:
        shown.print(f"run {done.run_id}: dry run, nothing uploaded or sent", highlight=False, markup=False)
    else:
        shown.print(f"run {done.run_id}: submitted as job {done.job_id} ({nodes} x {gpu}:{gpus}), its task in {out}/; "
                    f"when it ends: benchmark similarity --collect {done.run_id} --store {store} --out {out}",
                    highlight=False, markup=False)


def _print_summary(rows: list[dict[str, str]], out: str) -> None:
    """Two tables, so each fits 80 columns: the similarity distribution, then the set's retrieval recalls."""
    from ..similarity.outputs import DISTRACTOR_COLUMN

    distribution = [("mean", "mean"), ("std", "std"), ("median", "median"),
                    ("share_under_threshold", f"< {float(rows[0]['threshold']):g}"), ("truncated", "truncated")]
    recalls = [("image_retrieval_recall@1", "I@1"), ("image_retrieval_recall@5", "I@5"),
               ("text_retrieval_recall@1", "T@1"), ("text_retrieval_recall@5", "T@5")]
    distractors = DISTRACTOR_COLUMN in rows[0]
    if distractors:
        recalls.append((DISTRACTOR_COLUMN, "own > distractors"))
    for title, shown, caption in (
        (f"similarity: {rows[0]['images']} images, {rows[0]['captions']} captions", distribution, None),
        ("retrieval over the set", recalls, "I@k / T@k: image / text retrieval recall@k"),
    ):
        print_table(console(), title, [Column("model"), *(Column(label, FIGURE) for _, label in shown)],
                    [[f"{row['model']}:{row['pretrained']}" if row["pretrained"] else row["model"],
                      *(row[key][:6] for key, _ in shown)] for row in rows], caption=caption)
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
