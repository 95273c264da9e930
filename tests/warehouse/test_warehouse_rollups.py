"""warehouse.rollups: DST-aware local days, quality precedence, hand-summed daily and monthly totals."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from warehouse_frames import SUPPLY_A, SUPPLY_B, UTC, intervals_frame

from warehouse.loads import upsert_interval_readings
from warehouse.rollups import expected_intervals, local_midnight_utc, rebuild_daily, rebuild_monthly

# UTC instants of local midnight, written out by hand from the Chilean rules (-04:00 in winter, -03:00 in summer).
LOCAL_MIDNIGHT_UTC = {
    dt.date(2026, 4, 4): dt.datetime(2026, 4, 4, 3, 0, tzinfo=UTC),
    dt.date(2026, 6, 1): dt.datetime(2026, 6, 1, 4, 0, tzinfo=UTC),
    dt.date(2026, 9, 6): dt.datetime(2026, 9, 6, 4, 0, tzinfo=UTC),  # 00:00 does not exist; the day starts 01:00
    dt.date(2026, 9, 7): dt.datetime(2026, 9, 7, 3, 0, tzinfo=UTC),
}
QUARTER_HOURS = {dt.date(2026, 4, 4): 100, dt.date(2026, 6, 1): 96, dt.date(2026, 9, 6): 92}


def _kwh(index: int) -> float:
    return round(0.05 + 0.011 * (index % 13), 3)


def _day_rows(usage_point, first_end, count, qualities=None, flow="delivered"):
    """`count` quarter-hours from `first_end`; qualities maps index -> quality (`missing` means no value)."""
    qualities = qualities or {}
    rows = []
    for index in range(count):
        quality = qualities.get(index, "actual")
        kwh = None if quality == "missing" else _kwh(index)
        rows.append((usage_point, first_end + dt.timedelta(minutes=15 * index), kwh, quality, flow))
    return rows


def _hand_sum(count, qualities=None) -> Decimal:
    qualities = qualities or {}
    return sum(
        (Decimal(str(_kwh(index))) for index in range(count) if qualities.get(index) != "missing"), Decimal(0)
    )


def _daily(con, supply_id, flow="delivered"):
    return con.execute(
        "SELECT local_date, kwh, intervals, expected_intervals, estimated_intervals, edited_intervals, "
        "missing_intervals, quality FROM daily_consumption WHERE supply_id = ? AND flow = ? ORDER BY local_date",
        [supply_id, flow],
    ).fetchall()


@pytest.mark.parametrize(
    ("local_date", "interval_seconds", "expected"),
    [
        (dt.date(2026, 4, 4), 900, 100),
        (dt.date(2026, 9, 6), 900, 92),
        (dt.date(2026, 6, 1), 900, 96),
        (dt.date(2026, 4, 4), 3600, 25),
        (dt.date(2026, 9, 6), 3600, 23),
        (dt.date(2025, 4, 5), 900, 100),
        (dt.date(2025, 9, 7), 900, 92),
        (dt.date(2026, 1, 15), 300, 288),
    ],
)
def test_expected_intervals_follow_the_zone(local_date, interval_seconds, expected):
    assert expected_intervals(local_date, interval_seconds) == expected


@pytest.mark.parametrize("local_date", sorted(LOCAL_MIDNIGHT_UTC))
def test_local_midnight_utc(local_date):
    assert local_midnight_utc(local_date) == LOCAL_MIDNIGHT_UTC[local_date]


def test_daily_on_clock_change_days_counts_every_interval(loaded_con):
    rows = []
    for day, count in QUARTER_HOURS.items():
        # One interval more on each side: the previous day's last and the next day's first must not leak in.
        first_end = LOCAL_MIDNIGHT_UTC[day] + dt.timedelta(minutes=15)
        rows += _day_rows(SUPPLY_A[1], first_end - dt.timedelta(minutes=15), count + 2)
    upsert_interval_readings(loaded_con, intervals_frame(rows))
    written = rebuild_daily(loaded_con, dt.date(2026, 4, 4), dt.date(2026, 9, 6))
    daily = {row[0]: row for row in _daily(loaded_con, SUPPLY_A[0])}
    for day, count in QUARTER_HOURS.items():
        hand_sum = sum((Decimal(str(_kwh(index))) for index in range(1, count + 1)), Decimal(0))
        assert daily[day][1:] == (hand_sum, count, count, 0, 0, 0, "actual"), day
    # The spill-over intervals make partial neighbour days, all flagged missing; 3 April and 7 September lie
    # outside the rebuilt range.
    neighbours = [row for day, row in daily.items() if day not in QUARTER_HOURS]
    assert {row[0] for row in neighbours} == {
        dt.date(2026, 4, 5), dt.date(2026, 5, 31), dt.date(2026, 6, 2), dt.date(2026, 9, 5),
    }
    assert all(row[2] == 1 and row[7] == "missing" for row in neighbours)
    assert written == len(daily)


def test_daily_quality_precedence_and_counts(loaded_con):
    days = {
        dt.date(2026, 6, 1): {5: "missing", 6: "estimated", 7: "edited"},
        dt.date(2026, 6, 2): {6: "estimated", 7: "edited"},
        dt.date(2026, 6, 3): {7: "edited"},
        dt.date(2026, 6, 4): {},
    }
    rows = []
    for day, qualities in days.items():
        first_end = dt.datetime.combine(day, dt.time(4, 15), tzinfo=UTC)
        rows += _day_rows(SUPPLY_A[1], first_end, 96, qualities)
    upsert_interval_readings(loaded_con, intervals_frame(rows))
    rebuild_daily(loaded_con, dt.date(2026, 6, 1), dt.date(2026, 6, 4))
    assert _daily(loaded_con, SUPPLY_A[0]) == [
        (dt.date(2026, 6, 1), _hand_sum(96, days[dt.date(2026, 6, 1)]), 95, 96, 1, 1, 1, "missing"),
        (dt.date(2026, 6, 2), _hand_sum(96), 96, 96, 1, 1, 0, "estimated"),
        (dt.date(2026, 6, 3), _hand_sum(96), 96, 96, 0, 1, 0, "edited"),
        (dt.date(2026, 6, 4), _hand_sum(96), 96, 96, 0, 0, 0, "actual"),
    ]


def test_rebuild_is_idempotent_limited_to_its_range_and_picks_up_corrections(loaded_con):
    rows = []
    for day in (dt.date(2026, 6, 1), dt.date(2026, 6, 2)):
        rows += _day_rows(SUPPLY_A[1], dt.datetime.combine(day, dt.time(4, 15), tzinfo=UTC), 96)
    upsert_interval_readings(loaded_con, intervals_frame(rows))
    rebuild_daily(loaded_con, dt.date(2026, 6, 1), dt.date(2026, 6, 2))
    before = _daily(loaded_con, SUPPLY_A[0])
    assert rebuild_daily(loaded_con, dt.date(2026, 6, 1), dt.date(2026, 6, 2)) == 2
    assert _daily(loaded_con, SUPPLY_A[0]) == before

    first_interval_of = {
        day: dt.datetime.combine(day, dt.time(4, 15), tzinfo=UTC) for day in (dt.date(2026, 6, 1), dt.date(2026, 6, 2))
    }
    corrections = [(SUPPLY_A[1], first_interval_of[day], _kwh(0) + 1.0, "edited") for day in first_interval_of]
    upsert_interval_readings(loaded_con, intervals_frame(corrections))
    rebuild_daily(loaded_con, dt.date(2026, 6, 2), dt.date(2026, 6, 2))
    after = _daily(loaded_con, SUPPLY_A[0])
    assert after[0] == before[0]  # 1 June was not in the rebuilt range
    assert after[1][1] == before[1][1] + Decimal(1)
    assert after[1][-1] == "edited"


def test_flows_and_supplies_roll_up_separately(loaded_con):
    first_end = dt.datetime(2026, 6, 1, 4, 15, tzinfo=UTC)
    rows = _day_rows(SUPPLY_A[1], first_end, 96) + _day_rows(SUPPLY_B[1], first_end, 96, flow="received")
    rows += _day_rows(SUPPLY_B[1], first_end, 96)
    upsert_interval_readings(loaded_con, intervals_frame(rows))
    assert rebuild_daily(loaded_con, dt.date(2026, 6, 1), dt.date(2026, 6, 1)) == 3
    assert _daily(loaded_con, SUPPLY_B[0], "received")[0][1] == _hand_sum(96)


def test_monthly_equals_hand_sum_of_days(loaded_con):
    rows = []
    june = [dt.date(2026, 6, 1) + dt.timedelta(days=offset) for offset in range(30)]
    for day in june:
        qualities = {3: "estimated"} if day.day == 10 else {}
        rows += _day_rows(SUPPLY_A[1], dt.datetime.combine(day, dt.time(4, 15), tzinfo=UTC), 96, qualities)
    for day in (dt.date(2026, 7, 1), dt.date(2026, 7, 2)):
        rows += _day_rows(SUPPLY_A[1], dt.datetime.combine(day, dt.time(4, 15), tzinfo=UTC), 96)
    upsert_interval_readings(loaded_con, intervals_frame(rows))
    rebuild_daily(loaded_con, dt.date(2026, 6, 1), dt.date(2026, 7, 31))
    written = rebuild_monthly(loaded_con, dt.date(2026, 6, 15), dt.date(2026, 7, 20))
    monthly = loaded_con.execute(
        "SELECT month, kwh, days, quality FROM monthly_consumption WHERE supply_id = ? ORDER BY month", [SUPPLY_A[0]]
    ).fetchall()
    assert written == 2
    assert monthly == [
        (dt.date(2026, 6, 1), _hand_sum(96) * 30, 30, "estimated"),
        (dt.date(2026, 7, 1), _hand_sum(96) * 2, 2, "missing"),
    ]
    assert rebuild_monthly(loaded_con, dt.date(2026, 6, 1), dt.date(2026, 7, 1)) == 2
    rebuilt = loaded_con.execute("SELECT month, kwh, days, quality FROM monthly_consumption ORDER BY month")
    assert rebuilt.fetchall() == monthly
