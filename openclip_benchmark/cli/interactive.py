"""Commands: `benchmark interactive up|down`, the interactive cluster."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from .app import app, console

interactive_app = typer.Typer(help="The interactive cluster of configs/interactive.yaml (autostops when idle).", no_args_is_help=True)
app.add_typer(interactive_app, name="interactive")
CLUSTER = typer.Option("interactive", "--cluster", help="Cluster name.")


@interactive_app.command("up")
def interactive_up_command(
    cluster: str = CLUSTER,
    idle_minutes: int = typer.Option(30, "--idle-minutes", min=1, help="Autostop after this many idle minutes."),
    config: Optional[Path] = typer.Option(None, "--config", help="Cluster YAML (default: configs/interactive.yaml)."),
):
    """Start (or reuse) the interactive cluster, then print how to run a pair by hand on it."""
    from ..backends import interactive

    interactive.interactive_up(cluster, idle_minutes, config or interactive.INTERACTIVE)
    console().print(
        f"cluster {cluster} is up (autostop after {idle_minutes} idle minutes). Run a pair by hand:\n"
        f"  ssh {cluster}\n"
        "  cd ~/sky_workdir && uv run benchmark run --models ViT-B-32:openai --datasets cifar10\n"
        f"Stop it with: benchmark interactive down --cluster {cluster}"
    )


@interactive_app.command("down")
def interactive_down_command(cluster: str = CLUSTER):
    """Tear the interactive cluster down."""
    from ..backends import interactive

    interactive.interactive_down(cluster)
    console().print(f"cluster {cluster} is down")
