"""Command: `benchmark cancel`, stop launched jobs."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from .app import app, comma_list, console
from .launch import BackendName
from .plan import TRACKER

@app.command("cancel")
def cancel_command(
    tracker: Path = TRACKER,
    backend: BackendName = typer.Option("skypilot", "--backend", help="The backend the jobs run on."),
    shards: Optional[list[str]] = typer.Option(None, "--shard", help="Cancel only these shards (repeat or comma-separate); default: every launched or running pair."),
):
    """Cancel the jobs of launched and running pairs; their pairs become failed, so `launch --retry-failed` retries them."""
    from ..pipeline.launch import cancel

    ids = cancel(tracker, backend.value, comma_list(shards) or None)
    console().print(f"cancelled {len(ids)} job(s)" + (f": {', '.join(ids)}" if ids else ""), markup=False)
