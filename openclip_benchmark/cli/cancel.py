"""Command: `benchmark cancel`, stop launched jobs."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from .app import app, comma_list, console
from .options import DEFAULT_TRACKER, BackendName, Tracker


@app.command("cancel")
def cancel_command(
    tracker: Tracker = DEFAULT_TRACKER,
    backend: Annotated[Optional[BackendName], typer.Option(
        "--backend", help="Only the jobs of this backend (default: each pair's job, through the backend that launched "
                          "it).")] = None,
    shards: Annotated[Optional[list[str]], typer.Option(
        "--shard", help="Cancel only these shards (repeat or comma-separate); default: every launched or running pair.")] = None,
):
    """Cancel the jobs of launched and running pairs; their pairs become failed, so `launch --retry-failed` retries them."""
    from ..pipeline.launch import cancel

    ids = cancel(tracker, backend.value if backend else None, comma_list(shards) or None)
    console().print(f"cancelled {len(ids)} job(s)" + (f": {', '.join(ids)}" if ids else ""), markup=False)
