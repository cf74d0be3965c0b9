"""Command: `benchmark worker`, run one shard of a plan (what a job runs)."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from .app import app
from .options import EndpointUrl, Progress
from .run import print_shard_report


@app.command()
def worker(
    manifest: Annotated[str, typer.Option(envvar="MANIFEST_URL", help="Shard manifest: a path or s3://bucket/key.")],
    store: Annotated[Optional[str], typer.Option(help="Write results here instead of the manifest's store.")] = None,
    endpoint_url: EndpointUrl = None,
    progress: Progress = True,
):
    """Run one shard: exit 0 when every pair succeeded, 3 when some failed, 75 when a retry may help."""
    from ..pipeline.run import run_manifest

    report = run_manifest(manifest, store_url=store, endpoint_url=endpoint_url, progress=progress)
    print_shard_report(report)
    raise typer.Exit(report.exit_code)
