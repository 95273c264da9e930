"""End to end, the tariff vertical through real processes: the simulator's `get Tariffs`, the Dagster load, the
publish and gunicorn; the portal then shows pesos computed with the tariff of each day, and a bill's pesos match
the billing system's own total when recomputed with the published schedule."""

from __future__ import annotations

import csv
import os
import subprocess
import sys

import httpx
import pytest

from readmodel.billing import price_period
from tests.conftest import ROOT, login, start_portal, start_simulator

pytestmark = pytest.mark.e2e

NOW = "2026-07-20T15:00:00+00:00"  # two months of history around the 1 July 2026 tariff change


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("prices")
    logs = data_dir / "logs"
    simulator, backend_url = start_simulator(logs, seed=11, supplies=2, months=2, now=NOW)
    try:
        first_day = httpx.get(f"{backend_url}/truth/config").json()["history_start"][:10]
        env = dict(os.environ, AMI_DATA_DIR=str(data_dir), DAGSTER_HOME=str(data_dir / "dagster"),
                   AMI_BACKEND_URL=backend_url, AMI_PARTITIONS_START=first_day)
        for command in (["load", "--first-day", first_day, "--last-day", "2026-07-20"], ["users", "create-demo"]):
            subprocess.run([sys.executable, "-m", "ami_portal.cli", *command], env=env, cwd=ROOT, check=True,
                           capture_output=True)
        portal, portal_url = start_portal(data_dir, logs)
        try:
            with open(data_dir / "demo-accounts.csv", newline="", encoding="utf-8") as handle:
                account = next(csv.DictReader(handle))
            yield {"portal": portal_url, "backend": backend_url, "account": account}
        finally:
            portal.stop()
    finally:
        simulator.stop()


def test_pesos_follow_the_published_schedule(stack):
    client = login(stack["portal"], stack["account"]["email"], stack["account"]["password"])
    supply_id = stack["account"]["supply_ids"].split(";")[0]
    tariffs = client.get(f"/api/v1/supplies/{supply_id}/tariffs").json()
    assert [row["valid_from"] for row in tariffs] == ["2026-01-01", "2026-07-01"]
    series = client.get(f"/api/v1/supplies/{supply_id}/consumption",
                        params={"granularity": "day", "from": "2026-06-29", "to": "2026-07-03"}).json()
    assert series["prices_available"] is True
    rates = [tariffs[0]["energy_clp_per_kwh"]] * 2 + [tariffs[1]["energy_clp_per_kwh"]] * 2
    for point, rate in zip(series["points"], rates, strict=True):
        assert point["clp"] == round(point["kwh"] * rate * 1.19)
    page = client.get(f"/supplies/{supply_id}")
    assert 'data-prices="yes"' in page.text


def test_published_schedule_reprices_the_bills(stack):
    client = login(stack["portal"], stack["account"]["email"], stack["account"]["password"])
    supply_id = stack["account"]["supply_ids"].split(";")[0]
    tariffs = client.get(f"/api/v1/supplies/{supply_id}/tariffs").json()
    bills = client.get(f"/api/v1/supplies/{supply_id}/bills").json()
    assert bills
    for bill in bills:
        last_day = bill["period_end"]
        row = next(r for r in tariffs if r["valid_from"] < last_day <= (r["valid_to"] or "9999"))
        assert price_period(bill["kwh"], bill["received_kwh"] or 0.0, row)["total_clp"] == bill["total_clp"]
