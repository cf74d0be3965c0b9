"""Commands: `benchmark pool up|down`, SkyPilot pools of warm workers."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from .app import app, console

pool_app = typer.Typer(help="SkyPilot pools of warm workers (configs/pool.yaml).", no_args_is_help=True)
app.add_typer(pool_app, name="pool")


@pool_app.command("up")
def pool_up_command(
    name: str = typer.Argument(..., help="Pool name."),
    workers: Optional[int] = typer.Option(None, "--workers", min=1, help="Workers (default: the YAML's pool.workers)."),
    config: Optional[Path] = typer.Option(None, "--config", help="Pool YAML (default: configs/pool.yaml)."),
):
    """Create or update a pool; then `benchmark launch --pool NAME` runs shards on its warm workers."""
    from ..backends import pools

    pools.pool_up(name, config or pools.POOL, workers)
    console().print(f"pool {name} applied; launch into it with: benchmark launch --pool {name}")


@pool_app.command("down")
def pool_down_command(name: str = typer.Argument(..., help="Pool name.")):
    """Delete a pool and its workers."""
    from ..backends import pools

    pools.pool_down(name)
    console().print(f"pool {name} is down")
