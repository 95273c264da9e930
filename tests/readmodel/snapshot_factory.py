"""Builds read-model snapshot files for tests, following the "Read-model snapshot" contract in docs/architecture.md.

Plain DuckDB DDL, one file per call under `snapshots/`, then `CURRENT` replaced atomically, like the publisher.
The daily and monthly rollups are derived here with zoneinfo directly (not with readmodel code), so the tests
compare two independent computations.
"""

from __future__ import annotations

import os
from collections import defaultdict
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import duckdb
import pyarrow as pa

SANTIAGO = ZoneInfo("America/Santiago")
QUALITY_RANK = {"actual": 0, "edited": 1, "estimated": 2, "missing": 3}

DDL = """
CREATE TABLE meta(key VARCHAR, value VARCHAR);
CREATE TABLE customers(customer_id VARCHAR, client_number VARCHAR, name VARCHAR, rut VARCHAR, email VARCHAR);
CREATE TABLE supplies(supply_id VARCHAR, customer_id VARCHAR, usage_point_mrid VARCHAR, meter_mrid VARCHAR,
    address VARCHAR, comuna VARCHAR, tariff VARCHAR, status VARCHAR, has_solar BOOLEAN,
    data_from TIMESTAMPTZ, data_until TIMESTAMPTZ);
CREATE TABLE intervals(supply_id VARCHAR, flow VARCHAR, interval_end TIMESTAMPTZ, interval_seconds INTEGER,
    kwh DOUBLE, quality VARCHAR);
CREATE TABLE daily(supply_id VARCHAR, flow VARCHAR, local_date DATE, kwh DOUBLE, intervals INTEGER,
    expected_intervals INTEGER, quality VARCHAR);
CREATE TABLE monthly(supply_id VARCHAR, flow VARCHAR, month DATE, kwh DOUBLE, days INTEGER, quality VARCHAR);
CREATE TABLE bills(bill_id VARCHAR, supply_id VARCHAR, period_start DATE, period_end DATE, issue_date DATE,
    due_date DATE, kwh DOUBLE, register_start_kwh DOUBLE, register_end_kwh DOUBLE, received_kwh DOUBLE,
    net_clp BIGINT, iva_clp BIGINT, total_clp BIGINT, status VARCHAR);
CREATE TABLE bill_lines(bill_id VARCHAR, line_no INTEGER, code VARCHAR, description VARCHAR, quantity DOUBLE,
    unit VARCHAR, unit_price_clp DOUBLE, amount_clp BIGINT);
"""


def local_midnight(day: date) -> datetime:
    return datetime.combine(day, time(0), tzinfo=SANTIAGO).astimezone(UTC)


def quarter_hour_ends(first_day: date, last_day_exclusive: date) -> list[datetime]:
    """Every quarter-hour END instant of the local days [first_day, last_day_exclusive)."""
    start, stop = local_midnight(first_day), local_midnight(last_day_exclusive)
    ends, instant = [], start + timedelta(minutes=15)
    while instant <= stop:
        ends.append(instant)
        instant += timedelta(minutes=15)
    return ends


def synthetic_kwh(interval_end: datetime, flow: str) -> float:
    """A deterministic value with a daily shape; exact binary fractions keep sums free of float noise."""
    local_hour = interval_end.astimezone(SANTIAGO).hour
    base = 0.125 + 0.0625 * (local_hour % 6) + 0.25 * (interval_end.minute == 30)
    return base / 2 if flow == "received" else base


def rollups(intervals: list[dict]) -> tuple[list[dict], list[dict]]:
    """Daily and monthly rows, the way the publisher is specified to produce them."""
    by_day: dict[tuple, list[dict]] = defaultdict(list)
    for row in intervals:
        local_day = (row["interval_end"] - timedelta(seconds=row["interval_seconds"])).astimezone(SANTIAGO).date()
        by_day[(row["supply_id"], row["flow"], local_day)].append(row)
    daily = []
    for (supply_id, flow, local_day), rows in sorted(by_day.items()):
        day_seconds = (local_midnight(local_day + timedelta(days=1)) - local_midnight(local_day)).total_seconds()
        present = [r for r in rows if r["kwh"] is not None]
        expected = int(day_seconds // 900)
        quality = max((r["quality"] for r in rows), key=QUALITY_RANK.__getitem__)
        if len(present) < expected:
            quality = "missing"
        daily.append(
            {"supply_id": supply_id, "flow": flow, "local_date": local_day,
             "kwh": sum(r["kwh"] for r in present), "intervals": len(present),
             "expected_intervals": expected, "quality": quality}
        )
    by_month: dict[tuple, list[dict]] = defaultdict(list)
    for row in daily:
        by_month[(row["supply_id"], row["flow"], row["local_date"].replace(day=1))].append(row)
    monthly = []
    for (supply_id, flow, month), rows in sorted(by_month.items()):
        quality = max((r["quality"] for r in rows), key=QUALITY_RANK.__getitem__)
        monthly.append(
            {"supply_id": supply_id, "flow": flow, "month": month, "kwh": sum(r["kwh"] for r in rows),
             "days": len(rows), "quality": quality}
        )
    return daily, monthly


def _insert(connection: duckdb.DuckDBPyConnection, table: str, rows: list[dict], columns: list[str]) -> None:
    if not rows:
        return
    arrow_rows = pa.Table.from_pylist([{c: row.get(c) for c in columns} for row in rows])
    connection.register("incoming_rows", arrow_rows)
    connection.execute(f"INSERT INTO {table} ({', '.join(columns)}) SELECT {', '.join(columns)} FROM incoming_rows")
    connection.unregister("incoming_rows")


def write_snapshot(
    readmodel_dir: Path,
    *,
    published_at: str,
    customers: list[dict],
    supplies: list[dict],
    intervals: list[dict],
    bills: list[dict] = (),
    bill_lines: list[dict] = (),
    daily: list[dict] | None = None,
    monthly: list[dict] | None = None,
    stamp: str | None = None,
    point_current: bool = True,
) -> Path:
    """Write `snapshots/rm-<stamp>.duckdb` and (by default) point CURRENT at it. Returns the snapshot path."""
    if daily is None or monthly is None:
        derived_daily, derived_monthly = rollups(intervals)
        daily = derived_daily if daily is None else daily
        monthly = derived_monthly if monthly is None else monthly
    stamp = stamp or published_at.replace("-", "").replace(":", "").replace("+0000", "Z").replace("+00:00", "Z")
    relative_name = f"snapshots/rm-{stamp}.duckdb"
    snapshot_path = Path(readmodel_dir) / relative_name
    snapshot_path.parent.mkdir(parents=True, exist_ok=True)
    connection = duckdb.connect(str(snapshot_path))
    try:
        connection.execute(DDL)
        connection.execute("INSERT INTO meta VALUES (?, ?), (?, ?)",
                           ["published_at", published_at, "schema_version", "1"])
        _insert(connection, "customers", customers, ["customer_id", "client_number", "name", "rut", "email"])
        _insert(connection, "supplies", supplies,
                ["supply_id", "customer_id", "usage_point_mrid", "meter_mrid", "address", "comuna", "tariff",
                 "status", "has_solar", "data_from", "data_until"])
        ordered = sorted(intervals, key=lambda r: (r["supply_id"], r["flow"], r["interval_end"]))
        _insert(connection, "intervals", ordered,
                ["supply_id", "flow", "interval_end", "interval_seconds", "kwh", "quality"])
        _insert(connection, "daily", daily,
                ["supply_id", "flow", "local_date", "kwh", "intervals", "expected_intervals", "quality"])
        _insert(connection, "monthly", monthly, ["supply_id", "flow", "month", "kwh", "days", "quality"])
        _insert(connection, "bills", list(bills),
                ["bill_id", "supply_id", "period_start", "period_end", "issue_date", "due_date", "kwh",
                 "register_start_kwh", "register_end_kwh", "received_kwh", "net_clp", "iva_clp", "total_clp",
                 "status"])
        _insert(connection, "bill_lines", list(bill_lines),
                ["bill_id", "line_no", "code", "description", "quantity", "unit", "unit_price_clp", "amount_clp"])
    finally:
        connection.close()
    if point_current:
        point_current_at(readmodel_dir, relative_name)
    return snapshot_path


def point_current_at(readmodel_dir: Path, relative_name: str) -> None:
    pending = Path(readmodel_dir) / "CURRENT.tmp"
    pending.write_text(relative_name + "\n", encoding="utf-8")
    os.replace(pending, Path(readmodel_dir) / "CURRENT")


# -- a small, fixed demo world used by both the readmodel and the webapp tests ----------------------------------

CUSTOMERS = [
    {"customer_id": "C000001", "client_number": "10000001", "name": "Ana Pérez", "rut": "12.345.678-5",
     "email": "Ana.Perez@example.cl"},
    {"customer_id": "C000002", "client_number": "10000002", "name": "Bruno Soto", "rut": "11.111.111-1",
     "email": "bruno.soto@example.cl"},
]
SOLAR_SUPPLY, PLAIN_SUPPLY, OTHER_CUSTOMER_SUPPLY = "30000001", "30000002", "30000003"
DATA_DAYS = [(date(2026, 3, 25), date(2026, 4, 12)), (date(2026, 9, 1), date(2026, 9, 10))]
GAP_END = datetime(2026, 3, 30, 15, 0, tzinfo=UTC)           # one absent quarter-hour
NULL_END = datetime(2026, 3, 31, 15, 0, tzinfo=UTC)          # one present-but-null ("missing") quarter-hour
ESTIMATED_END = datetime(2026, 4, 1, 15, 0, tzinfo=UTC)      # one estimated quarter-hour
EDITED_END = datetime(2026, 4, 2, 15, 0, tzinfo=UTC)         # one edited quarter-hour


def demo_world() -> dict:
    """Customers, three supplies (one with solar), intervals over the 2026 DST days, and two bills."""
    supplies = []
    for supply_id, customer_id, has_solar, comuna in [
        (SOLAR_SUPPLY, "C000001", True, "Maipú"),
        (PLAIN_SUPPLY, "C000001", False, "Ñuñoa"),
        (OTHER_CUSTOMER_SUPPLY, "C000002", False, "La Florida"),
    ]:
        supplies.append(
            {"supply_id": supply_id, "customer_id": customer_id,
             "usage_point_mrid": f"00000000-0000-4000-8000-0000{supply_id}",
             "meter_mrid": f"00000000-0000-4000-9000-0000{supply_id}",
             "address": f"Av. Los Aromos {supply_id[-2:]}", "comuna": comuna, "tariff": "BT1",
             "status": "connected", "has_solar": has_solar,
             "data_from": local_midnight(DATA_DAYS[0][0]), "data_until": local_midnight(DATA_DAYS[1][1])}
        )
    intervals = []
    for supply in supplies:
        flows = ["delivered", "received"] if supply["has_solar"] else ["delivered"]
        for flow in flows:
            for first_day, stop_day in DATA_DAYS:
                for end in quarter_hour_ends(first_day, stop_day):
                    anomalous = supply["supply_id"] == SOLAR_SUPPLY and flow == "delivered"
                    if end == GAP_END and anomalous:
                        continue
                    quality, kwh = "actual", synthetic_kwh(end, flow)
                    if end == NULL_END and anomalous:
                        quality, kwh = "missing", None
                    elif end == ESTIMATED_END and anomalous:
                        quality = "estimated"
                    elif end == EDITED_END and anomalous:
                        quality = "edited"
                    intervals.append(
                        {"supply_id": supply["supply_id"], "flow": flow, "interval_end": end,
                         "interval_seconds": 900, "kwh": kwh, "quality": quality}
                    )
    bills, bill_lines = [], []
    for supply_id, period_start, period_end, status in [
        (SOLAR_SUPPLY, date(2026, 2, 1), date(2026, 3, 1), "paid"),
        (SOLAR_SUPPLY, date(2026, 3, 1), date(2026, 4, 1), "unpaid"),
        (OTHER_CUSTOMER_SUPPLY, date(2026, 3, 1), date(2026, 4, 1), "unpaid"),
    ]:
        bill_id = f"B{supply_id}-{(period_end - timedelta(days=1)):%Y%m}"
        bills.append(
            {"bill_id": bill_id, "supply_id": supply_id, "period_start": period_start, "period_end": period_end,
             "issue_date": period_end + timedelta(days=3), "due_date": period_end + timedelta(days=20),
             "kwh": 187.25, "register_start_kwh": 1000.0, "register_end_kwh": 1187.25, "received_kwh": 12.5,
             "net_clp": 30000, "iva_clp": 5700, "total_clp": 35700, "status": status}
        )
        bill_lines.extend([
            {"bill_id": bill_id, "line_no": 1, "code": "CF", "description": "Cargo fijo mensual", "quantity": 1.0,
             "unit": "mes", "unit_price_clp": 1200.0, "amount_clp": 1200},
            {"bill_id": bill_id, "line_no": 2, "code": "EN", "description": "Cargo por energía",
             "quantity": 187.25, "unit": "kWh", "unit_price_clp": 153.8, "amount_clp": 28800},
        ])
    return {"customers": CUSTOMERS, "supplies": supplies, "intervals": intervals, "bills": bills,
            "bill_lines": bill_lines}


def write_demo_snapshot(readmodel_dir: Path, published_at: str = "2026-09-10T12:00:00+00:00", **changes) -> Path:
    world = demo_world()
    world.update(changes)
    return write_snapshot(readmodel_dir, published_at=published_at, **world)
