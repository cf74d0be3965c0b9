"""Command: publish (the leaderboard, metric CSVs and report page -> a Hugging Face dataset repo)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from .app import DATASET_MAPPING, DEFAULT_RESULTS, app, console, load_catalog


@app.command()
def publish(
    repo_id: str = typer.Argument(..., help="The dataset repo, owner/name (made if it does not exist).", show_default=False),
    metrics: Path = typer.Option(Path("."), "--metrics", help="folder of the metric CSVs (written by `benchmark parse`)"),
    report: Path = typer.Option(Path("report"), "--report", help="folder of the report page (left out when absent)"),
    results: Path = typer.Option(Path(DEFAULT_RESULTS), "--results", help="result JSONs: what ran, with which versions"),
    private: bool = typer.Option(False, "--private", help="make the repo private (an existing repo keeps its visibility)"),
    endpoint: Optional[str] = typer.Option(None, "--endpoint", envvar="HF_ENDPOINT", show_envvar=True,
                                           help="the Hub's URL (a mirror); default: huggingface.co"),
    dry_run: bool = typer.Option(False, "--dry-run", help="list what would be uploaded and deleted; change nothing"),
    dataset_mapping: Optional[Path] = DATASET_MAPPING,
):
    """Upload the leaderboard (Parquet and CSV), the metric CSVs with their intervals and the report page to a Hugging
    Face dataset repo, with a dataset card (what was run, with which versions, how to reproduce it). Only files whose
    content differs from the repo's are sent, in one commit. The token comes from $HF_TOKEN."""
    from rich.markup import escape
    from rich.table import Table

    from ..pipeline.collect import publish as publish_files

    outcome = publish_files(repo_id, metrics, report, results, load_catalog(dataset_mapping), private=private,
                            endpoint=endpoint, dry_run=dry_run)
    verb = "would be" if outcome.dry_run else "were"
    table = Table(title=f"publish -> {escape(outcome.url)}" + (" (dry run)" if outcome.dry_run else ""))
    for name, justify in (("file", "left"), ("change", "left"), ("bytes", "right")):
        table.add_column(name, justify=justify)
    for change in outcome.changes:
        table.add_row(escape(change.path), change.state, f"{change.size:,}")
    out = console()
    if outcome.changes:
        out.print(table)
    out.print(f"{len(outcome.changes)} files {verb} changed, {len(outcome.unchanged)} unchanged"
              + (f"; commit {outcome.commit}" if outcome.commit else ""), highlight=False)
