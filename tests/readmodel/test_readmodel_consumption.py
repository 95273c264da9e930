"""Consumption series from a snapshot: every granularity, the 2026 DST days, gaps, quality and net flow."""

from datetime import date, datetime, timedelta

import pytest

from snapshot_factory import (
    ESTIMATED_END,
    GAP_END,
    NULL_END,
    OTHER_CUSTOMER_SUPPLY,
    PLAIN_SUPPLY,
    SOLAR_SUPPLY,
    synthetic_kwh,
)

FALL_BACK_DAY = date(2026, 4, 4)  # 25 hours
SPRING_FORWARD_DAY = date(2026, 9, 6)  # 23 hours, starts at 01:00
NEXT = timedelta(days=1)


def kwh_values(series):
    return [point["kwh"] for point in series["points"]]


def test_response_shape_follows_the_json_contract(read_model):
    series = read_model.consumption(SOLAR_SUPPLY, "day", date(2026, 4, 1), date(2026, 4, 3), "delivered")
    assert set(series) == {"supply_id", "unit", "timezone", "granularity", "as_of", "from", "to", "flow",
                           "prices_available", "points"}
    assert series["unit"] == "kWh"
    assert series["timezone"] == "America/Santiago"
    assert series["as_of"] == "2026-09-10T12:00:00+00:00"
    assert (series["from"], series["to"], series["flow"]) == ("2026-04-01", "2026-04-03", "delivered")
    assert set(series["points"][0]) == {"start", "end", "kwh", "quality", "clp"}
    assert series["prices_available"] is False and series["points"][0]["clp"] is None  # no tariffs table


@pytest.mark.parametrize(
    ("day", "quarter_hours", "hours", "first_start", "last_end"),
    [
        (FALL_BACK_DAY, 100, 25, "2026-04-04T00:00:00-03:00", "2026-04-05T00:00:00-04:00"),
        (SPRING_FORWARD_DAY, 92, 23, "2026-09-06T01:00:00-03:00", "2026-09-07T00:00:00-03:00"),
        (date(2026, 4, 8), 96, 24, "2026-04-08T00:00:00-04:00", "2026-04-09T00:00:00-04:00"),
    ],
)
def test_dst_days_have_the_right_number_of_points_and_add_up(
    read_model, day, quarter_hours, hours, first_start, last_end
):
    quarter = read_model.consumption(PLAIN_SUPPLY, "15min", day, day + NEXT, "delivered")
    hourly = read_model.consumption(PLAIN_SUPPLY, "hour", day, day + NEXT, "delivered")
    daily = read_model.consumption(PLAIN_SUPPLY, "day", day, day + NEXT, "delivered")

    assert len(quarter["points"]) == quarter_hours
    assert len(hourly["points"]) == hours
    assert quarter["points"][0]["start"] == hourly["points"][0]["start"] == daily["points"][0]["start"] == first_start
    assert quarter["points"][-1]["end"] == hourly["points"][-1]["end"] == daily["points"][0]["end"] == last_end
    assert all(point["quality"] == "actual" for point in quarter["points"] + hourly["points"])
    day_total = daily["points"][0]["kwh"]
    assert sum(kwh_values(quarter)) == pytest.approx(day_total, abs=1e-9)
    assert sum(kwh_values(hourly)) == pytest.approx(day_total, abs=1e-9)


def test_points_are_contiguous_and_values_land_in_their_own_quarter_hour(read_model):
    series = read_model.consumption(PLAIN_SUPPLY, "15min", FALL_BACK_DAY, FALL_BACK_DAY + NEXT, "delivered")
    for earlier, later in zip(series["points"], series["points"][1:]):
        assert earlier["end"] == later["start"]
    for point in series["points"]:
        interval_end = datetime.fromisoformat(point["end"])
        assert point["kwh"] == synthetic_kwh(interval_end, "delivered")
    # the repeated 23:00 hour appears twice, once per offset
    starts = [point["start"] for point in series["points"]]
    assert "2026-04-04T23:00:00-03:00" in starts and "2026-04-04T23:00:00-04:00" in starts


def test_absent_and_null_intervals_are_missing_points_and_taint_their_aggregates(read_model):
    gap_day, null_day = date(2026, 3, 30), date(2026, 3, 31)
    quarter = read_model.consumption(SOLAR_SUPPLY, "15min", gap_day, null_day + NEXT, "delivered")
    by_end = {datetime.fromisoformat(point["end"]): point for point in quarter["points"]}
    assert by_end[GAP_END] == {**by_end[GAP_END], "kwh": None, "quality": "missing"}
    assert by_end[NULL_END]["kwh"] is None and by_end[NULL_END]["quality"] == "missing"
    assert len(quarter["points"]) == 2 * 96

    hourly = read_model.consumption(SOLAR_SUPPLY, "hour", gap_day, gap_day + NEXT, "delivered")
    missing_hours = [point for point in hourly["points"] if point["quality"] == "missing"]
    assert [point["end"] for point in missing_hours] == ["2026-03-30T12:00:00-03:00"]
    # the hour keeps the three quarter-hours that did arrive
    arrived = [GAP_END - timedelta(minutes=15 * k) for k in (1, 2, 3)]
    assert missing_hours[0]["kwh"] == pytest.approx(sum(synthetic_kwh(end, "delivered") for end in arrived))

    days = read_model.consumption(SOLAR_SUPPLY, "day", date(2026, 3, 29), date(2026, 4, 1), "delivered")
    assert [point["quality"] for point in days["points"]] == ["actual", "missing", "missing"]


def test_days_without_data_are_missing_points(read_model):
    series = read_model.consumption(SOLAR_SUPPLY, "day", date(2026, 3, 23), date(2026, 3, 26), "delivered")
    assert [(point["kwh"] is None, point["quality"]) for point in series["points"]] == [
        (True, "missing"), (True, "missing"), (False, "actual"),
    ]


def test_estimated_and_edited_quality_propagate_to_aggregates(read_model):
    hourly = read_model.consumption(SOLAR_SUPPLY, "hour", date(2026, 4, 1), date(2026, 4, 3), "delivered")
    qualities = {point["end"]: point["quality"] for point in hourly["points"]}
    assert qualities["2026-04-01T12:00:00-03:00"] == "estimated"
    assert qualities["2026-04-02T12:00:00-03:00"] == "edited"
    assert sum(quality != "actual" for quality in qualities.values()) == 2
    daily = read_model.consumption(SOLAR_SUPPLY, "day", date(2026, 4, 1), date(2026, 4, 3), "delivered")
    assert [point["quality"] for point in daily["points"]] == ["estimated", "edited"]
    quarter = read_model.consumption(SOLAR_SUPPLY, "15min", date(2026, 4, 1), date(2026, 4, 2), "delivered")
    estimated = [point for point in quarter["points"] if point["quality"] == "estimated"]
    assert [datetime.fromisoformat(point["end"]) for point in estimated] == [ESTIMATED_END]


def test_month_granularity_uses_whole_months_and_sums_partial_edges_from_daily(read_model):
    series = read_model.consumption(PLAIN_SUPPLY, "month", date(2026, 3, 28), date(2026, 9, 8), "delivered")
    points = series["points"]
    assert [point["start"] for point in points] == [
        "2026-03-28T00:00:00-03:00", "2026-04-01T00:00:00-03:00", "2026-05-01T00:00:00-04:00",
        "2026-06-01T00:00:00-04:00", "2026-07-01T00:00:00-04:00", "2026-08-01T00:00:00-04:00",
        "2026-09-01T00:00:00-04:00",
    ]
    assert points[-1]["end"] == "2026-09-08T00:00:00-03:00"
    march_days = read_model.consumption(PLAIN_SUPPLY, "day", date(2026, 3, 28), date(2026, 4, 1), "delivered")
    assert points[0]["kwh"] == pytest.approx(sum(kwh_values(march_days)))
    assert points[0]["quality"] == "actual"
    september_days = read_model.consumption(PLAIN_SUPPLY, "day", date(2026, 9, 1), date(2026, 9, 8), "delivered")
    assert points[-1]["kwh"] == pytest.approx(sum(kwh_values(september_days)))
    # April has data only up to the 11th, so the whole-month row covers too few days
    assert points[1]["quality"] == "missing"
    assert points[2] == {**points[2], "kwh": None, "quality": "missing"}


def test_net_is_delivered_minus_received_per_point(read_model):
    window = (date(2026, 4, 4), date(2026, 4, 5))
    delivered = read_model.consumption(SOLAR_SUPPLY, "hour", *window, "delivered")
    received = read_model.consumption(SOLAR_SUPPLY, "hour", *window, "received")
    net = read_model.consumption(SOLAR_SUPPLY, "hour", *window, "net")
    assert len(net["points"]) == 25
    for d, r, n in zip(delivered["points"], received["points"], net["points"]):
        assert n["kwh"] == pytest.approx(d["kwh"] - r["kwh"])
        assert n["kwh"] != d["kwh"]


def test_net_of_a_supply_without_solar_equals_delivered(read_model):
    window = (date(2026, 9, 2), date(2026, 9, 4))
    delivered = read_model.consumption(PLAIN_SUPPLY, "day", *window, "delivered")
    net = read_model.consumption(PLAIN_SUPPLY, "day", *window, "net")
    assert net["points"] == delivered["points"]


def test_kwh_are_rounded_to_six_decimals(read_model):
    series = read_model.consumption(SOLAR_SUPPLY, "month", date(2026, 3, 1), date(2026, 10, 1), "net")
    for point in series["points"]:
        if point["kwh"] is not None:
            assert round(point["kwh"], 6) == point["kwh"]


@pytest.mark.parametrize(
    ("granularity", "flow", "from_date", "to_date"),
    [
        ("week", "delivered", date(2026, 4, 1), date(2026, 4, 2)),
        ("day", "both", date(2026, 4, 1), date(2026, 4, 2)),
        ("day", "delivered", date(2026, 4, 2), date(2026, 4, 2)),
    ],
)
def test_invalid_requests_raise_value_error(read_model, granularity, flow, from_date, to_date):
    with pytest.raises(ValueError):
        read_model.consumption(OTHER_CUSTOMER_SUPPLY, granularity, from_date, to_date, flow)
