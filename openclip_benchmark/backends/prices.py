"""GPU prices from SkyPilot's catalog: the single-GPU offers of each cloud, written as the planner's price table."""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

from ..core.errors import BenchmarkError
from ..core.jsonio import atomic_write_json
from ..planning.pricing import Offer, PriceTable

DEFAULT_REFRESH_CLOUDS = ("aws", "gcp", "azure", "lambda", "runpod")


def fetch_offers(gpus: Iterable[str], clouds: Iterable[str] = DEFAULT_REFRESH_CLOUDS) -> list[Offer]:
    """Single-GPU offers from SkyPilot's catalog (which fetches its hosted CSVs); clouds it cannot read are skipped."""
    import sky.catalog

    wanted = set(gpus)
    offers: list[Offer] = []
    errors: list[str] = []
    for cloud in clouds:
        try:
            listing = sky.catalog.list_accelerators(gpus_only=True, clouds=cloud, require_price=True)
        except Exception as exc:  # a cloud whose catalog cannot be fetched
            errors.append(f"{cloud}: {type(exc).__name__}: {exc}")
            continue
        for name, infos in listing.items():
            if name not in wanted:
                continue
            for info in infos:
                if info.accelerator_count != 1 or info.price is None:
                    continue
                spot = info.spot_price if info.spot_price and info.spot_price == info.spot_price else None
                offers.append(
                    Offer(
                        cloud=str(info.cloud).lower(),
                        instance_type=str(info.instance_type or ""),
                        accelerator=name,
                        count=1,
                        vcpus=int(info.cpu_count or 4),
                        price=float(info.price),
                        spot_price=float(spot) if spot else None,
                        region=str(info.region or ""),
                        memory_gib=float(info.memory) if info.memory else None,
                    )
                )
    if not offers:
        detail = "; ".join(errors)[:300] or "no single-GPU offers for the known GPUs"
        raise BenchmarkError(f"SkyPilot's catalog is unreachable ({detail}); kept the current price table")
    return offers


def refresh_prices(path: str | Path, gpus: Iterable[str], clouds: Iterable[str] = DEFAULT_REFRESH_CLOUDS) -> PriceTable:
    """Rebuild the price table from SkyPilot's catalog and write it atomically; on failure the old file stays."""
    from datetime import date

    import sky

    offers = sorted(fetch_offers(gpus, clouds), key=lambda o: (o.accelerator, o.cloud, o.price, o.instance_type))
    table = PriceTable(
        source=f"SkyPilot {sky.__version__} catalog (sky.catalog.list_accelerators, cheapest region, single-GPU offers)",
        date=date.today().isoformat(),
        offers=tuple(offers),
    )
    atomic_write_json(path, table.to_json())
    return table
