"""Commands: your own image-caption data as a benchmark dataset (`dataset add|list|remove`)."""

from __future__ import annotations

from typing import Annotated

import typer

from .app import app, console
from .options import DEFAULT_OWN_ROOT, AllowPrivateUrls, CaptionColumn, OwnRoot, RegisterMapping, UrlColumn
from .tables import FIGURE, Column, print_table

dataset_app = typer.Typer(help="Your own image-caption data as a retrieval dataset (img2dataset).", no_args_is_help=True)
app.add_typer(dataset_app, name="dataset")


@dataset_app.command("add")
def add(
    name: Annotated[str, typer.Argument(help="Dataset name (its folder is ROOT/wds_NAME); not a catalog name.")],
    table: Annotated[str, typer.Option(
        "--csv", help="CSV, TSV (.tsv) or Parquet (.parquet) of image URLs and captions.")],
    url_col: UrlColumn = "url",
    caption_col: CaptionColumn = "caption",
    root: OwnRoot = DEFAULT_OWN_ROOT,
    processes: int = typer.Option(None, min=1, help="img2dataset processes (default: one per 5,000 URLs, up to 4 CPUs)."),
    threads: int = typer.Option(64, min=1, help="img2dataset download threads per process."),
    timeout: float = typer.Option(10.0, min=0.1, help="Seconds per request."),
    retries: int = typer.Option(1, min=0, help="Further tries of a failed URL."),
    max_bytes: int = typer.Option(20 * 2**20, min=1, help="Largest image body accepted."),
    shard_size: int = typer.Option(1000, min=1, help="Samples per tar shard."),
    context_length: int = typer.Option(77, min=3, help="Text context: longer captions are counted as truncated."),
    allow_private_urls: AllowPrivateUrls = False,
    dataset_mapping: RegisterMapping = None,
):
    """Fetch every image of the table and write a retrieval webdataset; a re-run fetches only what is missing. The
    mapping it registers in is written into the project's benchmark.toml (the nearest one here or above; made here
    when there is none and ROOT is inside this folder), so later commands here find the set without a flag."""
    from ..core.project import project_file_for, remember
    from ..datasets.captions import FetchOptions
    from ..pipeline.own_data import add_dataset, user_mapping

    options = FetchOptions(processes=processes, threads=threads, timeout=timeout, retries=retries,
                           max_bytes=max_bytes, shard_size=shard_size, context_length=context_length,
                           allow_private_urls=allow_private_urls)
    mapping = user_mapping(dataset_mapping, root)
    built = add_dataset(name, table, root, mapping, url_col=url_col, caption_col=caption_col, options=options)
    out = console()
    failed = sum(built.failed.values())
    out.print(f"{len(built.rows)} rows: {built.ok} ok, {failed} failed; {built.truncated} captions longer than "
              f"{context_length} tokens (open_clip truncates them)", highlight=False)
    for reason, count in built.failed.most_common():
        out.print(f"  {count:6d}  {reason}", highlight=False)
    if built.fetched:
        out.print(f"fetched {built.fetched_ok}/{built.fetched} URLs in {built.fetch_seconds:.1f} s "
                  f"({built.images_per_s:.1f} images/s)", highlight=False)
    else:
        out.print("fetched nothing: every image was already here", highlight=False)
    out.print(f"status per row: {built.status_path}", highlight=False)
    if built.folder is None:
        out.print("[red]no row gave an image: nothing written or registered[/]")
        raise typer.Exit(3)
    state = "written" if built.rebuilt else "unchanged"
    out.print(f"{built.folder} {state}: {built.images} images, {built.captions} captions; registered as {name!r} in "
              f"{mapping}", highlight=False)
    project = project_file_for(root)
    if project is None:
        out.print(f"use it: benchmark init -d {name} --dataset-mapping {mapping}  (or export BENCHMARK_DATASETS={mapping})",
                  highlight=False, markup=False)
        return
    if remember("dataset_mapping", mapping, project):
        out.print(f"{project}: dataset_mapping = {mapping}", highlight=False, markup=False)
    out.print(f"use it: benchmark init -d {name}  (the mapping is in {project}; commands here and below read it)",
              highlight=False, markup=False)


@dataset_app.command("list")
def list_(
    root: OwnRoot = DEFAULT_OWN_ROOT,
    dataset_mapping: RegisterMapping = None,
):
    """The datasets you added, with their size and folder."""
    from ..pipeline.own_data import dataset_folder, list_datasets, user_mapping

    print_table(console(), None, [Column("dataset"), Column("images", FIGURE), Column("captions/image", FIGURE),
                                  Column("folder")],
                [[spec.name, spec.size, spec.captions_per_image, dataset_folder(spec)]
                 for spec in list_datasets(user_mapping(dataset_mapping, root))])


@dataset_app.command("remove")
def remove(
    name: Annotated[str, typer.Argument(help="A dataset you added.")],
    root: OwnRoot = DEFAULT_OWN_ROOT,
    dataset_mapping: RegisterMapping = None,
):
    """Drop the dataset from the mapping and delete its webdataset, download cache and status tables."""
    from ..pipeline.own_data import remove_dataset, user_mapping

    gone = remove_dataset(name, user_mapping(dataset_mapping, root), root)
    console().print(f"removed {name}: " + (", ".join(map(str, gone)) or "no files were left"), highlight=False)


@dataset_app.command("convert")
def convert(
    kind: str = typer.Argument(..., help="sugar_crepe, winoground, xtd10, xtd200, flickr30k-200, "
                                         "multilingual_mscoco_captions or crossmodal3600."),
    source: str = typer.Option(..., "--from", help="Folder of the original files (the README lists each layout)."),
    root: str = typer.Option(DEFAULT_OWN_ROOT, help="Where the webdataset folders go (then `--dataset-root ROOT`)."),
    shard_size: int = typer.Option(1000, min=1, help="Samples per tar shard."),
):
    """A catalog dataset that has no published webdataset, written as one from the files its authors publish."""
    from ..datasets.convert import convert as convert_source

    out = console()
    for done in convert_source(kind, source, root, shard_size):
        languages = f", {len(done.languages)} languages" if done.languages else ""
        missing = f" ({done.missing_images} images missing from the source, left out)" if done.missing_images else ""
        out.print(f"{done.folder}: {done.samples} samples{languages}{missing}", highlight=False)
    out.print(f"use it: benchmark run -d <dataset> --dataset-root {root}", highlight=False, markup=False)
