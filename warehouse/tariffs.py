"""Storing the tariff schedule: an idempotent upsert keyed by (tariff, valid_from), in one transaction.

A row already stored is updated only when the billing system sends different values for the same window (a
correction); rows the document does not mention are kept, so history is never lost when the backend sends only
recent windows.
"""

from __future__ import annotations

import duckdb
import polars as pl

TARIFF_COLUMNS = (
    "valid_from", "valid_to", "tariff", "fixed_clp_month", "energy_clp_per_kwh", "injection_clp_per_kwh",
)


def upsert_tariffs(con: duckdb.DuckDBPyConnection, frame: pl.DataFrame) -> int:
    """Insert or replace the frame's rows (last row wins for a repeated key); return the rows written."""
    missing = [column for column in TARIFF_COLUMNS if column not in frame.columns]
    if missing:
        raise ValueError(f"tariffs frame lacks columns {missing}")
    frame = frame.select(TARIFF_COLUMNS).unique(subset=["tariff", "valid_from"], keep="last", maintain_order=True)
    con.register("incoming_tariffs", frame)
    con.begin()
    try:
        con.execute(
            "DELETE FROM tariffs WHERE (tariff, valid_from) IN "
            "(SELECT CAST(tariff AS VARCHAR), CAST(valid_from AS DATE) FROM incoming_tariffs)"
        )
        con.execute(
            f"INSERT INTO tariffs ({', '.join(TARIFF_COLUMNS)}) "
            "SELECT CAST(valid_from AS DATE), CAST(valid_to AS DATE), CAST(tariff AS VARCHAR), "
            "CAST(fixed_clp_month AS BIGINT), CAST(energy_clp_per_kwh AS DOUBLE), "
            "CAST(injection_clp_per_kwh AS DOUBLE) FROM incoming_tariffs"
        )
        con.commit()
    except BaseException:
        con.rollback()
        raise
    finally:
        con.unregister("incoming_tariffs")
    return frame.height


def tariff_rows(con: duckdb.DuckDBPyConnection) -> list[tuple]:
    """Every stored row, ordered by tariff and validity."""
    return con.execute(
        f"SELECT {', '.join(TARIFF_COLUMNS)} FROM tariffs ORDER BY tariff, valid_from"
    ).fetchall()
