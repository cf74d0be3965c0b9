"""GPU specs and prices: shipped snapshots with their source and date, refreshed from SkyPilot's catalog when reachable."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path
from typing import Iterable

from ..core.errors import BenchmarkError, InvalidResultError
from ..core.jsonio import read_json

DATA = resources.files("openclip_benchmark") / "data"


@dataclass(frozen=True)
class GpuSpec:
    name: str  # SkyPilot's accelerator name
    memory_gib: float
    tflops: float  # dense bf16 (fp16 where no bf16) tensor TFLOP/s
    achievable: float  # fraction of `tflops` a CLIP forward pass reaches
    aliases: tuple[str, ...] = ()

    @property
    def effective_flops(self) -> float:
        return self.tflops * 1e12 * self.achievable


@dataclass(frozen=True)
class Offer:
    """One single-GPU instance type, as a row of SkyPilot's catalog."""

    cloud: str
    instance_type: str
    accelerator: str
    count: int
    vcpus: int
    price: float
    spot_price: float | None
    region: str
    memory_gib: float | None = None  # host memory (the catalog's MemoryGiB)

    def hourly(self, spot: bool) -> float | None:
        return self.spot_price if spot else self.price


@dataclass(frozen=True)
class PriceTable:
    source: str
    date: str
    offers: tuple[Offer, ...]

    def offers_for(self, gpu: str, clouds: Iterable[str] | None, spot: bool) -> list[Offer]:
        """Single-GPU offers of `gpu` in the allowed clouds that have a price for this purchase option."""
        allowed = {c.lower() for c in clouds} if clouds else None
        return sorted(
            (
                o
                for o in self.offers
                if o.accelerator == gpu
                and o.count == 1
                and (allowed is None or o.cloud in allowed)
                and o.hourly(spot) is not None
            ),
            key=lambda o: (o.hourly(spot), o.cloud, o.instance_type),
        )

    def to_json(self) -> dict:
        return {"source": self.source, "date": self.date, "rows": [asdict(o) for o in self.offers]}


def _read(path: Path | None, name: str) -> dict:
    try:
        text = Path(path).read_bytes() if path else (DATA / name).read_bytes()
        return read_json(text, str(path or name))
    except (OSError, InvalidResultError) as exc:
        raise BenchmarkError(f"cannot read {path or name}: {exc}") from None


def load_gpus(path: str | Path | None = None) -> dict[str, GpuSpec]:
    data = _read(Path(path) if path else None, "gpus.json")
    try:
        return {
            name: GpuSpec(
                name=name,
                memory_gib=float(g["memory_gib"]),
                tflops=float(g["tflops"]),
                achievable=float(g["achievable"]),
                aliases=tuple(g.get("aliases", ())),
            )
            for name, g in data["gpus"].items()
        }
    except (KeyError, TypeError, ValueError) as exc:
        raise BenchmarkError(f"invalid GPU table: {exc}") from None


def load_prices(path: str | Path | None = None) -> PriceTable:
    data = _read(Path(path) if path else None, "prices.json")
    try:
        offers = tuple(
            Offer(
                cloud=str(r["cloud"]).lower(),
                instance_type=str(r.get("instance_type") or ""),
                accelerator=str(r["accelerator"]),
                count=int(r["count"]),
                vcpus=int(r.get("vcpus") or 4),
                price=float(r["price"]),
                spot_price=None if r.get("spot_price") is None else float(r["spot_price"]),
                region=str(r.get("region") or ""),
                memory_gib=None if r.get("memory_gib") is None else float(r["memory_gib"]),
            )
            for r in data["rows"]
        )
        return PriceTable(source=str(data.get("source", "")), date=str(data.get("date", "")), offers=offers)
    except (KeyError, TypeError, ValueError) as exc:
        raise BenchmarkError(f"invalid price table: {exc}") from None


def gpu_from_device_name(device_name: str, gpus: dict[str, GpuSpec]) -> str | None:
    """Map torch's device name ("NVIDIA A100-SXM4-80GB") to a catalog GPU by its longest matching alias."""
    text = device_name.upper()
    best: tuple[int, str] | None = None
    for spec in gpus.values():
        for alias in (spec.name, *spec.aliases):
            if alias.upper() in text and (best is None or len(alias) > best[0]):
                best = (len(alias), spec.name)
    return best[1] if best else None
