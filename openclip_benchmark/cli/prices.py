"""Command: `benchmark prices`, the GPU price table."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Optional

import typer

from ..core.jsonio import dumps_strict
from .app import app, comma_choice, console
from .options import Json, Prices
from .tables import FIGURE, Column, print_table


@app.command("prices")
def prices_command(
    refresh: Annotated[bool, typer.Option("--refresh", help="Rebuild the table from SkyPilot's catalog.")] = False,
    prices: Prices = None,
    clouds: Annotated[Optional[str], typer.Option(
        "--clouds", help="Clouds to refresh (default: aws,gcp,azure,lambda,runpod).")] = None,
    as_json: Json = False,
):
    """Show the GPU price table (cheapest single-GPU offer per cloud), or refresh it from SkyPilot's catalog."""
    from ..planning import pricing

    gpu_table = pricing.load_gpus()
    path = prices or Path(str(pricing.DATA / "prices.json"))
    if refresh:
        from ..backends.prices import DEFAULT_REFRESH_CLOUDS, refresh_prices

        table = refresh_prices(path, gpu_table, comma_choice(clouds) or DEFAULT_REFRESH_CLOUDS)
    else:
        table = pricing.load_prices(path)
    offers = sorted(table.offers, key=lambda o: (o.accelerator, o.price))
    if as_json:
        gpus = {o.accelerator: gpu_table.get(o.accelerator) for o in offers}
        typer.echo(dumps_strict({
            "source": table.source, "date": table.date, "offers": [asdict(o) for o in offers],
            "gpus": {name: asdict(spec) for name, spec in gpus.items() if spec is not None},
        }))
        return
    rows = []
    for o in offers:
        g = gpu_table.get(o.accelerator)
        rows.append([
            o.accelerator, f"{g.memory_gib:g} GiB" if g else "?", f"{g.tflops:g}" if g else "?", o.cloud,
            o.instance_type, o.vcpus, "?" if o.memory_gib is None else f"{o.memory_gib:g} GiB", f"{o.price:.3f}",
            "-" if o.spot_price is None else f"{o.spot_price:.3f}",
        ])
    out = console()
    print_table(out, f"GPU prices, {table.date} ({len(table.offers)} offers)",
                [Column("GPU"), Column("memory", FIGURE), Column("TFLOP/s", FIGURE), Column("cloud"), Column("instance"),
                 Column("vCPUs", FIGURE), Column("RAM", FIGURE), Column("on demand $/h", FIGURE),
                 Column("spot $/h", FIGURE)], rows)
    out.print(f"source: {table.source}")
