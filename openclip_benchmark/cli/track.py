"""Commands: init, status, models, datasets. Thin: options in, catalog and tracker calls, a rich table or JSON out."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer

from .. import catalog
from ..core.errors import BenchmarkError
from ..core.jsonio import dumps_strict
from ..tasks import get_task
from ..tracker import STATUSES
from .app import DATASET_MAPPING, DEFAULT_TRACKER, app, comma_list, console, load_catalog

MODELS_HELP = "Repeat or comma-separate. Globs on ARCH:TAG or ARCH ('ViT-B-*'), ARCH:TAG, a tag or family ('openai', 'ViT-L'), or local-dir:/hf-hub:/ARCH:/ckpt.pt."
DATASETS_HELP = "Repeat or comma-separate. Globs, names in any clip_benchmark spelling, or collections ('vtab', 'retrieval', 'imagenet_robustness')."
TASKS_HELP = ("Repeat or comma-separate: the tasks each dataset gets among those it serves, e.g. "
              "zeroshot_classification,linear_probe,zeroshot_classification_cupl (default: each dataset's first).")
FAILED_SHOWN = 20


def _table(title: str, columns: list[str], rows: list[list[Any]], justify_right: tuple[int, ...] = ()):
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=escape(title) or None, title_justify="left")
    for i, name in enumerate(columns):
        table.add_column(name, justify="right" if i in justify_right else "left", no_wrap=i == 0)
    for row in rows:
        table.add_row(*("" if v is None else escape(str(v)) for v in row))
    return table


@app.command()
def init(
    models: Optional[list[str]] = typer.Option(None, "--models", "-m", help=MODELS_HELP),
    datasets: Optional[list[str]] = typer.Option(None, "--datasets", "-d", help=DATASETS_HELP),
    languages: Optional[list[str]] = typer.Option(None, "--languages", "-l", help="Languages, e.g. en,jp (default: en); each dataset gets the ones it has."),
    tasks: Optional[list[str]] = typer.Option(None, "--tasks", help=TASKS_HELP),
    dataset_mapping: Optional[Path] = DATASET_MAPPING,
    tracker: Path = typer.Option(Path(DEFAULT_TRACKER), "--tracker", "-t", help="The tracker CSV."),
    reset: bool = typer.Option(False, "--reset", help="Forget every tracked pair and status first."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask before --reset."),
):
    """Enumerate model x dataset pairs into the tracker, keeping the status of pairs already there."""
    from ..pipeline.track import init_tracker

    known = load_catalog(dataset_mapping)
    if reset and tracker.exists() and not yes:
        typer.confirm(f"Reset {tracker}, forgetting every status in it?", abort=True)
    done = init_tracker(tracker, known, comma_list(models), comma_list(datasets), comma_list(languages), reset,
                        comma_list(tasks))
    rows = [
        ["models", done.models],
        ["datasets", done.datasets],
        ["pairs selected", done.selected],
        ["new pairs", done.added],
        ["already tracked", done.selected - done.added],
        ["pairs in tracker", done.before + done.added],
        *[[f"  {s}", done.counts[s]] for s in STATUSES if done.counts[s]],
    ]
    out = console()
    out.print(str(tracker), markup=False)
    out.print(_table("", ["", "count"], rows, justify_right=(1,)))


def _status_tables(summary: dict[str, Any]) -> list:
    statuses = [s for s in STATUSES if summary["by_status"][s]] or ["pending"]

    def grid(title: str, key: str, first: str):
        rows = [[name, *(counts.get(s, 0) for s in statuses), sum(counts.values())] for name, counts in summary[key].items()]
        return _table(title, [first, *statuses, "total"], rows, justify_right=tuple(range(1, len(statuses) + 2)))

    totals = [[s, summary["by_status"][s]] for s in STATUSES] + [["total", summary["total"]]]
    tables = [
        _table("by status", ["status", "pairs"], totals, justify_right=(1,)),
        grid("by dataset", "by_dataset", "dataset"),
        grid("by model family", "by_family", "family"),
    ]
    failed = summary["failed"]
    if failed:
        rows = [
            [f"{f['model']}:{f['pretrained']}", f["dataset"], f["language"], f["attempts"], f["error"][:160]]
            for f in failed[:FAILED_SHOWN]
        ]
        more = f" (first {FAILED_SHOWN} of {len(failed)}; --json lists all)" if len(failed) > FAILED_SHOWN else ""
        tables.append(_table(f"failed pairs{more}", ["model", "dataset", "lang", "attempts", "error"], rows))
    return tables


@app.command()
def status(
    tracker: Path = typer.Option(Path(DEFAULT_TRACKER), "--tracker", "-t", help="The tracker CSV."),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
    no_queue: bool = typer.Option(False, "--no-queue", help="Do not read SkyPilot's job queue first."),
):
    """Summarise the tracker: counts by status, dataset and model family, and failed pairs with their reasons."""
    from ..pipeline.launch import status_summary

    summary = status_summary(tracker, poll=not no_queue)
    moved, warning = summary["queue_moved"], summary.get("queue_warning", "")
    if as_json:
        typer.echo(dumps_strict(summary))
        return
    if warning:
        typer.echo(f"warning: job queue not read ({warning}); showing the tracker as saved", err=True)
    out = console()
    out.print(f"{summary['tracker']}: {summary['total']} pairs", markup=False)
    if moved:
        out.print("job queue: " + ", ".join(f"{n} pair(s) now {s}" for s, n in sorted(moved.items())))
    for table in _status_tables(summary):
        out.print(table)


def _gflops(value: float | None) -> str:
    return "" if value is None else f"{value:.2f}"


def _millions(value: int | None) -> str:
    return "" if value is None else f"{value / 1e6:.1f}"


@app.command()
def models(
    patterns: Optional[list[str]] = typer.Argument(None, help=MODELS_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print the models as JSON."),
    refresh: bool = typer.Option(False, "--refresh", help="Regenerate the snapshot from the installed open_clip."),
):
    """List OpenCLIP pretrained models with parameters, GFLOPs and preprocessing (from the shipped snapshot)."""
    if refresh:
        _refresh_models()
    specs = catalog.load_models()
    index = {(m.arch, m.pretrained): m for m in specs}
    chosen = catalog.select_models(comma_list(patterns), specs)
    outside = [f"{a}:{p}" if p else a for a, p in chosen if (a, p) not in index]
    if outside:
        raise BenchmarkError(f"{outside[0]} is not in the open_clip catalog (it can still be benchmarked with init --models)")
    rows = [index[key] for key in chosen]
    if as_json:
        typer.echo(dumps_strict([{**m.to_json(), "family": m.family} for m in rows]))
        return
    table = _table(
        f"{len(rows)} OpenCLIP pretrained models",
        ["model", "pretrained", "family", "params (M)", "image GFLOPs", "text GFLOPs", "size", "preprocess"],
        [
            [m.arch, m.pretrained, m.family, _millions(m.params or m.image_params), _gflops(m.image_gflops),
             _gflops(m.text_gflops), m.image_size, f"{m.interpolation}/{m.resize_mode}"]
            for m in rows
        ],
        justify_right=(3, 4, 5, 6),
    )
    console().print(table)


def _refresh_models() -> None:
    from rich.progress import Progress

    old = {m.ref for m in catalog.load_models()} if catalog.MODELS_PATH.exists() else set()
    with Progress(console=console(stderr=True), transient=True) as progress:
        task = progress.add_task("importing open_clip", total=None)

        def step(arch: str) -> None:
            progress.update(task, description=f"measuring {arch}", advance=1)

        import open_clip

        from ..catalog import snapshot

        progress.update(task, total=len({a for a, _ in open_clip.list_pretrained()}), completed=0)
        built = snapshot.build_model_catalog(progress=step)
    path = snapshot.write_model_catalog(built, catalog.MODELS_PATH)
    new = {m.ref for m in built}
    console(stderr=True).print(
        f"wrote {path}: {len(built)} models ({len(new - old)} added, {len(old - new)} removed)"
    )


@app.command()
def datasets(
    patterns: Optional[list[str]] = typer.Argument(None, help=DATASETS_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print the datasets as JSON."),
    dataset_mapping: Optional[Path] = DATASET_MAPPING,
):
    """List benchmark datasets: webdataset, tasks, test-split size, classes, main metric, collections, languages."""
    rows = load_catalog(dataset_mapping).select_datasets(comma_list(patterns))
    if as_json:
        typer.echo(dumps_strict([s.to_json() for s in rows]))
        return
    table = _table(
        f"{len(rows)} datasets",
        ["dataset", "task", "test size", "classes", "metric", "collections", "languages"],
        [
            [s.name, s.task.removeprefix("zeroshot_") + "".join(f" +{get_task(t).label or t}" for t in s.tasks[1:]), s.size, s.num_classes or (f"{s.captions_per_image} capt." if s.captions_per_image else ""),
             s.metric, ", ".join(s.collections), ", ".join(s.languages)]
            for s in rows
        ],
        justify_right=(2, 3),
    )
    console().print(table)
