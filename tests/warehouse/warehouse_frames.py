"""Builders of small cim_ingest-shaped Polars frames (exact contract dtypes) for the warehouse tests."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import polars as pl

# The frames follow the parsers' own schemas: the contract between cim_ingest and the warehouse.
from cim_ingest.documents import BILL_LINES_SCHEMA, BILLS_SCHEMA, CUSTOMERS_SCHEMA, SUPPLIES_SCHEMA
from cim_ingest.meter_readings import INTERVAL_SCHEMA as INTERVALS_SCHEMA
from cim_ingest.meter_readings import REGISTER_SCHEMA as REGISTERS_SCHEMA

UTC = dt.timezone.utc
DELIVERED_15MIN = "0.0.2.4.1.1.12.0.0.0.0.0.0.0.0.3.72.0"
REGISTER_DELIVERED = "0.0.0.1.1.1.12.0.0.0.0.0.0.0.0.3.72.0"

SUPPLY_A = ("30000001", "11111111-1111-4111-8111-111111111111")
SUPPLY_B = ("30000002", "22222222-2222-4222-8222-222222222222")


def customers_frame() -> pl.DataFrame:
    return pl.DataFrame(
        [
            ("C000001", "10000001", "María González Rojas", "12.345.678-5", "maria.gonzalez@correo.example"),
            ("C000002", "10000002", "Juan Pérez Soto", "9.876.543-3", "juan.perez@correo.example"),
        ],
        schema=CUSTOMERS_SCHEMA,
        orient="row",
    )


def supplies_frame() -> pl.DataFrame:
    return pl.DataFrame(
        [
            (SUPPLY_A[0], SUPPLY_A[1], "m-a", "C000001", "Av. Irarrázaval 1234", "Ñuñoa", "BT1", "active", False),
            (SUPPLY_B[0], SUPPLY_B[1], "m-b", "C000002", "Los Leones 55", "Providencia", "BT1", "active", True),
        ],
        schema=SUPPLIES_SCHEMA,
        orient="row",
    )


def intervals_frame(rows: list[tuple]) -> pl.DataFrame:
    """rows: (usage_point_mrid, interval_end UTC, kwh, quality[, flow[, source_message_id[, interval_seconds]]])."""
    records = []
    for row in rows:
        usage_point, interval_end, kwh, quality = row[:4]
        flow = row[4] if len(row) > 4 else "delivered"
        message_id = row[5] if len(row) > 5 else "msg-1"
        seconds = row[6] if len(row) > 6 else 900
        codes = {"actual": "1.0.0", "estimated": "3.8.0", "edited": "3.7.0", "missing": "2.5.259"}[quality]
        records.append(
            (usage_point, "m", DELIVERED_15MIN, flow, seconds, interval_end, kwh, quality, codes, message_id)
        )
    return pl.DataFrame(records, schema=INTERVALS_SCHEMA, orient="row")


def local_day_intervals(
    usage_point: str, first_end_utc: dt.datetime, count: int, kwh_of: Callable[[int], float | None]
) -> list[tuple]:
    """`count` consecutive 15-minute rows whose first interval ends at `first_end_utc`."""
    rows = []
    for index in range(count):
        kwh = kwh_of(index)
        quality = "missing" if kwh is None else "actual"
        rows.append((usage_point, first_end_utc + dt.timedelta(minutes=15 * index), kwh, quality))
    return rows
