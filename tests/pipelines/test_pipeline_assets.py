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


def _pull_into(path, backend, *, fetch_ahead, client=None):
    """Pull 2026-09-01..09-05 into a fresh warehouse at `path`, five days x one usage point per request."""
    import contextlib

    from cim_ingest.client import BackendClient
    from pipelines.meter_data import pull_meter_readings
    from warehouse import loads
    from warehouse.db import connect

    client = client or BackendClient(backend)
    supplies = client.get_supplies()
    con = connect(path)
    loads.upsert_customers(con, client.get_customers())
    loads.upsert_supplies(con, supplies)
    con.close()

    @contextlib.contextmanager
    def connection():
        con = connect(path)
        try:
            yield con
        finally:
            con.close()

    chunk_ends = []
    start = dt.datetime(2026, 9, 1, 3, tzinfo=dt.timezone.utc)
    totals, unknown = pull_meter_readings(
        client, connection, supplies["usage_point_mrid"].to_list(), start, start + dt.timedelta(days=5),
        chunk_days=2, batch_size=1, fetch_ahead=fetch_ahead, on_chunk=chunk_ends.append,
    )
    return totals, unknown, chunk_ends


def test_fetching_the_next_request_ahead_loads_exactly_what_one_at_a_time_loads(tmp_path, backend):
    ahead = _pull_into(tmp_path / "ahead.duckdb", backend, fetch_ahead=True)
    serial = _pull_into(tmp_path / "serial.duckdb", backend, fetch_ahead=False)
    assert ahead == serial
    totals, unknown, chunk_ends = ahead
    assert unknown == set()
    # 4 supplies x 5 days x 96 quarter-hours delivered, plus the solar supplies' received channel.
    assert totals["intervals"][0] >= 4 * 5 * 96 and totals["intervals"][1:] == [0, 0]
    # Three chunks of at most two days, each reported once after its last request.
    assert [end.isoformat() for end in chunk_ends] == [
        "2026-09-03T03:00:00+00:00", "2026-09-05T03:00:00+00:00", "2026-09-06T03:00:00+00:00"]
    sql = "SELECT supply_id, flow, interval_end, kwh, quality FROM interval_readings ORDER BY ALL"
    assert _table(tmp_path / "ahead.duckdb", sql) == _table(tmp_path / "serial.duckdb", sql)
    registers = "SELECT supply_id, flow, read_at, kwh FROM register_reads ORDER BY ALL"
    assert _table(tmp_path / "ahead.duckdb", registers) == _table(tmp_path / "serial.duckdb", registers)


def test_a_failed_request_fails_the_pull_after_loading_the_replies_before_it(tmp_path, backend):
    from cim_ingest.client import BackendClient
    from cim_ingest.errors import BackendError

    class FailingThirdRequest(BackendClient):
        calls = 0

        def get_meter_readings(self, *args, **kwargs):
            type(self).calls += 1
            if type(self).calls == 3:
                raise BackendError("the MDM is down")
            return super().get_meter_readings(*args, **kwargs)

    with pytest.raises(BackendError, match="MDM is down"):
        _pull_into(tmp_path / "failed.duckdb", backend, fetch_ahead=True, client=FailingThirdRequest(backend))
    # Requests are (days 1-2, supply 1..4), ...: the first two replies (supplies 1 and 2) were loaded, no more.
    loaded = _table(tmp_path / "failed.duckdb", "SELECT count(DISTINCT supply_id) FROM interval_readings")
    assert loaded == [(2,)]


def _code_location_job(name: str):
    """The job as the daemon's run worker loads it: from the code location of workspace.yaml."""
    from dagster._core.definitions.reconstruct import ReconstructableRepository

    from tests.conftest import ROOT

    repository = ReconstructableRepository.for_module("pipelines.definitions", "defs", working_directory=str(ROOT))
    return repository.get_reconstructable_job(name)


def test_scheduled_job_runs_each_step_in_its_own_process(defs_env):
    """The job's own executor (multiprocess, steps forked from a preloaded server), as the daemon runs it. The fork
    server lives as long as this test process and keeps the environment it started with, so this is the only
    test that uses it."""
    import os

    data_dir, all_assets, resources = defs_env
    _materialize(all_assets, resources, ["customers", "supplies", "bills"])
    (data_dir / "dagster").mkdir()
    with dg.instance_for_test(temp_dir=str(data_dir / "dagster")) as instance:
        result = dg.execute_job(
            _code_location_job("recent_meter_data_job"), instance=instance,
            tags={"dagster/asset_partition_range_start": "2026-09-01",
                  "dagster/asset_partition_range_end": "2026-09-02"},
        )
        assert result.success
        step_pids = {
            record.dagster_event.pid for record in instance.all_logs(result.run_id)
            if record.dagster_event is not None and record.dagster_event.event_type_value == "STEP_START"
        }
    # meter_readings (both assets), daily_consumption, monthly_consumption, parquet_export, read_model.
    assert len(step_pids) == 5 and os.getpid() not in step_pids
    assert (data_dir / "readmodel" / "CURRENT").exists()
    rows = _table(data_dir / "warehouse.duckdb",
                  "SELECT count(*) FROM daily_consumption WHERE local_date BETWEEN '2026-09-01' AND '2026-09-02'")
    assert rows[0][0] >= 8


def test_client_parses_a_simulator_reply_exactly_as_the_reference_parser(backend):
    """The client reads meter readings with the piecewise parser; the element-by-element parser is the
    reference. Same rows (intervals, registers) and the same PARTIAL result for an unknown usage point."""
    import io

    import httpx

    from cim_ingest.client import BackendClient
    from cim_ingest.messages import build_get_meter_readings
    from cim_ingest.meter_readings import parse_meter_readings

    client = BackendClient(backend)
    mrids = [*client.get_supplies()["usage_point_mrid"].to_list(), "no-such-usage-point"]
    start = dt.datetime(2026, 9, 1, 3, tzinfo=dt.timezone.utc)
    end = start + dt.timedelta(days=6)
    pulled = client.get_meter_readings(mrids, start, end)
    body = build_get_meter_readings(mrids, start, end, correlation_id="reference")
    reply = httpx.post(f"{backend}/cim/mdm", content=body, headers={"Content-Type": "application/xml"})
    reference = parse_meter_readings(io.BytesIO(reply.content))
    assert pulled.header.result == reference.header.result == "PARTIAL"
    assert [error.code for error in pulled.header.errors] == [error.code for error in reference.header.errors]
    for frame in ("intervals", "registers"):
        mine = getattr(pulled, frame).drop("source_message_id")
        theirs = getattr(reference, frame).drop("source_message_id")
        assert mine.height > 0 and mine.equals(theirs)
