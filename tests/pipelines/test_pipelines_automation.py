"""Automation: the 15-minute schedule with its lookback, the inbox sensor (cursor, stable run key) and its job,
and the blocking checks that keep bad data from being published. Runs in process against the simulator."""

from __future__ import annotations

import datetime as dt
import json
import os
import time

import dagster as dg
import duckdb
import pytest

from cim_ingest.writer import IntervalBlockOut, MeterReadingOut, ReplyHeader, iter_meter_readings_response
from tests.conftest import start_simulator

NOW = "2026-09-10T15:00:00+00:00"
DELIVERED_15MIN = "0.0.2.4.1.1.12.0.0.0.0.0.0.0.0.3.72.0"
DAYS = ("2026-09-07", "2026-09-08")


@pytest.fixture(scope="module")
def backend(tmp_path_factory):
    service, url = start_simulator(tmp_path_factory.mktemp("logs"), seed=5, supplies=3, months=1, now=NOW)
    yield url
    service.stop()


@pytest.fixture()
def env(tmp_path, backend, monkeypatch):
    monkeypatch.setenv("AMI_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("AMI_BACKEND_URL", backend)
    monkeypatch.setenv("AMI_PARTITIONS_START", "2026-08-01")
    for sub in ("inbox", "processed", "quarantine"):
        (tmp_path / sub).mkdir()
    from pipelines import definitions
    from pipelines.resources import default_resources

    # Resources are read from the environment when built: build them for this test's data directory.
    defs = dg.Definitions(
        assets=definitions.all_assets,
        jobs=definitions.defs.jobs,
        schedules=definitions.defs.schedules,
        sensors=definitions.defs.sensors,
        resources=default_resources(),
    )
    return tmp_path, defs


def _query(data_dir, sql, params=()):
    con = duckdb.connect(str(data_dir / "warehouse.duckdb"), read_only=True)
    try:
        return con.execute(sql, list(params)).fetchall()
    finally:
        con.close()


def _snapshot_query(data_dir, sql, params=()):
    readmodel = data_dir / "readmodel"
    con = duckdb.connect(str(readmodel / (readmodel / "CURRENT").read_text().strip()), read_only=True)
    try:
        return con.execute(sql, list(params)).fetchall()
    finally:
        con.close()


def _run_recent(defs, instance, first, last):
    from pipelines.jobs import partition_range_tags

    return defs.resolve_job_def("recent_meter_data_job").execute_in_process(
        instance=instance, tags=partition_range_tags(dt.date.fromisoformat(first), dt.date.fromisoformat(last)),
        raise_on_error=False,
    )


def _load_master_data(defs, instance):
    from pipelines.definitions import all_assets

    assert dg.materialize(all_assets, instance=instance, resources=defs.resources,
                          selection=["customers", "supplies"]).success


# --- schedule ---------------------------------------------------------------------------------------------------


def test_schedule_pulls_today_and_the_lookback_days_every_15_minutes(env, monkeypatch):
    _, defs = env
    schedule = defs.resolve_schedule_def("recent_meter_data_schedule")
    assert schedule.cron_schedule == "*/15 * * * *"
    assert schedule.execution_timezone == "America/Santiago"
    at = dt.datetime(2026, 9, 10, 9, 30, tzinfo=dt.timezone.utc)  # 06:30 in Santiago
    request = schedule.evaluate_tick(dg.build_schedule_context(scheduled_execution_time=at)).run_requests[0]
    assert request.tags["dagster/asset_partition_range_start"] == "2026-09-08"
    assert request.tags["dagster/asset_partition_range_end"] == "2026-09-10"
    assert request.run_key == f"recent:{at.isoformat()}"
    monkeypatch.setenv("AMI_LOOKBACK_DAYS", "5")
    request = schedule.evaluate_tick(dg.build_schedule_context(scheduled_execution_time=at)).run_requests[0]
    assert request.tags["dagster/asset_partition_range_start"] == "2026-09-05"


def test_scheduled_job_loads_checks_and_publishes_and_rerunning_changes_nothing(env):
    data_dir, defs = env
    with dg.DagsterInstance.ephemeral() as instance:
        _load_master_data(defs, instance)
        result = _run_recent(defs, instance, *DAYS)
        assert result.success
        readings_sql = "SELECT supply_id, flow, interval_end, kwh, quality FROM interval_readings ORDER BY ALL"
        first = _query(data_dir, readings_sql)
        assert len(first) >= 3 * (96 + 96)
        checks = {
            evaluation.check_name: evaluation.passed
            for evaluation in result.get_asset_check_evaluations()
        }
        assert checks["no_overlapping_intervals"] and checks["plausible_values"] and checks["complete_days"]
        assert _snapshot_query(data_dir, "SELECT count(*) FROM intervals")[0][0] == len(first)
        # Materializing the same partitions twice gives the same tables.
        assert _run_recent(defs, instance, *DAYS).success
        assert _query(data_dir, readings_sql) == first


def test_failed_blocking_check_stops_the_publish(env):
    data_dir, defs = env
    with dg.DagsterInstance.ephemeral() as instance:
        _load_master_data(defs, instance)
        assert _run_recent(defs, instance, *DAYS).success
        published = (data_dir / "readmodel" / "CURRENT").read_text()
        # Crafted bad input: a reading off the quarter-hour grid, overlapping two real ones.
        con = duckdb.connect(str(data_dir / "warehouse.duckdb"))
        con.execute(
            "INSERT INTO interval_readings SELECT * REPLACE (interval_end + INTERVAL 7 MINUTE AS interval_end) "
            "FROM interval_readings ORDER BY interval_end LIMIT 1"
        )
        con.close()
        result = _run_recent(defs, instance, *DAYS)
        failed = [e for e in result.get_asset_check_evaluations() if not e.passed]
        assert [e.check_name for e in failed] == ["no_overlapping_intervals"]
        assert failed[0].severity == dg.AssetCheckSeverity.ERROR
        assert result.asset_materializations_for_node("read_model") == []
        assert (data_dir / "readmodel" / "CURRENT").read_text() == published


# --- inbox sensor -----------------------------------------------------------------------------------------------


def _write_reading_file(path, usage_point, meter, interval_end, kwh_text, message_id):
    header = ReplyHeader(noun="MeterReadings", correlation_id=f"c-{message_id}", source="TEST",
                         message_id=message_id, timestamp=dt.datetime.now(dt.timezone.utc))
    block = IntervalBlockOut(DELIVERED_15MIN, ends=[interval_end], values=[kwh_text])
    temporary = path.parent.parent / f"{path.name}.writing"
    with open(temporary, "wb") as handle:
        for chunk in iter_meter_readings_response(header, [MeterReadingOut(usage_point, meter, [block])]):
            handle.write(chunk)
    os.replace(temporary, path)  # atomic hand-over, as documented for writers
    return path


def test_sensor_uses_a_cursor_and_a_stable_run_key(env):
    data_dir, defs = env
    sensor = defs.resolve_sensor_def("inbox_sensor")
    inbox = data_dir / "inbox"
    (inbox / "a.xml").write_text("<x/>")
    (inbox / "b.xml").write_text("<y/>")
    (inbox / ".c.xml").write_text("<partial")  # being written: ignored
    (inbox / "d.xml.tmp").write_text("<partial")

    with dg.DagsterInstance.ephemeral() as instance:
        first = sensor.evaluate_tick(dg.build_sensor_context(instance=instance, cursor=None))
        again = sensor.evaluate_tick(dg.build_sensor_context(instance=instance, cursor=None))
        assert len(first.run_requests) == 1
        request = first.run_requests[0]
        assert request.run_key == again.run_requests[0].run_key  # same files, same key
        paths = request.run_config["ops"]["ingest_inbox_files"]["config"]["paths"]
        assert [os.path.basename(path) for path in paths] == ["a.xml", "b.xml"]

        # With the cursor, nothing is requested again while the run has not moved the files yet.
        quiet = sensor.evaluate_tick(dg.build_sensor_context(instance=instance, cursor=first.cursor))
        assert not quiet.run_requests
        # A new file is requested alone.
        time.sleep(0.01)
        (inbox / "e.xml").write_text("<z/>")
        later = sensor.evaluate_tick(dg.build_sensor_context(instance=instance, cursor=quiet.cursor))
        assert [os.path.basename(p) for p in later.run_requests[0].run_config["ops"]["ingest_inbox_files"]["config"]
                ["paths"]] == ["e.xml"]
        # Files gone from the inbox leave the cursor.
        for name in ("a.xml", "b.xml", "e.xml"):
            (inbox / name).unlink()
        cleared = sensor.evaluate_tick(dg.build_sensor_context(instance=instance, cursor=later.cursor))
        assert json.loads(cleared.cursor) == {}


def test_file_still_in_the_inbox_after_the_retry_delay_is_requested_again(env):
    from pipelines.sensors import inbox_files, plan_inbox_run

    data_dir, _ = env
    (data_dir / "inbox" / "a.xml").write_text("<x/>")
    files = inbox_files(data_dir / "inbox")
    first, cursor = plan_inbox_run(files, None, now=1000.0, retry_seconds=600)
    assert plan_inbox_run(files, cursor, now=1300.0, retry_seconds=600)[0] is None
    retried, _ = plan_inbox_run(files, cursor, now=1700.0, retry_seconds=600)
    assert retried is not None and retried.run_key != first.run_key


def test_inbox_job_ingests_moves_and_publishes(env):
    data_dir, defs = env
    with dg.DagsterInstance.ephemeral() as instance:
        _load_master_data(defs, instance)
        assert _run_recent(defs, instance, *DAYS).success
        supply_id, usage_point, meter = _query(
            data_dir, "SELECT supply_id, usage_point_mrid, meter_mrid FROM supplies ORDER BY supply_id LIMIT 1")[0]
        at = dt.datetime(2026, 9, 8, 15, 0, tzinfo=dt.timezone.utc)
        good = _write_reading_file(data_dir / "inbox" / "push-1.xml", usage_point, meter, at, "7.777", "m-1")
        (data_dir / "inbox" / "broken.xml").write_text("<ResponseMessage><Header>")
        sensor = defs.resolve_sensor_def("inbox_sensor")
        request = sensor.evaluate_tick(dg.build_sensor_context(instance=instance)).run_requests[0]
        result = defs.resolve_job_def("inbox_job").execute_in_process(
            instance=instance, run_config=request.run_config, tags=request.tags)
        assert result.success
        assert not good.exists() and (data_dir / "processed" / "push-1.xml").exists()
        assert (data_dir / "quarantine" / "broken.xml").exists()
        assert list((data_dir / "quarantine").glob("broken.xml*.reason.txt")) or list(
            (data_dir / "quarantine").glob("*.reason.txt"))
        assert _snapshot_query(
            data_dir, "SELECT kwh FROM intervals WHERE supply_id = ? AND interval_end = ? AND flow = 'delivered'",
            [supply_id, at])[0][0] == pytest.approx(7.777)
        day = _snapshot_query(data_dir, "SELECT kwh FROM daily WHERE supply_id = ? AND local_date = '2026-09-08' "
                              "AND flow = 'delivered'", [supply_id])[0][0]
        assert day == pytest.approx(float(_query(
            data_dir, "SELECT sum(kwh) FROM interval_readings WHERE supply_id = ? AND flow = 'delivered' AND "
            "interval_end > '2026-09-08 03:00:00+00' AND interval_end <= '2026-09-09 03:00:00+00'", [supply_id])[0][0]))
