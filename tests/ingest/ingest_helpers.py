"""Helpers for the file-ingest tests (imported by name; `conftest` is ambiguous across test folders): a data directory whose warehouse knows a few supplies, and CIM
message files written with cim_ingest.writer (real files, parsed by the real parser)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Iterable

import polars as pl
from cim_ingest.writer import MeterReadingOut, ReplyHeader, iter_meter_readings_response
from warehouse import loads
from warehouse.db import connect

UTC = dt.timezone.utc
SUPPLIES = {
    "30000001": "11111111-1111-4111-8111-111111111111",
    "30000002": "22222222-2222-4222-8222-222222222222",
}
METERS = {
    "30000001": "aaaaaaaa-1111-4111-8111-111111111111",
    "30000002": "aaaaaaaa-2222-4222-8222-222222222222",
}


def seed_supplies(data_dir: Path, supplies: dict[str, str] = SUPPLIES) -> None:
    """Create `data_dir/warehouse.duckdb` with customers and supplies (no readings)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    con = connect(data_dir / "warehouse.duckdb")
    try:
        loads.upsert_customers(
            con,
            pl.DataFrame(
                {"customer_id": ["C000001"], "client_number": ["10000001"], "name": ["Ana Pérez"],
                 "rut": ["12.345.678-5"], "email": ["ana@example.cl"]}
            ),
        )
        loads.upsert_supplies(
            con,
            pl.DataFrame(
                {
                    "supply_id": list(supplies),
                    "usage_point_mrid": list(supplies.values()),
                    "meter_mrid": [METERS.get(s, f"meter-{s}") for s in supplies],
                    "customer_id": ["C000001"] * len(supplies),
                    "address": ["Av. Siempre Viva 742"] * len(supplies),
                    "comuna": ["Santiago"] * len(supplies),
                    "tariff": ["BT1"] * len(supplies),
                    "status": ["active"] * len(supplies),
                    "has_solar": [True] * len(supplies),
                }
            ),
        )
    finally:
        con.close()


def write_message(
    path: Path,
    meter_readings: Iterable[MeterReadingOut],
    timestamp: dt.datetime,
    message_id: str,
    result: str = "OK",
    errors=(),
) -> Path:
    header = ReplyHeader(noun="MeterReadings", correlation_id=f"corr-{message_id}", source="TEST-MDM",
                         message_id=message_id, timestamp=timestamp)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as handle:
        for chunk in iter_meter_readings_response(header, meter_readings, result=result, errors=errors):
            handle.write(chunk)
    return path


def query(data_dir: Path, sql: str, params: list | None = None) -> list[tuple]:
    con = connect(data_dir / "warehouse.duckdb")
    try:
        return con.execute(sql, params or []).fetchall()
    finally:
        con.close()
