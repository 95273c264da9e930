"""Live balance (`GET /api/v1/supplies/<id>/balance`) against the simulator process: the fresh value equals
billing's ground truth; under every injected fault the customer gets the last known balance marked stale with
its age, or a Spanish 503 when there is none; never a stale value presented as current."""

from __future__ import annotations

import httpx
import pytest

from live_testkit import set_fault

FAULTS = ["hang", "slow", "http500", "malformed", "failed", "partial"]


def expected_balance(simulator_url: str, supply_id: str) -> tuple[int, str | None]:
    bills = httpx.get(f"{simulator_url}/truth/bills", params={"supply_id": supply_id}).json()
    unpaid = [bill for bill in bills if bill["status"] != "paid"]
    return sum(bill["total_clp"] for bill in unpaid), min((bill["due_date"] for bill in unpaid), default=None)


def test_balance_is_read_live_from_billing(customer, world, simulator):
    supply_id = world["supply"]["supply_id"]
    response = customer.get(f"/api/v1/supplies/{supply_id}/balance")
    assert response.status_code == 200
    body = response.get_json()
    amount, due_date = expected_balance(simulator["url"], supply_id)
    assert body["amount_due_clp"] == amount and isinstance(body["amount_due_clp"], int)
    assert body["due_date"] == due_date
    assert body["payment_status"] in ("paid", "due", "overdue")
    assert (body["payment_status"] == "paid") == (amount == 0)
    assert body["stale"] is False and body["as_of"].endswith(("-03:00", "-04:00"))


def test_balance_of_another_customers_supply_is_404(customer, world):
    assert customer.get(f"/api/v1/supplies/{world['other_supply_id']}/balance").status_code == 404
    assert customer.get("/api/v1/supplies/99999999/balance").status_code == 404


@pytest.mark.parametrize("mode", FAULTS)
def test_balance_fault_without_a_previous_value_is_a_spanish_503(mode, customer, world, simulator):
    set_fault(simulator["url"], "billing", mode, **({"delay_s": 3} if mode == "slow" else {}))
    response = customer.get(f"/api/v1/supplies/{world['supply']['supply_id']}/balance")
    assert response.status_code == 503
    body = response.get_json()
    assert body["error"] == "No pudimos consultar tu saldo en este momento. Intenta nuevamente en unos minutos."
    assert "amount_due_clp" not in body


@pytest.mark.parametrize("mode", FAULTS)
def test_balance_fault_serves_the_last_known_value_marked_stale(mode, customer, world, simulator):
    path = f"/api/v1/supplies/{world['supply']['supply_id']}/balance"
    fresh = customer.get(path).get_json()
    set_fault(simulator["url"], "billing", mode, **({"delay_s": 3} if mode == "slow" else {}))
    response = customer.get(path)
    assert response.status_code == 200
    body = response.get_json()
    assert body["stale"] is True
    assert body["amount_due_clp"] == fresh["amount_due_clp"] and body["due_date"] == fresh["due_date"]
    assert body["as_of"] == fresh["as_of"]  # the time it was read, not now
    assert body["age_seconds"] >= 0
    assert body["message"].startswith("No pudimos consultar tu saldo actualizado. Te mostramos el último saldo "
                                      "conocido, consultado hace ")


def test_slow_billing_within_the_deadline_still_answers_fresh(customer, world, simulator):
    set_fault(simulator["url"], "billing", "slow", delay_s=0.2)
    body = customer.get(f"/api/v1/supplies/{world['supply']['supply_id']}/balance").get_json()
    assert body["stale"] is False


def test_last_known_balance_is_shared_between_app_instances(make_app, world, simulator):
    """Gunicorn workers are separate processes: the fallback lives in the shared store, not in memory."""
    from live_testkit import LoggedIn

    path = f"/api/v1/supplies/{world['supply']['supply_id']}/balance"
    first = LoggedIn(make_app().test_client(), world["email"])
    fresh = first.get(path).get_json()
    set_fault(simulator["url"], "billing", "http500")
    second = LoggedIn(make_app().test_client(), world["email"])
    body = second.get(path).get_json()
    assert body["stale"] is True and body["amount_due_clp"] == fresh["amount_due_clp"]
