"""Pipeline tests: the Dagster assets materialized in process on a temporary warehouse, against the simulator
running as a real HTTP process (it starts in about a second)."""

from __future__ import annotations

import datetime as dt

import dagster as dg
import duckdb
import pytest

from tests.conftest import start_simulator

NOW = "2026-09-10T15:00:00+00:00"


@pytest.fixture(scope="module")
def backend(tmp_path_factory):
    service, url = start_simulator(tmp_path_factory.mktemp("logs"), seed=3, supplies=4, months=1, now=NOW)
    yield url
    service.stop()


@pytest.fixture()
def defs_env(tmp_path, backend, monkeypatch):
    monkeypatch.setenv("AMI_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("AMI_BACKEND_URL", backend)
    from pipelines.definitions import all_assets
    from pipelines.resources import default_resources

    return tmp_path, all_assets, default_resources()


def _materialize(all_assets, resources, selection, partition_range=None):
    tags = {}
    if partition_range:
        tags = {
            "dagster/asset_partition_range_start": partition_range[0],
            "dagster/asset_partition_range_end": partition_range[1],
        }
    result = dg.materialize(all_assets, resources=resources, selection=selection, tags=tags)
    assert result.success
    return result


def _table(path, sql):
    con = duckdb.connect(str(path), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def test_partition_range_loads_dst_aware_days_and_is_idempotent(defs_env):
    data_dir, all_assets, resources = defs_env
    _materialize(all_assets, resources, ["customers", "supplies"])
    days = ("2026-09-05", "2026-09-07")
    selection = ["interval_readings", "register_reads", "daily_consumption"]
    _materialize(all_assets, resources, selection, days)
    warehouse = data_dir / "warehouse.duckdb"
    snapshot_sql = (
        "SELECT supply_id, flow, interval_end, kwh, quality FROM interval_readings ORDER BY ALL"
    )
    first = _table(warehouse, snapshot_sql)
    daily = dict(
        ((str(day), supply), (count, expected))
        for day, supply, count, expected in _table(
            warehouse,
            "SELECT local_date, supply_id, intervals, expected_intervals FROM daily_consumption WHERE flow = 'delivered'",
        )
    )
    supplies = {supply for (_, supply) in daily}
    assert len(supplies) == 4
    for supply in supplies:
        assert daily[("2026-09-05", supply)] == (96, 96)
        assert daily[("2026-09-06", supply)] == (92, 92)
        assert daily[("2026-09-07", supply)] == (96, 96)

    # Materializing the same partitions again gives the same tables.
    _materialize(all_assets, resources, selection, days)
    assert _table(warehouse, snapshot_sql) == first


def test_publish_produces_a_snapshot_the_portal_can_read(defs_env):
    data_dir, all_assets, resources = defs_env
    _materialize(all_assets, resources, ["customers", "supplies"])
    _materialize(all_assets, resources, ["interval_readings", "register_reads", "daily_consumption"],
                 ("2026-09-01", "2026-09-02"))
    _materialize(all_assets, resources, ["bills", "monthly_consumption", "read_model"])
    from readmodel import ReadModel

    model = ReadModel(data_dir / "readmodel")
    supply = model.supplies_for_customer(model.customers()[0]["customer_id"])[0]
    series = model.consumption(supply["supply_id"], "day", dt.date(2026, 9, 1), dt.date(2026, 9, 3), "delivered")
    assert [point["quality"] for point in series["points"]] == ["actual", "actual"]
    assert all(point["kwh"] > 0 for point in series["points"])
