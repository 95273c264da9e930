"""Daily and monthly consumption rollups, rebuilt from interval readings for a range of local dates.

A rebuild deletes and re-inserts its range in one transaction, so running it twice gives the same table and late
or corrected readings are picked up by rebuilding their days. Days are America/Santiago local dates: an interval
belongs to the local date of its START (interval_end minus its length). The length of a local day comes from the
zone database, so the days clocks change (23 or 25 hours in Chile) expect 92 or 100 quarter-hours, not 96.
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import duckdb
import polars as pl

LOCAL_ZONE = ZoneInfo("America/Santiago")

# Local date an interval belongs to, from its END: the interval (start, end] lies in the local day whose
# (midnight, next midnight] holds `end`, i.e. the local date of the instant just before `end`. An equality join on
# it is orders of magnitude faster than a range join on the day bounds (DuckDB needs the session zone, not
# the bounds table, to compute it; the bounds table still gives each day's length).
LOCAL_DATE_OF_END = "CAST(timezone('America/Santiago', r.interval_end - INTERVAL 1 MICROSECOND) AS DATE)"


def local_midnight_utc(local_date: dt.date) -> dt.datetime:
    """UTC instant the local day starts. When midnight does not exist (clocks jump forward at 00:00 in Chile)
    the day starts at the first instant that does, which the zone's pre-transition offset yields."""
    local = dt.datetime.combine(local_date, dt.time.min, tzinfo=LOCAL_ZONE)
    return local.astimezone(dt.timezone.utc)


def local_day_seconds(local_date: dt.date) -> int:
    """Length of the local day in seconds: 86400, or 82800 / 90000 on clock changes."""
    next_day = local_date + dt.timedelta(days=1)
    return int((local_midnight_utc(next_day) - local_midnight_utc(local_date)).total_seconds())


def expected_intervals(local_date: dt.date, interval_seconds: int) -> int:
    """Number of intervals of `interval_seconds` in the local day (96 quarter-hours on a normal day)."""
    return local_day_seconds(local_date) // interval_seconds


def day_bounds_frame(first_local_date: dt.date, last_local_date: dt.date) -> pl.DataFrame:
    """local_date, day_start (UTC) and day_seconds of every local day first..last, from the zone database."""
    days = pl.date_range(first_local_date, last_local_date, interval="1d", eager=True).to_list()
    return pl.DataFrame(
        {
            "local_date": days,
            "day_start": [local_midnight_utc(day) for day in days],
            "day_seconds": [local_day_seconds(day) for day in days],
        },
        schema={"local_date": pl.Date, "day_start": pl.Datetime("us", "UTC"), "day_seconds": pl.Int64},
    )


def rebuild_daily(con: duckdb.DuckDBPyConnection, first_local_date: dt.date, last_local_date: dt.date) -> int:
    """Rebuild `daily_consumption` for local dates first..last (inclusive); return the rows written.

    When a supply has several interval lengths on one day (15-minute and hourly data), the finest one is summed
    so the day is not counted twice.
    """
    if last_local_date < first_local_date:
        raise ValueError(f"last_local_date {last_local_date} is before first_local_date {first_local_date}")
    window = {"after": local_midnight_utc(first_local_date),
              "until": local_midnight_utc(last_local_date + dt.timedelta(days=1))}
    bounds = day_bounds_frame(first_local_date, last_local_date)
    # The days' lengths go in as two lists, not as a registered frame: that would load pyarrow (some 30 MB) into
    # a file ingest, which runs this inside its transaction.
    days = {"days": bounds["local_date"].to_list(), "day_seconds": bounds["day_seconds"].to_list()}
    con.begin()
    try:
        con.execute(
            "DELETE FROM daily_consumption WHERE local_date BETWEEN ? AND ?", [first_local_date, last_local_date]
        )
        con.execute(
            f"""
            INSERT INTO daily_consumption (
                supply_id, flow, local_date, interval_seconds, kwh, intervals, expected_intervals,
                estimated_intervals, edited_intervals, missing_intervals, quality)
            WITH bounds AS (
                SELECT unnest($days::DATE[]) AS local_date, unnest($day_seconds::BIGINT[]) AS day_seconds
            ), dated AS (  -- each distinct instant's local day, converted once (supplies share instants)
                SELECT r.interval_end, d.local_date, d.day_seconds
                FROM (SELECT DISTINCT interval_end FROM interval_readings
                      WHERE interval_end > $after AND interval_end <= $until) r
                JOIN bounds d ON d.local_date = {LOCAL_DATE_OF_END}
            ), per_length AS (
                SELECT r.supply_id, r.flow, d.local_date, r.interval_seconds,
                       coalesce(sum(r.kwh), 0) AS kwh,
                       count(r.kwh) AS intervals,
                       any_value(d.day_seconds) // r.interval_seconds AS expected_intervals,
                       count(*) FILTER (WHERE r.quality = 'estimated' AND r.kwh IS NOT NULL)
                           AS estimated_intervals,
                       count(*) FILTER (WHERE r.quality = 'edited' AND r.kwh IS NOT NULL) AS edited_intervals
                FROM interval_readings r
                JOIN dated d ON d.interval_end = r.interval_end
                WHERE r.interval_end > $after AND r.interval_end <= $until
                GROUP BY r.supply_id, r.flow, d.local_date, r.interval_seconds
                QUALIFY row_number() OVER (
                    PARTITION BY r.supply_id, r.flow, d.local_date ORDER BY r.interval_seconds) = 1
            )
            SELECT supply_id, flow, local_date, interval_seconds, kwh, intervals, expected_intervals,
                   estimated_intervals, edited_intervals,
                   greatest(expected_intervals - intervals, 0) AS missing_intervals,
                   CASE WHEN intervals < expected_intervals THEN 'missing'
                        WHEN estimated_intervals > 0 THEN 'estimated'
                        WHEN edited_intervals > 0 THEN 'edited'
                        ELSE 'actual' END AS quality
            FROM per_length
            """,
            window | days,
        )
        written = con.execute(
            "SELECT count(*) FROM daily_consumption WHERE local_date BETWEEN ? AND ?",
            [first_local_date, last_local_date],
        ).fetchall()[0][0]
        con.commit()
    except BaseException:
        con.rollback()
        raise
    return written


def _first_of_month(day: dt.date) -> dt.date:
    return day.replace(day=1)


def rebuild_monthly(con: duckdb.DuckDBPyConnection, first_month: dt.date, last_month: dt.date) -> int:
    """Rebuild `monthly_consumption` for the months containing first_month..last_month from `daily_consumption`;
    return the rows written. A month with fewer daily rows than days (e.g. the running month) is `missing`."""
    first_month, last_month = _first_of_month(first_month), _first_of_month(last_month)
    if last_month < first_month:
        raise ValueError(f"last_month {last_month} is before first_month {first_month}")
    con.begin()
    try:
        con.execute("DELETE FROM monthly_consumption WHERE month BETWEEN ? AND ?", [first_month, last_month])
        con.execute(
            """
            INSERT INTO monthly_consumption (supply_id, flow, month, kwh, days, quality)
            SELECT supply_id, flow, month, sum(kwh) AS kwh, count(*) AS days,
                   CASE WHEN count(*) < any_value(days_in_month) OR bool_or(quality = 'missing') THEN 'missing'
                        WHEN bool_or(quality = 'estimated') THEN 'estimated'
                        WHEN bool_or(quality = 'edited') THEN 'edited'
                        ELSE 'actual' END AS quality
            FROM (
                SELECT *, CAST(date_trunc('month', local_date) AS DATE) AS month,
                       day(last_day(local_date)) AS days_in_month
                FROM daily_consumption
                WHERE local_date >= ? AND local_date < CAST(? AS DATE) + INTERVAL 1 MONTH
            )
            GROUP BY supply_id, flow, month
            """,
            [first_month, last_month],
        )
        written = con.execute(
            "SELECT count(*) FROM monthly_consumption WHERE month BETWEEN ? AND ?", [first_month, last_month]
        ).fetchall()[0][0]
        con.commit()
    except BaseException:
        con.rollback()
        raise
    return written
