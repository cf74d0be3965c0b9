"""Command: `benchmark publish`, the leaderboard, metric CSVs and report page -> a Hugging Face dataset repo."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from .app import app, console, load_catalog
from .options import DEFAULT_RESULTS, DatasetMapping, Results
from .tables import FIGURE, Column, print_table


@app.command()
def publish(
    repo_id: Annotated[str, typer.Argument(
        help="The dataset repo, owner/name (made if it does not exist).", show_default=False)],
    metrics: Annotated[Path, typer.Option(
        "--metrics", help="folder of the metric CSVs (written by `benchmark parse`)")] = Path("."),
    report: Annotated[Path, typer.Option(
        "--report", help="folder of the report page (left out when absent)")] = Path("report"),
    results: Results = DEFAULT_RESULTS,
    private: Annotated[bool, typer.Option(
        "--private", help="make the repo private (an existing repo keeps its visibility)")] = False,
    endpoint: Annotated[Optional[str], typer.Option(
        "--endpoint", envvar="HF_ENDPOINT", show_envvar=True,
        help="the Hub's URL (a mirror); default: huggingface.co")] = None,
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", help="list what would be uploaded and deleted; change nothing")] = False,
    dataset_mapping: DatasetMapping = None,
):
    """Upload the leaderboard (Parquet and CSV), the metric CSVs with their intervals and the report page to a Hugging
    Face dataset repo, with a dataset card (what was run, with which versions, how to reproduce it). Only files whose
    content differs from the repo's are sent, in one commit. The token comes from $HF_TOKEN."""
    from ..pipeline.collect import publish as publish_files

    outcome = publish_files(repo_id, metrics, report, results, load_catalog(dataset_mapping), private=private,
                            endpoint=endpoint, dry_run=dry_run)
    verb = "would be" if outcome.dry_run else "were"
    out = console()
    if outcome.changes:
        print_table(out, f"publish -> {outcome.url}" + (" (dry run)" if outcome.dry_run else ""),
                    [Column("file"), Column("change"), Column("bytes", FIGURE)],
                    [[change.path, change.state, f"{change.size:,}"] for change in outcome.changes])
    out.print(f"{len(outcome.changes)} files {verb} changed, {len(outcome.unchanged)} unchanged"
              + (f"; commit {outcome.commit}" if outcome.commit else ""), highlight=False)
