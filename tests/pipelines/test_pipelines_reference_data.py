"""Reference data reaches the portal on a schedule: the hourly job refreshes customers, supplies, tariffs and bills
from the backends (the simulator, as a real process) and publishes, without anyone materializing by hand."""

from __future__ import annotations

import datetime as dt

import dagster as dg
import duckdb
import pytest

from tests.conftest import start_simulator

NOW = "2026-09-10T15:00:00+00:00"


@pytest.fixture(scope="module")
def backend(tmp_path_factory):
    service, url = start_simulator(tmp_path_factory.mktemp("logs"), seed=9, supplies=4, months=2, now=NOW)
    yield url
    service.stop()


def test_schedule_runs_the_reference_job_every_hour_with_a_stable_run_key(monkeypatch):
    from pipelines import definitions

    schedule = definitions.defs.resolve_schedule_def("reference_data_schedule")
    assert schedule.cron_schedule == "5 * * * *" and schedule.execution_timezone == "America/Santiago"
    assert schedule.job_name == "reference_data_job"
    at = dt.datetime(2026, 9, 10, 11, 5, tzinfo=dt.timezone.utc)
    first = schedule.evaluate_tick(dg.build_schedule_context(scheduled_execution_time=at)).run_requests[0]
    again = schedule.evaluate_tick(dg.build_schedule_context(scheduled_execution_time=at)).run_requests[0]
    assert first.run_key == again.run_key  # a tick evaluated twice never starts two runs
    job = definitions.defs.resolve_job_def("reference_data_job")
    assert {key.to_user_string() for key in job.asset_layer.executable_asset_keys} == {
        "customers", "supplies", "tariffs", "bills", "read_model"}


def test_reference_job_loads_the_backends_reference_data_and_publishes(tmp_path, backend, monkeypatch):
    monkeypatch.setenv("AMI_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("AMI_BACKEND_URL", backend)
    monkeypatch.setenv("AMI_PARTITIONS_START", "2026-07-01")
    from pipelines import definitions
    from pipelines.resources import default_resources

    defs = dg.Definitions(assets=definitions.all_assets, jobs=definitions.defs.jobs, resources=default_resources())
    with dg.DagsterInstance.ephemeral() as instance:
        result = defs.resolve_job_def("reference_data_job").execute_in_process(instance=instance)
    assert result.success
    con = duckdb.connect(str(tmp_path / "warehouse.duckdb"), read_only=True)
    try:
        counts = {table: con.execute(f"SELECT count(*) FROM {table}").fetchall()[0][0]
                  for table in ("customers", "supplies", "tariffs", "bills")}
    finally:
        con.close()
    assert counts["supplies"] == 4 and counts["customers"] >= 1 and counts["tariffs"] >= 1 and counts["bills"] >= 4
    snapshot = tmp_path / "readmodel" / (tmp_path / "readmodel" / "CURRENT").read_text().strip()
    with duckdb.connect(str(snapshot), read_only=True) as published:
        assert published.execute("SELECT count(*) FROM supplies").fetchall()[0][0] == 4
        assert published.execute("SELECT count(*) FROM bills").fetchall()[0][0] == counts["bills"]
