"""Monthly Hive-partitioned Parquet export of the warehouse, for other engines (Spark, Trino, DuckDB, Polars).

Layout under the export directory (`<data dir>/export` by default):

    interval_readings/month=2026-09/data.parquet     one file per local month (America/Santiago)
    daily_consumption/month=2026-09/data.parquet
    monthly_consumption/month=2026-09/data.parquet
    bills/month=2026-09/data.parquet                 by the month the period ends in
    customers/data.parquet, supplies/data.parquet    small tables, one file each

Readers use Hive partitioning, e.g. `read_parquet('export/interval_readings/*/*.parquet', hive_partitioning=1)`
in DuckDB, `spark.read.parquet('export/interval_readings')`, or a Trino Hive table partitioned by `month`.

Incremental: each month's file sits next to `.fingerprint` (an order-independent hash of its rows); a month whose
fingerprint did not change is not rewritten. Each file is written to a temporary name and renamed in, so a reader
sees a month either before or after an export, never half of it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import duckdb

# table -> (month expression of a row, every column of the export, sort order)
MONTHLY_TABLES: dict[str, tuple[str, str, str]] = {
    "interval_readings": (
        "strftime(timezone('America/Santiago', interval_end - INTERVAL 1 MICROSECOND), '%Y-%m')",
        "supply_id, usage_point_mrid, flow, reading_type, interval_end, interval_seconds, CAST(kwh AS DOUBLE) AS kwh, "
        "quality, quality_codes, source_message_id, loaded_at",
        "supply_id, flow, interval_end",
    ),
    "daily_consumption": (
        "strftime(local_date, '%Y-%m')",
        "supply_id, flow, local_date, interval_seconds, CAST(kwh AS DOUBLE) AS kwh, intervals, expected_intervals, "
        "estimated_intervals, edited_intervals, missing_intervals, quality",
        "supply_id, flow, local_date",
    ),
    "monthly_consumption": (
        "strftime(month, '%Y-%m')",
        "supply_id, flow, month, CAST(kwh AS DOUBLE) AS kwh, days, quality",
        "supply_id, flow",
    ),
    "bills": (
        "strftime(period_end - INTERVAL 1 DAY, '%Y-%m')",
        "bill_id, supply_id, period_start, period_end, issue_date, due_date, CAST(kwh AS DOUBLE) AS kwh, "
        "CAST(register_start_kwh AS DOUBLE) AS register_start_kwh, CAST(register_end_kwh AS DOUBLE) AS register_end_kwh, "
        "CAST(received_kwh AS DOUBLE) AS received_kwh, net_clp, iva_clp, total_clp, status",
        "supply_id, period_start",
    ),
}
WHOLE_TABLES: dict[str, str] = {
    "customers": "SELECT customer_id, client_number, name, rut, email FROM customers ORDER BY customer_id",
    "supplies": "SELECT supply_id, usage_point_mrid, meter_mrid, customer_id, address, comuna, tariff, status, "
                "has_solar FROM supplies ORDER BY supply_id",
}
FINGERPRINT = ".fingerprint"


@dataclass(frozen=True)
class ExportResult:
    directory: Path
    files_written: int
    files_unchanged: int
    rows: dict[str, int]


def _literal(path: Path) -> str:
    return "'" + str(path.resolve()).replace("'", "''") + "'"


def _write(con: duckdb.DuckDBPyConnection, select_sql: str, params: list, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.parent / f".{target.name}.{os.getpid()}.tmp"
    con.execute(f"COPY ({select_sql}) TO {_literal(temporary)} (FORMAT parquet, COMPRESSION zstd)", params)
    os.replace(temporary, target)


def export_parquet(con: duckdb.DuckDBPyConnection, directory: Path) -> ExportResult:
    """Export the warehouse under `directory` (see the module docstring); only changed months are rewritten."""
    directory = Path(directory)
    con.execute("SET enable_progress_bar = false")  # a run's log is no terminal
    written = unchanged = 0
    rows: dict[str, int] = {}
    for table, (month_sql, columns, order) in MONTHLY_TABLES.items():
        months = con.execute(
            f"SELECT {month_sql} AS month, count(*), bit_xor(hash({table})) FROM {table} GROUP BY ALL ORDER BY 1"
        ).fetchall()
        rows[table] = sum(count for _, count, _ in months)
        present = set()
        for month, count, fingerprint in months:
            present.add(month)
            folder = directory / table / f"month={month}"
            stamp = f"{count}-{fingerprint:016x}"
            marker = folder / FINGERPRINT
            if marker.exists() and marker.read_text() == stamp and (folder / "data.parquet").exists():
                unchanged += 1
                continue
            _write(con, f"SELECT {columns} FROM {table} WHERE {month_sql} = ? ORDER BY {order}", [month],
                   folder / "data.parquet")
            marker.write_text(stamp)
            written += 1
        # A month that no longer has rows (deleted upstream) must not linger in the export.
        for folder in (directory / table).glob("month=*"):
            if folder.name.removeprefix("month=") not in present:
                (folder / "data.parquet").unlink(missing_ok=True)
                (folder / FINGERPRINT).unlink(missing_ok=True)
                folder.rmdir()
    for table, select_sql in WHOLE_TABLES.items():
        _write(con, select_sql, [], directory / table / "data.parquet")
        rows[table] = con.execute(f"SELECT count(*) FROM {table}").fetchall()[0][0]
        written += 1
    return ExportResult(directory=directory, files_written=written, files_unchanged=unchanged, rows=rows)
