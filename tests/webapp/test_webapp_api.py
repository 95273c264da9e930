"""The JSON API: contract shapes, ownership (404 like non-existent), 400s for bad parameters, 401 not redirect."""

import pytest

from portal_testkit import BRUNO


def test_api_needs_login_and_answers_json_401_never_a_redirect(client):
    for path in ("/api/v1/supplies", "/api/v1/supplies/30000001/consumption", "/api/v1/supplies/30000001/bills"):
        response = client.get(path)
        assert response.status_code == 401
        assert response.is_json and "error" in response.get_json()


def test_supplies_lists_only_the_callers_supplies_with_contract_fields(logged_in):
    response = logged_in.get("/api/v1/supplies")
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    supplies = response.get_json()
    assert [supply["supply_id"] for supply in supplies] == ["30000001", "30000002"]
    for field in ("supply_id", "usage_point_mrid", "meter_mrid", "address", "comuna", "tariff"):
        assert field in supplies[0]


def test_consumption_follows_the_contract(logged_in):
    response = logged_in.get(
        "/api/v1/supplies/30000002/consumption?granularity=hour&from=2026-04-04&to=2026-04-05&flow=delivered"
    )
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    body = response.get_json()
    assert body["unit"] == "kWh" and body["timezone"] == "America/Santiago" and body["granularity"] == "hour"
    assert body["as_of"] == "2026-09-10T12:00:00+00:00"
    assert len(body["points"]) == 25
    assert body["points"][0]["start"] == "2026-04-04T00:00:00-03:00"


def test_consumption_defaults_to_daily_delivered(logged_in):
    body = logged_in.get("/api/v1/supplies/30000001/consumption?to=2026-04-10").get_json()
    assert (body["granularity"], body["flow"], body["from"], body["to"]) == ("day", "delivered", "2025-03-10",
                                                                             "2026-04-10")
    assert len(body["points"]) == 396


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("granularity=week", "granularity"),
        ("flow=both", "flow"),
        ("from=2026-13-01&to=2026-12-01", "from"),
        ("from=01-04-2026&to=2026-04-05", "from"),
        ("from=2026-04-01&to=tomorrow", "to"),
        ("from=2026-04-05&to=2026-04-05", "from"),
        ("from=2026-04-06&to=2026-04-05", "from"),
        ("granularity=15min&from=2026-03-01&to=2026-04-02", "to"),
        ("granularity=hour&from=2026-01-01&to=2026-04-04", "to"),
        ("granularity=day&from=2024-01-01&to=2026-04-01", "to"),
        ("granularity=month&from=2016-01-01&to=2026-01-02", "to"),
    ],
)
def test_consumption_bad_parameters_are_400_json_naming_the_field(logged_in, query, field):
    response = logged_in.get(f"/api/v1/supplies/30000001/consumption?{query}")
    assert response.status_code == 400
    body = response.get_json()
    assert body["field"] == field and body["error"]


@pytest.mark.parametrize(
    "query",
    ["granularity=15min&from=2026-03-01&to=2026-04-01", "granularity=hour&from=2026-01-01&to=2026-04-03",
     "granularity=month&from=2016-01-01&to=2026-01-01"],
)
def test_consumption_ranges_at_the_limit_are_accepted(logged_in, query):
    assert logged_in.get(f"/api/v1/supplies/30000001/consumption?{query}").status_code == 200


def test_other_customers_supply_is_404_exactly_like_a_missing_one(logged_in):
    for suffix in ("consumption?granularity=day&from=2026-04-01&to=2026-04-02", "bills",
                   "bills/B30000003-202603"):
        foreign = logged_in.get(f"/api/v1/supplies/30000003/{suffix}")
        missing = logged_in.get(f"/api/v1/supplies/39999999/{suffix}")
        assert foreign.status_code == missing.status_code == 404
        assert foreign.get_json() == missing.get_json()


def test_a_bill_of_another_supply_is_404_even_under_an_own_supply(logged_in):
    assert logged_in.get("/api/v1/supplies/30000001/bills/B30000003-202603").status_code == 404
    assert logged_in.get("/api/v1/supplies/30000002/bills/B30000001-202603").status_code == 404


def test_bills_and_bill_detail(logged_in):
    bills = logged_in.get("/api/v1/supplies/30000001/bills").get_json()
    assert [bill["bill_id"] for bill in bills] == ["B30000001-202603", "B30000001-202602"]
    assert bills[0]["total_clp"] == 35700
    detail = logged_in.get("/api/v1/supplies/30000001/bills/B30000001-202603").get_json()
    assert [line["amount_clp"] for line in detail["lines"]] == [1200, 28800]


def test_customer_b_sees_only_their_own(auth, client):
    auth.login(BRUNO)
    assert [s["supply_id"] for s in client.get("/api/v1/supplies").get_json()] == ["30000003"]
    assert client.get("/api/v1/supplies/30000001/bills").status_code == 404
    assert client.get("/api/v1/supplies/30000003/bills").status_code == 200


def test_openapi_describes_the_api(client):
    spec = client.get("/api/v1/openapi.json").get_json()
    assert spec["openapi"].startswith("3.")
    assert "/supplies/{supply_id}/consumption" in spec["paths"]


def test_unknown_api_path_is_json_404(logged_in):
    response = logged_in.get("/api/v1/nothing-here")
    assert response.status_code == 404 and response.is_json
