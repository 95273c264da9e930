"""Read-only queries over the warehouse: what the pipelines need to decide what to fetch next, and the
data-quality rules behind the asset checks (see docs/operations.md)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import duckdb
import polars as pl

from warehouse.rollups import LOCAL_DATE_OF_END, day_bounds_frame, local_midnight_utc


def supply_usage_points(con: duckdb.DuckDBPyConnection, active_only: bool = False) -> pl.DataFrame:
    """supply_id, usage_point_mrid, meter_mrid, status, has_solar of the known supplies, ordered by supply_id."""
    return con.sql(
        """
        SELECT supply_id, usage_point_mrid, meter_mrid, status, has_solar FROM supplies
        WHERE NOT ? OR status = 'active'
        ORDER BY supply_id
        """,
        params=[active_only],
    ).pl()


def latest_interval_end(con: duckdb.DuckDBPyConnection) -> dt.datetime | None:
    """Latest interval_end loaded for any supply (UTC), or None when there is none."""
    return con.execute("SELECT max(interval_end) FROM interval_readings").fetchall()[0][0]


def latest_interval_end_by_supply(con: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    """supply_id, usage_point_mrid, latest_interval_end (null when the supply has no readings yet)."""
    return con.sql(
        """
        SELECT s.supply_id, s.usage_point_mrid, max(r.interval_end) AS latest_interval_end
        FROM supplies s LEFT JOIN interval_readings r USING (supply_id)
        GROUP BY s.supply_id, s.usage_point_mrid
        ORDER BY s.supply_id
        """
    ).pl()


def table_row_counts(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    """Exact row count of every warehouse table in the main schema, for run metadata."""
    tables = [
        row[0]
        for row in con.execute(
            "SELECT table_name FROM duckdb_tables() WHERE database_name = current_database() "
            "AND schema_name = 'main' AND NOT temporary ORDER BY table_name"
        ).fetchall()
    ]
    # Table names come from the catalog, not from input; quoted as identifiers all the same.
    return {
        table: con.execute('SELECT count(*) FROM "' + table.replace('"', '""') + '"').fetchall()[0][0]
        for table in tables
    }


def daily_consumption_span(con: duckdb.DuckDBPyConnection) -> tuple[dt.date, dt.date] | None:
    """First and last local date present in daily_consumption, or None when it is empty."""
    first, last = con.execute("SELECT min(local_date), max(local_date) FROM daily_consumption").fetchall()[0]
    return None if first is None else (first, last)


# --- Data-quality checks ----------------------------------------------------------------------------------------
# Plain functions so they are tested without Dagster; `pipelines/checks.py` turns each outcome into an asset check
# result. Every outcome carries what an on-call engineer needs: counts, the worst offenders, the thresholds used.

DEFAULT_MAX_PLAUSIBLE_KW = 60.0
DEFAULT_MAX_ESTIMATED_SHARE = 0.05
DEFAULT_MAX_LAG_MINUTES = 60.0
RECONCILE_TOLERANCE_KWH = 0.01
RECONCILE_TOLERANCE_SHARE = 0.001
_SAMPLE_ROWS = 10


@dataclass(frozen=True)
class CheckOutcome:
    """Result of one data-quality rule: passed, a one-line summary and metadata (counts and a sample table as a
    list of dicts under `sample`)."""

    passed: bool
    summary: str
    metadata: dict = field(default_factory=dict)


def _rows_as_dicts(con: duckdb.DuckDBPyConnection, sql: str, params: list) -> list[dict]:
    relation = con.sql(sql, params=params)
    columns = relation.columns
    return [dict(zip(columns, (str(v) if isinstance(v, (dt.date, dt.datetime)) else v for v in row)))
            for row in relation.fetchall()]


def _window(first_day: dt.date, last_day: dt.date) -> tuple[dt.datetime, dt.datetime]:
    return local_midnight_utc(first_day), local_midnight_utc(last_day + dt.timedelta(days=1))


def check_missing_intervals(
    con: duckdb.DuckDBPyConnection, first_day: dt.date, last_day: dt.date, now: dt.datetime | None = None
) -> CheckOutcome:
    """Every supply has, for every ended local day, as many delivered 15-minute intervals with a value as the day
    holds (92, 96 or 100 in America/Santiago). Days not yet over (by `now`) are not judged."""
    now = now or dt.datetime.now(dt.timezone.utc)
    bounds = day_bounds_frame(first_day, last_day).filter(
        (pl.col("day_start") + pl.duration(seconds=pl.col("day_seconds"))) <= now
    )
    expected_by_day = {str(row["local_date"]): row["day_seconds"] // 900 for row in bounds.iter_rows(named=True)}
    if bounds.height == 0:
        return CheckOutcome(True, "No ended day in the window yet.", {"days_checked": 0})
    con.register("_check_days", bounds)
    try:
        start, end = _window(first_day, last_day)
        offenders = _rows_as_dicts(
            con,
            f"""
            WITH got AS (
                SELECT r.supply_id, d.local_date, count(r.kwh) AS intervals
                FROM interval_readings r
                JOIN _check_days d ON d.local_date = {LOCAL_DATE_OF_END}
                WHERE r.flow = 'delivered' AND r.interval_seconds = 900
                  AND r.interval_end > ? AND r.interval_end <= ?
                GROUP BY ALL
            )
            SELECT s.supply_id, d.local_date, coalesce(g.intervals, 0) AS intervals,
                   d.day_seconds // 900 AS expected, d.day_seconds // 900 - coalesce(g.intervals, 0) AS missing
            FROM supplies s CROSS JOIN _check_days d
            LEFT JOIN got g ON g.supply_id = s.supply_id AND g.local_date = d.local_date
            WHERE s.status = 'active' AND coalesce(g.intervals, 0) < d.day_seconds // 900
            ORDER BY missing DESC, s.supply_id, d.local_date
            """,
            [start, end],
        )
    finally:
        con.unregister("_check_days")
    missing = sum(row["missing"] for row in offenders)
    metadata = {
        "days_checked": bounds.height,
        "expected_per_day": expected_by_day,
        "supply_days_incomplete": len(offenders),
        "missing_intervals": missing,
        "sample": offenders[:_SAMPLE_ROWS],
    }
    if offenders:
        return CheckOutcome(False, f"{missing} intervals missing over {len(offenders)} supply-days.", metadata)
    return CheckOutcome(True, "Every supply has every interval of every ended day.", metadata)


def check_overlapping_intervals(con: duckdb.DuckDBPyConnection, first_day: dt.date, last_day: dt.date) -> CheckOutcome:
    """No two readings of one supply, flow and interval length cover the same time: consecutive interval ends
    are at least one interval apart and every end lies on the interval grid. A duplicate would count energy
    twice."""
    start, end = _window(first_day, last_day)
    offenders = _rows_as_dicts(
        con,
        """
        SELECT supply_id, flow, interval_seconds, interval_end, previous_end, source_message_id
        FROM (
            SELECT supply_id, flow, interval_seconds, interval_end, source_message_id,
                   lag(interval_end) OVER (PARTITION BY supply_id, flow, interval_seconds ORDER BY interval_end)
                       AS previous_end
            FROM interval_readings WHERE interval_end > ? AND interval_end <= ?
        )
        WHERE (previous_end IS NOT NULL AND interval_end - previous_end < to_seconds(interval_seconds))
           OR epoch(interval_end)::BIGINT % interval_seconds <> 0
        ORDER BY supply_id, flow, interval_end
        """,
        [start, end],
    )
    metadata = {"overlapping_readings": len(offenders), "sample": offenders[:_SAMPLE_ROWS]}
    if offenders:
        return CheckOutcome(False, f"{len(offenders)} readings overlap another reading or are off the interval grid.",
                            metadata)
    return CheckOutcome(True, "No overlapping or misaligned readings.", metadata)


def check_plausible_values(
    con: duckdb.DuckDBPyConnection, first_day: dt.date, last_day: dt.date,
    max_kw: float = DEFAULT_MAX_PLAUSIBLE_KW,
) -> CheckOutcome:
    """No negative interval energy and no interval whose average power exceeds `max_kw` (a residential supply
    cannot draw it; it is a unit or meter fault)."""
    start, end = _window(first_day, last_day)
    offenders = _rows_as_dicts(
        con,
        """
        SELECT supply_id, flow, interval_end, CAST(kwh AS DOUBLE) AS kwh,
               CAST(kwh AS DOUBLE) * 3600 / interval_seconds AS average_kw, quality, source_message_id
        FROM interval_readings
        WHERE interval_end > ? AND interval_end <= ?
          AND (kwh < 0 OR CAST(kwh AS DOUBLE) * 3600 / interval_seconds > ?)
        ORDER BY abs(CAST(kwh AS DOUBLE)) DESC
        """,
        [start, end, max_kw],
    )
    negative = sum(1 for row in offenders if row["kwh"] < 0)
    metadata = {
        "negative_readings": negative,
        "implausible_readings": len(offenders) - negative,
        "max_plausible_kw": max_kw,
        "sample": offenders[:_SAMPLE_ROWS],
    }
    if offenders:
        return CheckOutcome(False, f"{negative} negative and {len(offenders) - negative} implausibly large readings.",
                            metadata)
    return CheckOutcome(True, f"All readings between 0 and {max_kw} kW average.", metadata)


def check_estimated_share(
    con: duckdb.DuckDBPyConnection, first_day: dt.date, last_day: dt.date,
    max_share: float = DEFAULT_MAX_ESTIMATED_SHARE,
) -> CheckOutcome:
    """The share of estimated readings in the window stays under `max_share` (a rise means meters are not being
    read: a head-end or communications problem)."""
    start, end = _window(first_day, last_day)
    total, estimated = con.execute(
        "SELECT count(*), count(*) FILTER (WHERE quality = 'estimated') FROM interval_readings "
        "WHERE interval_end > ? AND interval_end <= ? AND kwh IS NOT NULL",
        [start, end],
    ).fetchall()[0]
    share = estimated / total if total else 0.0
    worst = _rows_as_dicts(
        con,
        """
        SELECT supply_id, count(*) FILTER (WHERE quality = 'estimated') AS estimated, count(*) AS readings,
               round(count(*) FILTER (WHERE quality = 'estimated') / count(*), 4) AS share
        FROM interval_readings WHERE interval_end > ? AND interval_end <= ? AND kwh IS NOT NULL
        GROUP BY supply_id HAVING count(*) FILTER (WHERE quality = 'estimated') > 0
        ORDER BY share DESC, supply_id LIMIT ?
        """,
        [start, end, _SAMPLE_ROWS],
    )
    metadata = {"readings": total, "estimated": estimated, "estimated_share": round(share, 6),
                "max_share": max_share, "sample": worst}
    if share > max_share:
        return CheckOutcome(False, f"{share:.1%} of readings are estimated (limit {max_share:.1%}).", metadata)
    return CheckOutcome(True, f"{share:.1%} of readings are estimated.", metadata)


def check_freshness(
    con: duckdb.DuckDBPyConnection, first_day: dt.date, last_day: dt.date,
    now: dt.datetime | None = None, max_lag_minutes: float = DEFAULT_MAX_LAG_MINUTES,
) -> CheckOutcome:
    """Per day of the window, the latest delivered reading is no further behind than `max_lag_minutes` from the
    day's end, or from `now` for the running day."""
    now = now or dt.datetime.now(dt.timezone.utc)
    bounds = day_bounds_frame(first_day, last_day).filter(pl.col("day_start") < now)
    con.register("_fresh_days", bounds)
    try:
        days = _rows_as_dicts(
            con,
            f"""
            SELECT d.local_date, max(r.interval_end) AS latest_interval_end,
                   least(d.day_start + to_seconds(d.day_seconds), ?) AS due_until,
                   round(epoch(least(d.day_start + to_seconds(d.day_seconds), ?)
                         - coalesce(max(r.interval_end), d.day_start)) / 60, 1) AS lag_minutes
            FROM _fresh_days d
            LEFT JOIN (
                SELECT * FROM interval_readings r
                WHERE r.flow = 'delivered' AND r.interval_end > ? AND r.interval_end <= ?
            ) r ON d.local_date = {LOCAL_DATE_OF_END}
            GROUP BY d.local_date, d.day_start, d.day_seconds
            ORDER BY d.local_date
            """,
            [now, now, *_window(first_day, last_day)],
        )
    finally:
        con.unregister("_fresh_days")
    stale = [row for row in days if row["lag_minutes"] > max_lag_minutes]
    metadata = {"days_checked": len(days), "max_lag_minutes": max_lag_minutes,
                "worst_lag_minutes": max((row["lag_minutes"] for row in days), default=0.0), "stale_days": stale}
    if stale:
        return CheckOutcome(False, f"{len(stale)} day(s) behind by more than {max_lag_minutes:g} minutes.", metadata)
    return CheckOutcome(True, "Every day is up to date.", metadata)


def check_bill_reconciliation(
    con: duckdb.DuckDBPyConnection,
    tolerance_kwh: float = RECONCILE_TOLERANCE_KWH,
    tolerance_share: float = RECONCILE_TOLERANCE_SHARE,
) -> CheckOutcome:
    """Per bill period: billed kWh = register difference on the bill = register difference in the warehouse
    (reads at the local midnights that start and end the period) = sum of the period's delivered intervals,
    within max(`tolerance_kwh`, `tolerance_share` x billed kWh). Periods whose interval data or register reads
    are not (yet) all in the warehouse are counted as not comparable, not as failures."""
    bills = con.sql(
        "SELECT bill_id, supply_id, period_start, period_end, CAST(kwh AS DOUBLE) AS billed_kwh, "
        "CAST(register_end_kwh - register_start_kwh AS DOUBLE) AS bill_register_kwh FROM bills"
    ).pl()
    if bills.height == 0:
        return CheckOutcome(True, "No bills to reconcile.", {"bills": 0})
    first_day, last_day = bills["period_start"].min(), bills["period_end"].max()
    bills = bills.with_columns(
        pl.col("period_start").map_elements(local_midnight_utc, return_dtype=pl.Datetime("us", "UTC")).alias("start_at"),
        pl.col("period_end").map_elements(local_midnight_utc, return_dtype=pl.Datetime("us", "UTC")).alias("end_at"),
    )
    con.register("_bill_periods", bills)
    try:
        rows = _rows_as_dicts(
            con,
            """
            WITH sums AS (
                SELECT b.bill_id, sum(CAST(r.kwh AS DOUBLE)) AS interval_kwh, count(r.kwh) AS intervals
                FROM _bill_periods b
                JOIN interval_readings r
                  ON r.supply_id = b.supply_id AND r.flow = 'delivered' AND r.interval_seconds = 900
                 AND r.interval_end > b.start_at AND r.interval_end <= b.end_at
                GROUP BY b.bill_id
            )
            SELECT b.bill_id, b.supply_id, b.period_start, b.period_end, b.billed_kwh, b.bill_register_kwh,
                   CAST(re.kwh - rs.kwh AS DOUBLE) AS register_kwh, s.interval_kwh,
                   coalesce(s.intervals, 0) AS intervals,
                   CAST(epoch(b.end_at - b.start_at) // 900 AS BIGINT) AS expected_intervals
            FROM _bill_periods b
            LEFT JOIN sums s USING (bill_id)
            LEFT JOIN register_reads rs ON rs.supply_id = b.supply_id AND rs.flow = 'delivered' AND rs.read_at = b.start_at
            LEFT JOIN register_reads re ON re.supply_id = b.supply_id AND re.flow = 'delivered' AND re.read_at = b.end_at
            ORDER BY b.bill_id
            """,
            [],
        )
    finally:
        con.unregister("_bill_periods")
    comparable, mismatched = 0, []
    for row in rows:
        if row["intervals"] < row["expected_intervals"] or row["register_kwh"] is None:
            continue
        comparable += 1
        allowed = max(tolerance_kwh, tolerance_share * abs(row["billed_kwh"] or 0.0))
        values = (row["billed_kwh"], row["bill_register_kwh"], row["register_kwh"], row["interval_kwh"])
        if any(value is None for value in values) or max(values) - min(values) > allowed:
            row["allowed_kwh"] = round(allowed, 6)
            mismatched.append(row)
    metadata = {
        "bills": len(rows),
        "comparable_bills": comparable,
        "not_comparable_bills": len(rows) - comparable,
        "mismatched_bills": len(mismatched),
        "tolerance": f"max({tolerance_kwh} kWh, {tolerance_share:.1%} of billed kWh)",
        "periods": f"{first_day}..{last_day}",
        "sample": mismatched[:_SAMPLE_ROWS],
    }
    if mismatched:
        return CheckOutcome(False, f"{len(mismatched)} of {comparable} comparable bills do not reconcile.", metadata)
    return CheckOutcome(True, f"All {comparable} comparable bills reconcile.", metadata)
