""""Today so far" (`GET /api/v1/supplies/<id>/today`): the 15-minute intervals newer than the last publish,
fetched live from the simulated MDM and marked provisional; each injected fault gives a Spanish message."""

from __future__ import annotations

import datetime as dt

import httpx
import pytest

from live_testkit import set_fault
from readmodel.timeutil import local_midnight_utc, local_today

SANTIAGO_OFFSETS = ("-03:00", "-04:00")


def truth_points(simulator_url: str, world: dict) -> list[tuple[dt.datetime, float]]:
    """Ground truth: intervals ending after max(last publish, local midnight) up to the simulator's clock."""
    today = local_today(world["simulator_now"])
    since = max(world["data_until"], local_midnight_utc(today))
    truth = httpx.get(f"{simulator_url}/truth/intervals", params={
        "supply_id": world["supply"]["supply_id"], "from": today.isoformat(),
        "to": (today + dt.timedelta(days=1)).isoformat()}).json()["points"]
    return [(dt.datetime.fromisoformat(point["interval_end"]), point["wh"] / 1000) for point in truth
            if dt.datetime.fromisoformat(point["interval_end"]) > since]


def test_today_returns_provisional_intervals_newer_than_the_last_publish(customer, world, simulator):
    response = customer.get(f"/api/v1/supplies/{world['supply']['supply_id']}/today")
    assert response.status_code == 200
    body = response.get_json()
    assert body["provisional"] is True and body["unit"] == "kWh" and body["timezone"] == "America/Santiago"
    assert body["message"] == "Datos de hoy provisionales: aún no están validados y pueden cambiar."
    got = [(dt.datetime.fromisoformat(point["end"]), point["kwh"]) for point in body["points"]]
    assert got == [(end, pytest.approx(kwh, abs=0.0005)) for end, kwh in truth_points(simulator["url"], world)]
    for point in body["points"]:
        assert point["provisional"] is True and point["end"].endswith(SANTIAGO_OFFSETS)
        assert dt.datetime.fromisoformat(point["end"]) - dt.datetime.fromisoformat(point["start"]) == \
            dt.timedelta(minutes=15)
        assert dt.datetime.fromisoformat(point["end"]) > world["data_until"]


def test_today_of_another_customers_supply_is_404(customer, world):
    assert customer.get(f"/api/v1/supplies/{world['other_supply_id']}/today").status_code == 404


def test_today_rejects_an_unknown_flow_in_spanish(customer, world):
    response = customer.get(f"/api/v1/supplies/{world['supply']['supply_id']}/today?flow=sideways")
    assert response.status_code == 400 and response.get_json()["error"].startswith("Flujo desconocido")


@pytest.mark.parametrize("mode", ["hang", "slow", "http500", "malformed", "failed"])
def test_today_fault_gives_a_spanish_503(mode, customer, world, simulator):
    set_fault(simulator["url"], "mdm", mode, **({"delay_s": 3} if mode == "slow" else {}))
    response = customer.get(f"/api/v1/supplies/{world['supply']['supply_id']}/today")
    assert response.status_code == 503
    body = response.get_json()
    assert body["error"] == "No pudimos obtener el consumo de hoy en este momento. Intenta nuevamente en unos minutos."
    assert body["points"] == []


def test_today_partial_reply_shows_what_arrived_with_a_warning(customer, world, simulator):
    set_fault(simulator["url"], "mdm", "partial")
    response = customer.get(f"/api/v1/supplies/{world['supply']['supply_id']}/today")
    assert response.status_code == 200
    body = response.get_json()
    assert body["partial"] is True
    assert body["message"].startswith("Algunos datos de hoy aún no están disponibles.")
    assert len(body["points"]) == len(truth_points(simulator["url"], world))
