"""Command: `benchmark models`, the OpenCLIP models of the catalog."""

from __future__ import annotations

from typing import Optional

import typer

from .. import catalog
from ..core.errors import BenchmarkError
from ..core.jsonio import dumps_strict
from .app import app, comma_list, console
from .tables import MODELS_HELP, _table

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
