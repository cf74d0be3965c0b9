"""Command: `benchmark models`, the OpenCLIP models of the catalog."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from ..core.errors import BenchmarkError
from ..core.jsonio import dumps_strict
from .app import app, comma_list, console
from .options import MODELS_HELP, Json
from .tables import FIGURE, Column, print_table


def _gflops(value: float | None) -> str:
    return "" if value is None else f"{value:.2f}"


def _millions(value: int | None) -> str:
    return "" if value is None else f"{value / 1e6:.1f}"


@app.command()
def models(
    patterns: Annotated[Optional[list[str]], typer.Argument(help=MODELS_HELP)] = None,
    as_json: Json = False,
    refresh: Annotated[bool, typer.Option("--refresh", help="Regenerate the snapshot from the installed open_clip.")] = False,
):
    """List OpenCLIP pretrained models with parameters, GFLOPs and preprocessing (from the shipped snapshot)."""
    from .. import catalog

    if refresh:
        _refresh_models()
    known = catalog.Catalog({}, tuple(catalog.load_models()))
    chosen = known.select_models(comma_list(patterns))
    outside = [f"{a}:{p}" if p else a for a, p in chosen if known.find_model(a, p) is None]
    if outside:
        raise BenchmarkError(f"{outside[0]} is not in the open_clip catalog (it can still be benchmarked with init --models)")
    rows = [known.find_model(*key) for key in chosen]
    if as_json:
        typer.echo(dumps_strict([{**m.to_json(), "family": m.family} for m in rows]))
        return
    print_table(
        console(), f"{len(rows)} OpenCLIP pretrained models (--json adds every field and the family)",
        [Column("model"), Column("params\n(M)", FIGURE), Column("image\nGFLOPs", FIGURE), Column("text\nGFLOPs", FIGURE),
         Column("size", FIGURE), Column("preprocess")],
        [[m.ref, _millions(m.params or m.image_params), _gflops(m.image_gflops), _gflops(m.text_gflops), m.image_size,
          f"{m.interpolation}/{m.resize_mode}"] for m in rows],
    )


def _refresh_models() -> None:
    from rich.progress import Progress

    from .. import catalog

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
