"""End to end through real processes: the simulator over HTTP, the Dagster load, gunicorn, login over HTTP.

The simulated clock is frozen so the history covers both 2026 clock changes (4 April: 25 hours; 6 September:
23 hours), and every figure the portal's JSON API returns is compared with the simulator's ground truth.
"""

from __future__ import annotations

import csv
import datetime as dt
import os
import subprocess
import sys

import httpx
import pytest

from tests.conftest import ROOT, login, start_portal, start_simulator

pytestmark = pytest.mark.e2e

NOW = "2026-10-20T15:00:00+00:00"


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("data")
    logs = data_dir / "logs"
    simulator, backend_url = start_simulator(logs, seed=7, supplies=8, months=8, now=NOW)
    try:
        config = httpx.get(f"{backend_url}/truth/config").json()
        first_day = config["history_start"][:10]
        env = dict(
            os.environ,
            AMI_DATA_DIR=str(data_dir),
            DAGSTER_HOME=str(data_dir / "dagster"),
            AMI_BACKEND_URL=backend_url,
            AMI_PARTITIONS_START=first_day,
        )
        subprocess.run(
            [sys.executable, "-m", "ami_portal.cli", "load", "--first-day", first_day, "--last-day", "2026-10-20"],
            env=env, cwd=ROOT, check=True, capture_output=True,
        )
        subprocess.run(
            [sys.executable, "-m", "ami_portal.cli", "users", "create-demo"],
            env=env, cwd=ROOT, check=True, capture_output=True,
        )
        portal, portal_url = start_portal(data_dir, logs)
        try:
            with open(data_dir / "demo-accounts.csv", newline="", encoding="utf-8") as handle:
                accounts = list(csv.DictReader(handle))
            yield {
                "data_dir": data_dir, "backend": backend_url, "portal": portal_url, "accounts": accounts,
                "first_day": dt.date.fromisoformat(first_day),
            }
        finally:
            portal.stop()
    finally:
        simulator.stop()


def _truth_daily(stack, supply_id, first, last):
    response = httpx.get(
        f"{stack['backend']}/truth/daily",
        params={"supply_id": supply_id, "from": first.isoformat(), "to": last.isoformat(), "flow": "delivered"},
    )
    response.raise_for_status()
    return {day["local_date"]: day["wh"] for day in response.json()["days"]}


def test_daily_consumption_equals_ground_truth_to_the_wh(stack):
    account = stack["accounts"][0]
    supply_id = account["supply_ids"].split(";")[0]
    client = login(stack["portal"], account["email"], account["password"])
    first, last = stack["first_day"], dt.date(2026, 10, 20)
    body = client.get(
        f"/api/v1/supplies/{supply_id}/consumption",
        params={"granularity": "day", "from": first.isoformat(), "to": last.isoformat()},
    ).json()
    truth = _truth_daily(stack, supply_id, first, last)
    assert len(body["points"]) == (last - first).days == len(truth)
    for point in body["points"]:
        day = point["start"][:10]
        assert round(point["kwh"] * 1000) == truth[day], day
        assert point["quality"] == "actual"
    assert body["timezone"] == "America/Santiago" and body["unit"] == "kWh"


@pytest.mark.parametrize(("day", "quarter_hours", "hours"), [("2026-04-04", 100, 25), ("2026-09-06", 92, 23),
                                                             ("2026-06-15", 96, 24)])
def test_intraday_points_add_up_to_the_day(stack, day, quarter_hours, hours):
    account = stack["accounts"][0]
    supply_id = account["supply_ids"].split(";")[0]
    client = login(stack["portal"], account["email"], account["password"])
    start = dt.date.fromisoformat(day)
    params = {"from": day, "to": (start + dt.timedelta(days=1)).isoformat()}
    series = {
        granularity: client.get(f"/api/v1/supplies/{supply_id}/consumption", params={**params, "granularity": granularity}).json()
        for granularity in ("15min", "hour", "day")
    }
    assert len(series["15min"]["points"]) == quarter_hours
    assert len(series["hour"]["points"]) == hours
    day_wh = round(series["day"]["points"][0]["kwh"] * 1000)
    assert round(sum(p["kwh"] for p in series["15min"]["points"]) * 1000) == day_wh
    assert round(sum(p["kwh"] for p in series["hour"]["points"]) * 1000) == day_wh
    assert day_wh == _truth_daily(stack, supply_id, start, start + dt.timedelta(days=1))[day]
    # Every point carries its offset; consecutive quarter-hours are contiguous across the clock change.
    points = series["15min"]["points"]
    for earlier, later in zip(points, points[1:]):
        assert dt.datetime.fromisoformat(earlier["end"]) == dt.datetime.fromisoformat(later["start"])


def test_bills_match_the_billing_system(stack):
    account = stack["accounts"][0]
    supply_id = account["supply_ids"].split(";")[0]
    client = login(stack["portal"], account["email"], account["password"])
    bills = client.get(f"/api/v1/supplies/{supply_id}/bills").json()
    truth = httpx.get(f"{stack['backend']}/truth/bills", params={"supply_id": supply_id}).json()
    assert bills and len(bills if isinstance(bills, list) else bills["bills"]) == len(truth)


def test_other_customers_supply_is_404_like_a_missing_one(stack):
    first, second = stack["accounts"][0], stack["accounts"][1]
    client = login(stack["portal"], first["email"], first["password"])
    foreign = second["supply_ids"].split(";")[0]
    for supply_id in (foreign, "99999999"):
        assert client.get(f"/api/v1/supplies/{supply_id}/consumption").status_code == 404
        assert client.get(f"/api/v1/supplies/{supply_id}/bills").status_code == 404
        assert client.get(f"/supplies/{supply_id}").status_code == 404
    own = {supply["supply_id"] for supply in client.get("/api/v1/supplies").json()}
    assert own == set(first["supply_ids"].split(";"))


def test_dagster_runs_of_the_load_succeeded(stack):
    import dagster as dg

    with dg.DagsterInstance.from_config(str(stack["data_dir"] / "dagster")) as instance:
        runs = instance.get_runs()
        assert len(runs) == 3
        assert all(run.status == dg.DagsterRunStatus.SUCCESS for run in runs)
