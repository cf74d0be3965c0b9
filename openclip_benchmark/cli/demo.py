"""Command: `benchmark demo`, the offline tour."""

from __future__ import annotations

import typer

from .app import app, console

@app.command()
def demo(
    workdir: str = typer.Option("demo", help="Working folder: new, or a previous demo's (which is replaced)."),
    images: int = typer.Option(64, help="Images per synthetic dataset (at least 10)."),
    keep: bool = typer.Option(True, "--keep/--clean", help="Keep the working folder to inspect, or delete it when done."),
):
    """Offline tour: synthetic webdatasets and two tiny models through init, plan, a local run, parse and report."""
    from ..demo import print_demo, remove_workdir, run_demo

    result = run_demo(workdir, images=images, say=lambda line: console(stderr=True).print(line, highlight=False))
    print_demo(result, console(), kept=keep)
    if not keep:
        remove_workdir(result.layout)
    raise typer.Exit(result.exit_code)
