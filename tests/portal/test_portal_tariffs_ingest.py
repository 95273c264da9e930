"""The tariff vertical: the simulator's billing service answers `get Tariffs`, cim_ingest parses it, the Dagster
asset stores it in the warehouse idempotently, and the schedule is the one the simulator's bills were priced with."""

from __future__ import annotations

import datetime as dt
import io

import dagster as dg
import httpx
import polars as pl
import pytest

from cim_ingest.client import BackendClient
from cim_ingest.errors import InvalidValue
from cim_ingest.tariffs import TariffOut, iter_tariffs_response, parse_tariffs
from cim_ingest.writer import ReplyHeader, to_bytes
from readmodel.billing import price_period
from simulator.model import tariff_on
from tests.conftest import start_simulator
from warehouse.db import connect
from warehouse.tariffs import tariff_rows, upsert_tariffs

NOW = "2026-09-10T12:00:00+00:00"


@pytest.fixture(scope="module")
def backend(tmp_path_factory):
    service, url = start_simulator(tmp_path_factory.mktemp("sim"), seed=5, supplies=4, months=13, now=NOW)
    try:
        yield url
    finally:
        service.stop()


def test_simulator_schedule_over_http_matches_its_model(backend):
    frame = BackendClient(backend).get_tariffs()
    rows = frame.to_dicts()
    assert [row["valid_from"] for row in rows] == [dt.date(2025, 7, 1), dt.date(2026, 1, 1), dt.date(2026, 7, 1)]
    for row, following in zip(rows, rows[1:] + [None]):
        if following:
            assert row["valid_to"] == following["valid_from"]  # contiguous, no gaps or overlaps
        model = tariff_on(row["valid_from"])
        assert row["energy_clp_per_kwh"] == float(model.energy_clp_per_kwh)
        assert row["injection_clp_per_kwh"] == float(model.injection_clp_per_kwh)
        assert row["tariff"] == "BT1"


def test_the_schedule_prices_the_simulators_bills(backend):
    """A bill recomputed from its kWh with the tariff of its period's last day gives the billed total."""
    schedule = BackendClient(backend).get_tariffs().to_dicts()
    bills = httpx.get(f"{backend}/truth/bills").json()
    assert bills
    for bill in bills:
        last_day = dt.date.fromisoformat(bill["period_end"]) - dt.timedelta(days=1)
        row = next(r for r in schedule if r["valid_from"] <= last_day < r["valid_to"])
        priced = price_period(bill["kwh"], bill.get("received_kwh") or 0.0, row)
        assert priced["total_clp"] == bill["total_clp"], bill["bill_id"]


def test_parser_rejects_a_window_that_ends_before_it_starts():
    header = ReplyHeader(noun="Tariffs", correlation_id="c", source="TEST")
    document = to_bytes(iter_tariffs_response(header, [
        TariffOut("BT1", dt.date(2026, 7, 1), dt.date(2026, 1, 1), 1000, 150, 90)]))
    with pytest.raises(InvalidValue, match="validTo"):
        parse_tariffs(io.BytesIO(document))


def test_upsert_is_idempotent_and_takes_corrections(tmp_path):
    frame = pl.DataFrame({
        "valid_from": [dt.date(2026, 1, 1), dt.date(2026, 7, 1)], "valid_to": [dt.date(2026, 7, 1), None],
        "tariff": ["BT1", "BT1"], "fixed_clp_month": [1000, 1100],
        "energy_clp_per_kwh": [150.0, 160.0], "injection_clp_per_kwh": [90.0, 95.0],
    })
    con = connect(tmp_path / "warehouse.duckdb")
    try:
        upsert_tariffs(con, frame)
        first = tariff_rows(con)
        upsert_tariffs(con, frame)
        assert tariff_rows(con) == first and len(first) == 2
        corrected = frame.with_columns(pl.when(pl.col("valid_from") == dt.date(2026, 7, 1))
                                       .then(pl.lit(165.5)).otherwise(pl.col("energy_clp_per_kwh"))
                                       .alias("energy_clp_per_kwh"))
        upsert_tariffs(con, corrected.filter(pl.col("valid_from") == dt.date(2026, 7, 1)))
        rows = tariff_rows(con)
        assert [row[4] for row in rows] == [150.0, 165.5]  # the older window is kept as it was
    finally:
        con.close()


def test_tariffs_asset_materializes_into_the_warehouse(backend, tmp_path):
    from pipelines.resources import BackendResource, WarehouseResource
    from pipelines.tariffs import tariffs

    resources = {"backend": BackendResource(base_url=backend), "warehouse": WarehouseResource(data_dir=str(tmp_path))}
    for _ in range(2):
        result = dg.materialize([tariffs], resources=resources)
        assert result.success
    materialization = result.asset_materializations_for_node("tariffs")[0]
    assert materialization.metadata["dagster/row_count"].value == 3
    con = connect(tmp_path / "warehouse.duckdb")
    try:
        assert len(tariff_rows(con)) == 3
    finally:
        con.close()
