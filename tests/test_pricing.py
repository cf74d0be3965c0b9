"""GPU and price tables: shipped snapshots, filtering, device-name mapping, refresh from SkyPilot's catalog."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from openclip_benchmark.backends import prices
from openclip_benchmark.planning import pricing
from openclip_benchmark.cli import app
from openclip_benchmark.core.errors import BenchmarkError


def test_shipped_tables_have_source_date_and_cover_every_priced_gpu():
    gpus = pricing.load_gpus()
    table = pricing.load_prices()
    assert {"T4", "L4", "A10G", "L40S", "A100", "A100-80GB", "H100", "V100"} <= set(gpus)
    assert table.source and table.date
    assert {o.cloud for o in table.offers} >= {"aws", "gcp"}
    for offer in table.offers:
        assert offer.accelerator in gpus
        assert offer.price > 0 and (offer.spot_price is None or 0 < offer.spot_price < offer.price)
        assert offer.vcpus >= 4 and offer.memory_gib >= 2 * offer.vcpus  # per-instance rows, as in SkyPilot's catalog
    raw = json.loads((pricing.DATA / "gpus.json").read_text())
    assert raw["source"] and raw["date"]


def test_offers_filter_by_cloud_and_purchase_option_cheapest_first():
    table = pricing.load_prices()
    spot = table.offers_for("L4", ["aws"], spot=True)
    assert spot and all(o.cloud == "aws" for o in spot)
    assert [o.spot_price for o in spot] == sorted(o.spot_price for o in spot)
    assert table.offers_for("A10", None, spot=True) == []  # lambda sells no spot
    assert table.offers_for("A10", None, spot=False)[0].cloud == "lambda"


@pytest.mark.parametrize(
    "device, gpu",
    [
        ("NVIDIA A10G", "A10G"),
        ("NVIDIA A10", "A10"),
        ("Tesla T4", "T4"),
        ("NVIDIA A100-SXM4-80GB", "A100-80GB"),
        ("NVIDIA A100-SXM4-40GB", "A100"),
        ("NVIDIA H100 80GB HBM3", "H100"),
        ("NVIDIA L4", "L4"),
        ("cpu", None),
    ],
)
def test_device_names_map_to_the_catalog_gpu(device, gpu):
    assert pricing.gpu_from_device_name(device, pricing.load_gpus()) == gpu


def _info(cloud, instance, acc, count, cpus, price, spot, region="r1"):
    from sky.catalog.common import InstanceTypeInfo

    return InstanceTypeInfo(cloud, instance, acc, count, cpus, 24.0, 32.0, price, spot, region)


def test_refresh_rebuilds_the_table_from_skypilots_catalog(tmp_path, monkeypatch):
    import sky.catalog

    calls = []

    def fake_list(gpus_only=True, clouds=None, require_price=True, **kw):
        calls.append(clouds)
        if clouds == "azure":
            raise RuntimeError("catalog fetch failed")
        return {
            "L4": [_info(clouds.upper(), f"{clouds}-l4", "L4", 1, 8, 0.9, 0.3)],
            "A100": [_info(clouds.upper(), f"{clouds}-8xa100", "A100", 8, 96, 30.0, float("nan"))],
            "TPU-v5": [_info(clouds.upper(), "tpu", "TPU-v5", 1, 8, 1.0, 0.5)],
        }

    monkeypatch.setattr(sky.catalog, "list_accelerators", fake_list)
    path = tmp_path / "prices.json"
    table = prices.refresh_prices(path, pricing.load_gpus(), ["aws", "gcp", "azure"])
    assert calls == ["aws", "gcp", "azure"]
    assert [(o.cloud, o.instance_type, o.vcpus, o.memory_gib, o.spot_price) for o in table.offers] == [
        ("aws", "aws-l4", 8, 32.0, 0.3),
        ("gcp", "gcp-l4", 8, 32.0, 0.3),
    ]
    assert pricing.load_prices(path) == table


def test_unreachable_catalog_is_one_line_and_keeps_the_old_table(tmp_path, monkeypatch):
    import sky.catalog

    def down(**kw):
        raise ConnectionError("Failed to fetch aws catalog\nPlease check your internet connection.")

    monkeypatch.setattr(sky.catalog, "list_accelerators", down)
    path = tmp_path / "prices.json"
    old = (pricing.DATA / "prices.json").read_bytes()
    path.write_bytes(old)
    with pytest.raises(BenchmarkError, match="unreachable"):
        prices.refresh_prices(path, ["L4"], ["aws"])
    assert path.read_bytes() == old
    result = CliRunner().invoke(app, ["prices", "--refresh", "--prices", str(path), "--clouds", "aws"])
    assert result.exit_code == 2
    assert result.output.count("\n") == 1 and result.output.startswith("error: SkyPilot's catalog is unreachable")
    assert path.read_bytes() == old


def test_prices_command_lists_the_table():
    result = CliRunner().invoke(app, ["prices"], env={"COLUMNS": "160"})
    assert result.exit_code == 0, result.output
    assert "g6.xlarge" in result.output and "source:" in result.output


def test_bad_table_is_a_clear_error(tmp_path):
    bad = tmp_path / "p.json"
    bad.write_text('{"rows": [{"cloud": "aws"}]}')
    with pytest.raises(BenchmarkError, match="invalid price table"):
        pricing.load_prices(bad)
    bad.write_text("{nope")
    with pytest.raises(BenchmarkError, match="cannot read"):
        pricing.load_prices(bad)
