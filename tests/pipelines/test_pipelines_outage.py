"""Backend failures: transient HTTP 500s are retried (backoff with jitter) inside the run; a full MDM outage fails
the run without publishing, and the next run after the outage catches up with nothing lost (compared with the
simulator's ground truth to the Wh)."""

from __future__ import annotations

import datetime as dt

import dagster as dg
import duckdb
import httpx
import pytest

from tests.conftest import start_simulator

NOW = "2026-09-10T15:00:00+00:00"
DAYS = (dt.date(2026, 9, 7), dt.date(2026, 9, 8))


@pytest.fixture()
def stack(tmp_path, monkeypatch):
    service, backend = start_simulator(tmp_path / "logs", seed=31, supplies=3, months=1, now=NOW)
    monkeypatch.setenv("AMI_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("AMI_BACKEND_URL", backend)
    monkeypatch.setenv("AMI_PARTITIONS_START", "2026-08-01")
    from pipelines import definitions
    from pipelines.resources import default_resources

    defs = dg.Definitions(assets=definitions.all_assets, jobs=definitions.defs.jobs, resources=default_resources())
    with dg.DagsterInstance.ephemeral() as instance:
        assert dg.materialize(definitions.all_assets, instance=instance, resources=defs.resources,
                              selection=["customers", "supplies"]).success
        yield {"defs": defs, "instance": instance, "backend": backend, "data": tmp_path / "data"}
    httpx.delete(f"{backend}/admin/faults")
    service.stop()


def _run(stack):
    from pipelines.jobs import partition_range_tags

    return stack["defs"].resolve_job_def("recent_meter_data_job").execute_in_process(
        instance=stack["instance"], tags=partition_range_tags(*DAYS), raise_on_error=False)


def _daily_wh(stack) -> dict[tuple[str, str], int]:
    con = duckdb.connect(str(stack["data"] / "warehouse.duckdb"), read_only=True)
    try:
        rows = con.execute("SELECT supply_id, local_date, kwh FROM daily_consumption WHERE flow = 'delivered'").fetchall()
    finally:
        con.close()
    return {(supply, str(day)): round(float(kwh) * 1000) for supply, day, kwh in rows}


def _truth_wh(stack) -> dict[tuple[str, str], int]:
    truth = {}
    for supply in httpx.get(f"{stack['backend']}/truth/supplies").json():
        days = httpx.get(f"{stack['backend']}/truth/daily", params={
            "supply_id": supply["supply_id"], "from": DAYS[0].isoformat(),
            "to": (DAYS[1] + dt.timedelta(days=1)).isoformat(), "flow": "delivered"}).json()["days"]
        truth.update({(supply["supply_id"], day["local_date"]): day["wh"] for day in days})
    return truth


def test_transient_server_errors_are_retried_within_the_run(stack):
    httpx.post(f"{stack['backend']}/admin/faults", json={"backend": "mdm", "mode": "http500", "count": 2})
    result = _run(stack)
    assert result.success
    assert httpx.get(f"{stack['backend']}/admin/faults").json().get("mdm") in (None, {}, [])  # both 500s consumed
    assert _daily_wh(stack) == _truth_wh(stack)


def test_outage_fails_without_publishing_and_the_next_run_catches_up(stack):
    httpx.post(f"{stack['backend']}/admin/faults", json={"backend": "mdm", "mode": "http500"})
    failed = _run(stack)
    assert not failed.success
    assert not (stack["data"] / "readmodel" / "CURRENT").exists()

    httpx.delete(f"{stack['backend']}/admin/faults")
    assert _run(stack).success
    assert _daily_wh(stack) == _truth_wh(stack)
    assert (stack["data"] / "readmodel" / "CURRENT").exists()
