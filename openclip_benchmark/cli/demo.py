"""Command: `benchmark demo`, the offline tour."""

from __future__ import annotations

import shlex
from typing import Annotated

import typer

from .app import app, console
from .tables import FIGURE, Column, print_table


@app.command()
def demo(
    workdir: Annotated[str, typer.Option(help="Working folder: new, or a previous demo's (which is replaced).")] = "demo",
    images: Annotated[int, typer.Option(help="Images per synthetic dataset (at least 10).")] = 64,
    keep: Annotated[bool, typer.Option(
        "--keep/--clean", help="Keep the working folder to inspect, or delete it when done.")] = True,
):
    """Offline tour: synthetic webdatasets and two tiny models through init, plan, a local run, parse and report."""
    from ..demo import remove_workdir, run_demo

    result = run_demo(workdir, images=images, say=lambda line: console(stderr=True).print(line, highlight=False))
    print_demo(result, kept=keep)
    if not keep:
        remove_workdir(result.layout)
    raise typer.Exit(result.exit_code)


def print_demo(result, kept: bool = True) -> None:
    """The metric table (models x datasets, each dataset's main metric), then what is where and what to try next."""
    from ..demo import DEMO_DATASETS, DEMO_MODELS, parity_command, shown

    out = console()
    datasets = list(dict.fromkeys((r["dataset"], r["metric"]) for r in result.rows))
    values = {(r["model"], r["dataset"]): r["value"] for r in result.rows}
    print_table(
        out, f"demo: {len(result.rows)} pairs in {result.shards} shard(s), {result.seconds:.0f} s",
        [Column("model"), *(Column(f"{dataset}\n{metric}", FIGURE) for dataset, metric in datasets)],
        [[model, *("—" if values.get((model, d)) is None else f"{values[(model, d)]:.4f}" for d, _ in datasets)]
         for model in dict.fromkeys(r["model"] for r in result.rows)],
    )
    w = result.layout
    if not kept:
        out.print(f"{shown(w.workdir)} removed (--clean); run with --keep to inspect its files")
        return
    out.print(f"\n[bold]Everything is in {shown(w.workdir)}[/bold]")
    print_table(out, None, [Column("path"), Column("what", "text", style="dim")], [
        (shown(path), what) for path, what in (
            (w.mapping, "the demo's datasets, in the format of the top-level dataset_mapping.json"),
            (w.datasets, "synthetic webdatasets in clip_benchmark's layout (wds_<name>/test/*.tar)"),
            (w.models, "two tiny OpenCLIP models for open_clip's local-dir: loader"),
            (w.tracker, "the tracker: one row per pair, its status, shard and estimates"),
            (w.results, "result JSONs; the shard manifests under _manifests/"),
            (w.workdir / "leaderboard.csv", "also classification_metrics.csv, retrieval_metrics.csv"),
            (w.report / "index.html", "the HTML report with its plots"),
        )], show_header=False)
    shapes, model = DEMO_DATASETS[0].name, f"local-dir:{shown(w.models / DEMO_MODELS[0][0])}"
    out.print("\n[bold]Try next[/bold]")
    for command in (
        f"benchmark status --tracker {shown(w.tracker)}",
        f"benchmark run --models {model} --datasets {shapes} --dataset-root {shown(w.datasets)} "
        f"--store {shown(w.results)} --tracker {shown(w.tracker)}   # resumes: the result exists, nothing runs",
        f"benchmark report --results {shown(w.results)} --metrics {shown(w.workdir)} --tracker {shown(w.tracker)} "
        f"--out {shown(w.report)}",
        f"{shlex.join(parity_command(result))}   # clip_benchmark itself: the same acc1",
    ):
        out.print(f"  {command}", soft_wrap=True, highlight=False, markup=False)
