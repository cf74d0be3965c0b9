"""Command: `benchmark prices`, the GPU price table."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from .app import app, console
from .plan import _csv

@app.command("prices")
def prices_command(
    refresh: bool = typer.Option(False, "--refresh", help="Rebuild the table from SkyPilot's catalog."),
    prices: Optional[Path] = typer.Option(None, "--prices", help="Price table JSON (default: the shipped snapshot)."),
    clouds: Optional[str] = typer.Option(None, "--clouds", help="Clouds to refresh (default: aws,gcp,azure,lambda,runpod)."),
):
    """Show the GPU price table (cheapest single-GPU offer per cloud), or refresh it from SkyPilot's catalog."""
    from rich.table import Table

    from ..planning import pricing

    gpu_table = pricing.load_gpus()
    path = prices or Path(str(pricing.DATA / "prices.json"))
    if refresh:
        from ..backends.skypilot import DEFAULT_REFRESH_CLOUDS, refresh_prices

        table = refresh_prices(path, gpu_table, _csv(clouds) or DEFAULT_REFRESH_CLOUDS)
    else:
        table = pricing.load_prices(path)
    out = Table(title=f"GPU prices, {table.date} ({len(table.offers)} offers)")
    for col in ("GPU", "memory", "TFLOP/s", "cloud", "instance", "vCPUs", "RAM", "on demand $/h", "spot $/h"):
        out.add_column(col)
    for o in sorted(table.offers, key=lambda o: (o.accelerator, o.price)):
        g = gpu_table.get(o.accelerator)
        out.add_row(
            o.accelerator, f"{g.memory_gib:g} GiB" if g else "?", f"{g.tflops:g}" if g else "?", o.cloud,
            o.instance_type, str(o.vcpus), "?" if o.memory_gib is None else f"{o.memory_gib:g} GiB", f"{o.price:.3f}", "-" if o.spot_price is None else f"{o.spot_price:.3f}",
        )
    c = console()
    c.print(out)
    c.print(f"source: {table.source}")
