"""The JSON API of the explorer and bills: pesos at the tariff valid each day, billing-period granularity, the
forecast rule, what changed since the previous bill, and clear 400s for bad parameters."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from portal_kit import TARIFFS, snapshot_factory, write_priced_snapshot

SOLAR, PLAIN = snapshot_factory.SOLAR_SUPPLY, snapshot_factory.PLAIN_SUPPLY
IVA = 1.19


def rate_on(day: date) -> dict:
    return next(row for row in TARIFFS if row["valid_from"] <= day and (row["valid_to"] is None or day < row["valid_to"]))


def get(client, path, **params):
    response = client.get(path, query_string=params)
    return response.status_code, response.get_json()


def test_day_points_are_priced_at_the_tariff_of_their_own_day(ana):
    status, series = get(ana, f"/api/v1/supplies/{PLAIN}/consumption", granularity="day", **{"from": "2026-03-30",
                                                                                                  "to": "2026-04-03"})
    assert status == 200 and series["prices_available"] is True
    prices = []
    for point in series["points"]:
        day = date.fromisoformat(point["start"][:10])
        assert point["clp"] == round(point["kwh"] * rate_on(day)["energy_clp_per_kwh"] * IVA)
        prices.append(rate_on(day)["energy_clp_per_kwh"])
    assert prices == [150.0, 150.0, 160.0, 160.0]  # the 1 April change splits the window


def test_fine_points_net_flow_credits_the_injection(ana):
    base = f"/api/v1/supplies/{SOLAR}/consumption"
    window = {"from": "2026-04-05", "to": "2026-04-06", "granularity": "hour"}
    _, delivered = get(ana, base, flow="delivered", **window)
    _, received = get(ana, base, flow="received", **window)
    _, net = get(ana, base, flow="net", **window)
    for d, r, n in zip(delivered["points"], received["points"], net["points"], strict=True):
        assert n["clp"] == round((d["kwh"] * 160.0 - r["kwh"] * 95.0) * IVA)
        assert r["clp"] == round(-r["kwh"] * 95.0 * IVA)


def test_a_month_spanning_a_tariff_change_sums_each_day_at_its_own_price(ana):
    _, days = get(ana, f"/api/v1/supplies/{PLAIN}/consumption", granularity="day",
                  **{"from": "2026-03-25", "to": "2026-04-12"})
    _, months = get(ana, f"/api/v1/supplies/{PLAIN}/consumption", granularity="month",
                    **{"from": "2026-03-25", "to": "2026-04-12"})
    expected = {}
    for point in days["points"]:
        day = date.fromisoformat(point["start"][:10])
        expected.setdefault(day.month, 0.0)
        expected[day.month] += point["kwh"] * rate_on(day)["energy_clp_per_kwh"] * IVA
    assert [point["clp"] for point in months["points"]] == [round(expected[3]), round(expected[4])]


def test_a_new_tariff_never_rewrites_the_past(portal_app, ana, portal_data_dir):
    path = f"/api/v1/supplies/{PLAIN}/consumption"
    window = {"granularity": "day", "from": "2026-03-25", "to": "2026-04-12"}
    _, before = get(ana, path, **window)
    later = [dict(row) for row in TARIFFS]
    later[-1]["valid_to"] = date(2026, 9, 5)
    later.append({"valid_from": date(2026, 9, 5), "valid_to": None, "tariff": "BT1", "fixed_clp_month": 1500,
                  "energy_clp_per_kwh": 400.0, "injection_clp_per_kwh": 200.0})
    write_priced_snapshot(portal_data_dir / "readmodel", tariffs=later, published_at="2026-09-11T12:00:00+00:00")
    portal_app.extensions["read_model"]._connections.recheck_seconds = 0
    _, after = get(ana, path, **window)
    assert after["as_of"] != before["as_of"]
    assert [p["clp"] for p in after["points"]] == [p["clp"] for p in before["points"]]
    _, september = get(ana, path, granularity="day", **{"from": "2026-09-04", "to": "2026-09-06"})
    first, second = september["points"]
    assert first["clp"] == round(first["kwh"] * 170.0 * IVA) and second["clp"] == round(second["kwh"] * 400.0 * IVA)


def test_billing_period_granularity_follows_the_bills(ana):
    _, series = get(ana, f"/api/v1/supplies/{SOLAR}/consumption", granularity="billing_period",
                    **{"from": "2026-02-01", "to": "2026-05-01"})
    starts = [(p["start"][:10], p["end"][:10], p.get("bill_id")) for p in series["points"]]
    assert starts == [("2026-02-01", "2026-03-01", "B30000001-202602"), ("2026-03-01", "2026-04-01",
                      "B30000001-202603"), ("2026-04-01", "2026-05-01", None)]
    _, days = get(ana, f"/api/v1/supplies/{SOLAR}/consumption", granularity="day",
                  **{"from": "2026-03-01", "to": "2026-04-01"})
    known = [p["kwh"] for p in days["points"] if p["kwh"] is not None]
    assert series["points"][1]["kwh"] == pytest.approx(sum(known))
    assert series["points"][0]["quality"] == "missing" and series["points"][0]["kwh"] is None


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"granularity": "week"}, "granularity"),
        ({"flow": "sideways"}, "flow"),
        ({"from": "2026-04-10", "to": "2026-04-01"}, "from"),
        ({"from": "2026-04-01", "to": "2026-04-01"}, "from"),
        ({"granularity": "15min", "from": "2026-01-01", "to": "2026-03-01"}, "to"),
        ({"granularity": "billing_period", "from": "2000-01-01", "to": "2026-03-01"}, "to"),
        ({"from": "2026-02-30"}, "from"),
        ({"from": "01-04-2026"}, "from"),
        ({"to": "9999-12-31"}, "to"),
        ({"from": "1999-12-31", "to": "2000-01-02"}, "from"),
    ],
)
def test_bad_parameters_get_a_400_with_a_clear_json_error(ana, params, field):
    status, body = get(ana, f"/api/v1/supplies/{SOLAR}/consumption", **params)
    assert status == 400
    assert body["field"] == field and len(body["error"]) > 10


def test_forecast_waits_for_enough_days(ana):
    status, forecast = get(ana, f"/api/v1/supplies/{SOLAR}/forecast")
    assert status == 200
    assert (forecast["period_start"], forecast["period_end"]) == ("2026-09-01", "2026-10-01")
    assert forecast["days_read"] == 9 and forecast["min_days"] == 10
    assert forecast["available"] is False and "projected_kwh" not in forecast


def test_forecast_projects_the_period_like_a_bill(portal_app, ana, portal_data_dir):
    """20 complete days of September: kWh / 20 x 30, priced with September's tariff, IVA on the net."""
    world = snapshot_factory.demo_world()
    plain = [row for row in world["supplies"] if row["supply_id"] == PLAIN]
    plain[0]["data_until"] = snapshot_factory.local_midnight(date(2026, 9, 21))
    intervals = [
        {"supply_id": PLAIN, "flow": "delivered", "interval_end": end, "interval_seconds": 900,
         "kwh": snapshot_factory.synthetic_kwh(end, "delivered"), "quality": "actual"}
        for end in snapshot_factory.quarter_hour_ends(date(2026, 9, 1), date(2026, 9, 21))
    ]
    write_priced_snapshot(portal_data_dir / "readmodel", published_at="2026-09-21T12:00:00+00:00",
                          supplies=plain, intervals=intervals, bills=[], bill_lines=[])
    portal_app.extensions["read_model"]._connections.recheck_seconds = 0
    _, forecast = get(ana, f"/api/v1/supplies/{PLAIN}/forecast")
    read = sum(row["kwh"] for row in intervals)
    assert forecast["available"] is True and forecast["days_read"] == 20
    projected = read / 20 * 30
    assert forecast["projected_kwh"] == round(projected, 1)
    energy = int(projected * 170.0 + 0.5)
    net = 1200 + energy
    assert forecast["projected_net_clp"] == net
    assert forecast["projected_total_clp"] == net + int(net * 0.19 + 0.5)


def test_bill_detail_explains_the_difference_with_the_previous_bill(ana):
    status, bill = get(ana, f"/api/v1/supplies/{SOLAR}/bills/B30000001-202603")
    assert status == 200
    changes = bill["changes_from_previous"]
    assert changes["previous"]["bill_id"] == "B30000001-202602"
    assert (changes["current"]["days"], changes["previous"]["days"], changes["days_diff"]) == (31, 28, 3)
    assert changes["price_changed"] is False and changes["current"]["energy_clp_per_kwh"] == 153.8
    # March has data from the 25th only, and the 30th and 31st each lack a quarter-hour: 24 + 2 days without
    # complete data; February has none at all
    assert changes["current"]["missing_days"] == 26 and changes["previous"]["missing_days"] == 28
    assert bill["links"]["pdf"] == "/supplies/30000001/bills/B30000001-202603.pdf"
    _, first = get(ana, f"/api/v1/supplies/{SOLAR}/bills/B30000001-202602")
    assert first["changes_from_previous"] is None


def test_tariffs_endpoint_and_ownership(ana):
    status, tariffs = get(ana, f"/api/v1/supplies/{SOLAR}/tariffs")
    assert status == 200
    assert [row["valid_from"] for row in tariffs] == ["2025-07-01", "2026-04-01", "2026-07-01"]
    assert tariffs[-1]["valid_to"] is None and tariffs[0]["energy_clp_per_kwh"] == 150.0
    for path in ("/tariffs", "/forecast", "/consumption"):
        assert ana.get(f"/api/v1/supplies/30000003{path}").status_code == 404
