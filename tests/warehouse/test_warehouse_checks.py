"""The data-quality rules behind the asset checks: each passes on clean data and fails on a crafted bad input,
with metadata that points at the offending rows."""

from __future__ import annotations

import datetime as dt

import polars as pl
import pytest
from warehouse_frames import (
    BILL_LINES_SCHEMA,
    BILLS_SCHEMA,
    REGISTER_DELIVERED,
    REGISTERS_SCHEMA,
    SUPPLY_A,
    SUPPLY_B,
    intervals_frame,
    local_day_intervals,
)

from warehouse import loads, queries
from warehouse.rollups import local_midnight_utc

DAYS = (dt.date(2026, 9, 5), dt.date(2026, 9, 6))  # 6 September 2026: clocks spring forward, 92 quarter-hours
AFTER = dt.datetime(2026, 9, 8, tzinfo=dt.timezone.utc)
KWH = 0.25


def _registers(rows):
    return pl.DataFrame(
        [(up, "m", REGISTER_DELIVERED, "delivered", at, kwh, "actual", "1.0.0", "msg-r") for up, at, kwh in rows],
        schema=REGISTERS_SCHEMA,
        orient="row",
    )


@pytest.fixture
def clean(loaded_con):
    """Both supplies with every interval of 5 and 6 September, register reads at the three midnights and a bill
    for supply A over those two days that reconciles exactly."""
    rows = []
    for usage_point in (SUPPLY_A[1], SUPPLY_B[1]):
        for day in DAYS:
            count = (local_midnight_utc(day + dt.timedelta(days=1)) - local_midnight_utc(day)) // dt.timedelta(minutes=15)
            rows += local_day_intervals(usage_point, local_midnight_utc(day) + dt.timedelta(minutes=15), count,
                                        lambda _: KWH)
    loads.upsert_interval_readings(loaded_con, intervals_frame(rows))
    intervals_a = (96 + 92)
    loads.upsert_register_reads(loaded_con, _registers([
        (SUPPLY_A[1], local_midnight_utc(DAYS[0]), 1000.0),
        (SUPPLY_A[1], local_midnight_utc(DAYS[1] + dt.timedelta(days=1)), 1000.0 + intervals_a * KWH),
    ]))
    bill = pl.DataFrame(
        [("B30000001-202609", SUPPLY_A[0], DAYS[0], DAYS[1] + dt.timedelta(days=1), DAYS[1], DAYS[1],
          intervals_a * KWH, 1000.0, 1000.0 + intervals_a * KWH, 0.0, 1000, 190, 1190, "unpaid")],
        schema=BILLS_SCHEMA, orient="row",
    )
    loads.upsert_bills(loaded_con, bill, pl.DataFrame(schema=BILL_LINES_SCHEMA))
    return loaded_con


def test_every_rule_passes_on_clean_data(clean):
    outcomes = {
        "missing": queries.check_missing_intervals(clean, *DAYS, now=AFTER),
        "overlap": queries.check_overlapping_intervals(clean, *DAYS),
        "plausible": queries.check_plausible_values(clean, *DAYS),
        "estimated": queries.check_estimated_share(clean, *DAYS),
        "fresh": queries.check_freshness(clean, *DAYS, now=AFTER),
        "reconcile": queries.check_bill_reconciliation(clean),
    }
    assert {name: outcome.passed for name, outcome in outcomes.items()} == dict.fromkeys(outcomes, True)
    assert outcomes["missing"].metadata["expected_per_day"] == {"2026-09-05": 96, "2026-09-06": 92}
    assert outcomes["reconcile"].metadata["comparable_bills"] == 1


def test_missing_intervals_fail_with_dst_aware_expected_counts(clean):
    # Drop three intervals of supply B on the 92-interval day.
    clean.execute(
        "DELETE FROM interval_readings WHERE supply_id = ? AND interval_end IN (SELECT interval_end FROM "
        "interval_readings WHERE supply_id = ? AND interval_end > ? ORDER BY interval_end LIMIT 3)",
        [SUPPLY_B[0], SUPPLY_B[0], local_midnight_utc(DAYS[1])],
    )
    outcome = queries.check_missing_intervals(clean, *DAYS, now=AFTER)
    assert not outcome.passed
    assert outcome.metadata["missing_intervals"] == 3
    assert outcome.metadata["sample"] == [
        {"supply_id": SUPPLY_B[0], "local_date": "2026-09-06", "intervals": 89, "expected": 92, "missing": 3}
    ]
    # A day that has not ended yet is not judged.
    assert queries.check_missing_intervals(clean, *DAYS, now=local_midnight_utc(DAYS[1])).passed


def test_overlapping_or_misaligned_reading_fails(clean):
    shifted = local_midnight_utc(DAYS[0]) + dt.timedelta(hours=5, minutes=7)
    loads.upsert_interval_readings(clean, intervals_frame([(SUPPLY_A[1], shifted, KWH, "actual", "delivered", "bad")]))
    outcome = queries.check_overlapping_intervals(clean, *DAYS)
    assert not outcome.passed
    assert {row["source_message_id"] for row in outcome.metadata["sample"]} >= {"bad"}


@pytest.mark.parametrize("bad_kwh, field", [(-0.4, "negative_readings"), (40.0, "implausible_readings")])
def test_negative_or_implausible_value_fails(clean, bad_kwh, field):
    at = local_midnight_utc(DAYS[0]) + dt.timedelta(hours=12)
    loads.upsert_interval_readings(clean, intervals_frame([(SUPPLY_A[1], at, bad_kwh, "actual", "delivered", "odd")]))
    outcome = queries.check_plausible_values(clean, *DAYS)
    assert not outcome.passed
    assert outcome.metadata[field] == 1
    assert outcome.metadata["sample"][0]["kwh"] == bad_kwh


def test_high_estimated_share_fails(clean):
    clean.execute(
        "UPDATE interval_readings SET quality = 'estimated' WHERE supply_id = ? AND interval_end <= ?",
        [SUPPLY_A[0], local_midnight_utc(DAYS[0]) + dt.timedelta(hours=6)],
    )
    outcome = queries.check_estimated_share(clean, *DAYS)
    assert not outcome.passed
    assert outcome.metadata["estimated"] == 24
    assert outcome.metadata["sample"][0]["supply_id"] == SUPPLY_A[0]


def test_stale_day_fails_freshness(clean):
    clean.execute("DELETE FROM interval_readings WHERE interval_end > ?",
                  [local_midnight_utc(DAYS[1]) + dt.timedelta(hours=20)])
    outcome = queries.check_freshness(clean, *DAYS, now=AFTER)
    assert not outcome.passed
    assert [row["local_date"] for row in outcome.metadata["stale_days"]] == ["2026-09-06"]
    # The running day is judged against now: 20 h of data at 20:10 local time is fresh.
    now = local_midnight_utc(DAYS[1]) + dt.timedelta(hours=20, minutes=10)
    assert queries.check_freshness(clean, *DAYS, now=now).passed


@pytest.mark.parametrize(
    "tamper",
    [
        "UPDATE bills SET kwh = kwh + 1.5",  # billed kWh disagrees with the readings
        "UPDATE bills SET register_end_kwh = register_end_kwh + 1",  # the bill's own register difference is off
        "UPDATE register_reads SET kwh = kwh + 2 WHERE read_at = (SELECT max(read_at) FROM register_reads)",
    ],
)
def test_bill_that_does_not_reconcile_fails(clean, tamper):
    clean.execute(tamper)
    outcome = queries.check_bill_reconciliation(clean)
    assert not outcome.passed
    assert outcome.metadata["sample"][0]["bill_id"] == "B30000001-202609"


def test_interval_sum_off_by_more_than_the_tolerance_fails(clean):
    clean.execute(
        "UPDATE interval_readings SET kwh = kwh + 0.5 WHERE supply_id = ? AND interval_end = ?",
        [SUPPLY_A[0], local_midnight_utc(DAYS[0]) + dt.timedelta(hours=3)],
    )
    outcome = queries.check_bill_reconciliation(clean)
    assert not outcome.passed
    row = outcome.metadata["sample"][0]
    assert row["interval_kwh"] == pytest.approx(row["billed_kwh"] + 0.5)


def test_incomplete_period_is_not_comparable_rather_than_failing(clean):
    clean.execute("DELETE FROM interval_readings WHERE supply_id = ? AND interval_end < ?",
                  [SUPPLY_A[0], local_midnight_utc(DAYS[0]) + dt.timedelta(hours=1)])
    outcome = queries.check_bill_reconciliation(clean)
    assert outcome.passed
    assert outcome.metadata["not_comparable_bills"] == 1
