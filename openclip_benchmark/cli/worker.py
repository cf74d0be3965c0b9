"""Command: `benchmark worker`, run one shard of a plan (what a job runs)."""

from __future__ import annotations

from typing import Optional

import typer

from .app import app
from .run import _print_report

@app.command()
def worker(
    manifest: str = typer.Option(..., envvar="MANIFEST_URL", help="Shard manifest: a path or s3://bucket/key."),
    store: Optional[str] = typer.Option(None, help="Write results here instead of the manifest's store."),
    endpoint_url: Optional[str] = typer.Option(None, help="S3 endpoint (Cloudflare R2); default $R2_ENDPOINT_URL."),
    progress: bool = typer.Option(True, help="Show progress bars."),
):
    """Run one shard: exit 0 when every pair succeeded, 3 when some failed, 75 when a retry may help."""
    from ..pipeline.run import run_manifest

    report = run_manifest(manifest, store_url=store, endpoint_url=endpoint_url, progress=progress)
    _print_report(report)
    raise typer.Exit(report.exit_code)
