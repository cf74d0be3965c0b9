"""Command: `benchmark similarity`, image-caption pairs scored one by one, with statistics, plots and recalls."""

from __future__ import annotations

from typing import Optional

import typer

from ..core.manifest import RunSettings
from .app import app, comma_list, console, load_catalog
from .own_data import DEFAULTS_ROOT, MAPPING


@app.command()
def similarity(
    models: str = typer.Option(..., "--models", "-m", help="Comma list: ARCH:TAG, local-dir:PATH, hf-hub:ORG/REPO."),
    dataset: Optional[str] = typer.Option(None, "--dataset", "-d", help="A retrieval dataset of the mapping (your "
                                          "own, or a catalog one) or a webdataset folder."),
    table: Optional[str] = typer.Option(None, "--csv", help="A table of URLs and captions: added first (`dataset "
                                        "add`), then scored."),
    name: Optional[str] = typer.Option(None, help="Name the --csv table is added under (default: its file name)."),
    url_col: str = typer.Option("url", help="--csv: column of image URLs."),
    caption_col: str = typer.Option("caption", help="--csv: column of captions."),
    root: str = typer.Option(DEFAULTS_ROOT, help="Folder of your datasets (for --csv)."),
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
    dataset_mapping: Optional[str] = MAPPING,
):
    """Score every image-caption pair of a dataset with each model: results CSV, summary, plots, recall@1/5/10."""
    from rich.table import Table

    from ..pipeline.similarity import Source, similarity as score

    source = Source(dataset=dataset, table=table, name=name, root=root, dataset_mapping=dataset_mapping,
                    url_col=url_col, caption_col=caption_col)
    rows = score(load_catalog(dataset_mapping), comma_list(models), source, out, gpus=gpus, cache_dir=cache_dir,
                 batch_size=batch_size, num_workers=num_workers, device=device, precision=precision,
                 threshold=threshold, heatmap_size=heatmap_size, seed=seed, export_embeddings=export_embeddings,
                 distractors=distractors, timeout_s=timeout)
    shown = [("mean", "mean"), ("std", "std"), ("median", "median"), ("q05", "q05"), ("q95", "q95"),
             ("share_under_threshold", f"< {threshold:g}"), ("truncated", "truncated"),
             ("image_retrieval_recall@1", "I@1"), ("image_retrieval_recall@5", "I@5"),
             ("text_retrieval_recall@1", "T@1"), ("text_retrieval_recall@5", "T@5")]
    if distractors:
        shown.append(("distractor_top_share", f"own > {distractors} distractors"))
    table_ = Table(title=f"similarity: {rows[0]['images']} images, {rows[0]['captions']} captions",
                   caption="I@k / T@k: image / text retrieval recall@k")
    table_.add_column("model", overflow="fold")
    for _, label in shown:
        table_.add_column(label, justify="right")
    for row in rows:
        ref = f"{row['model']}:{row['pretrained']}" if row["pretrained"] else row["model"]
        table_.add_row(ref, *(row[key][:6] for key, _ in shown))
    console().print(table_)
    console().print(f"written to {out}/: similarity_results.csv, similarity_summary.csv, similarity_distribution.png, "
                    "similarity_heatmap.png" + (", similarity_distractors.txt" if distractors else "")
                    + (", embeddings/" if export_embeddings else ""), highlight=False)
