"""Read-only queries over the warehouse that the pipelines need to decide what to fetch next."""

from __future__ import annotations

import datetime as dt

import duckdb
import polars as pl


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
