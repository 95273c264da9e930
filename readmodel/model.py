"""The portal's queries over the published snapshot: supplies, customers, consumption series and bills.

Every method returns plain JSON-ready values (str, int, float, bool, None, lists and dicts): kWh as floats
rounded to 6 decimals, money as integer CLP, instants as ISO 8601 with the Santiago offset, dates as ISO dates.
Each call uses one connection, hence one snapshot, so a single answer never mixes two publishes.

Consumption windows are local dates [from, to): the intervals whose END lies in
(local midnight(from), local midnight(to)], as the architecture contract says.
"""

from __future__ import annotations

import calendar
import functools
import json
import logging
import threading
from bisect import bisect_right
from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import duckdb

from readmodel import day_columns
from readmodel.day_columns import DayColumns
from readmodel.snapshots import ReadModelUnavailable, SnapshotConnections
from readmodel.timeutil import (
    TIMEZONE_NAME,
    add_months,
    as_utc,
    date_range,
    first_of_month,
    local_midnight_utc,
    to_local_iso,
)

log = logging.getLogger(__name__)

GRANULARITIES = ("15min", "hour", "day", "month", "billing_period")
FLOWS = ("delivered", "received", "net")
QUALITY_ORDER = ("actual", "edited", "estimated", "missing")  # ascending severity
_QUALITY_RANK = {quality: rank for rank, quality in enumerate(QUALITY_ORDER)}

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
QUARTER_HOUR = timedelta(minutes=15)
ONE_HOUR = timedelta(hours=1)
ONE_DAY = timedelta(days=1)

SUPPLY_COLUMNS = (
    "supply_id", "customer_id", "usage_point_mrid", "meter_mrid", "address", "comuna", "tariff", "status",
    "has_solar", "data_from", "data_until",
)
# Instants come out as epoch microseconds: converting TIMESTAMPTZ values to Python datetimes inside DuckDB costs
# more than the whole lookup, on a query every page and API call makes.
_SUPPLY_SELECT = ", ".join(
    f"epoch_us({column})" if column in ("data_from", "data_until") else column for column in SUPPLY_COLUMNS
)
CUSTOMER_COLUMNS = ("customer_id", "client_number", "name", "rut", "email")
BILL_COLUMNS = (
    "bill_id", "supply_id", "period_start", "period_end", "issue_date", "due_date", "kwh",
    "register_start_kwh", "register_end_kwh", "received_kwh", "net_clp", "iva_clp", "total_clp", "status",
)
BILL_LINE_COLUMNS = ("line_no", "code", "description", "quantity", "unit", "unit_price_clp", "amount_clp")
BILL_KWH_FIELDS = {"kwh", "register_start_kwh", "register_end_kwh", "received_kwh"}
BILL_MONEY_FIELDS = {"net_clp", "iva_clp", "total_clp"}
TARIFF_COLUMNS = (
    "valid_from", "valid_to", "tariff", "fixed_clp_month", "energy_clp_per_kwh", "injection_clp_per_kwh",
)
IVA_RATE = 0.19
# Local dates come out as days since 1970-01-01: DuckDB's conversion to Python dates costs more than the lookup.
_DAILY_FIELDS = "datediff('day', DATE '1970-01-01', local_date), kwh, intervals, expected_intervals, quality"
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
_DAILY_WHERE = "supply_id = ? AND flow = ? AND local_date >= ? AND local_date < ?"
# The same fields from a daily base of the current layout and its snapshot's `daily_recent`, which carry `day`.
_DAILY_BASE_FIELDS = "day, kwh, intervals, expected_intervals, quality"
# A base's `spans` are packed as the day columns' index is: first_row << SPAN_ROWS_BITS | rows.
_SPAN_ROWS_BITS = day_columns.SPAN_ROWS_BITS
_SPAN_ROWS_MASK = (1 << _SPAN_ROWS_BITS) - 1


def worst_quality(qualities: Iterable[str | None]) -> str:
    """Aggregate quality: missing if any part is missing, else estimated, else edited, else actual."""
    worst = 0
    for quality in qualities:
        rank = QUALITY_ORDER.index(quality) if quality in QUALITY_ORDER else QUALITY_ORDER.index("missing")
        worst = max(worst, rank)
    return QUALITY_ORDER[worst]


def round_kwh(value: float | None) -> float | None:
    return None if value is None else round6(float(value))


def round6(value: float) -> float:
    """`round(value, 6)`, exactly, about three times faster: `round(value * 1e6) / 1e6` whenever the product is
    far enough from a half-integer that its own rounding error cannot change the side it falls on (then the integer
    is the correctly rounded one, and dividing it by 1e6 gives the double nearest the decimal, as `round` does);
    `round(value, 6)` itself otherwise (near-ties, zero, huge or non-finite values)."""
    scaled = value * 1e6
    if -1e15 < scaled < 1e15:
        nearest = round(scaled)
        if nearest and abs(scaled - nearest) < 0.5 - abs(scaled) * 4.5e-16:  # (zero keeps its sign below)
            return nearest / 1e6
    return round(value, 6)


def _json_value(value):
    if isinstance(value, datetime):
        return to_local_iso(value)
    if isinstance(value, date):
        return value.isoformat()
    return value


class ReadModel:
    """Read-only access to the current published snapshot under `readmodel_dir`."""

    def __init__(self, readmodel_dir: Path, recheck_seconds: float = 1.0):
        self.readmodel_dir = Path(readmodel_dir)
        self._connections = SnapshotConnections(self.readmodel_dir, recheck_seconds=recheck_seconds)
        # Snapshots never change once published, so small per-snapshot facts (publish time, which tables exist,
        # tariff schedules) are cached by snapshot path: each costs a query otherwise, on every request.
        self._snapshot_facts: dict[Path, dict] = {}
        self._facts_lock = threading.Lock()
        self._supplies_lock = threading.Lock()
        self._base_lock = threading.Lock()
        self._recent_lock = threading.Lock()
        self._spans_by_base: dict[str, dict[str, int] | None] = {}
        self._base_columns_by_name: dict[str, DayColumns | None] = {}

    def _cached(self, key, compute):
        """`compute()` once per snapshot (the one this thread's connection is on)."""
        snapshot = getattr(self._connections._local, "snapshot_path", None)
        facts = self._snapshot_facts.get(snapshot)
        if facts is None:
            with self._facts_lock:
                facts = self._snapshot_facts.setdefault(snapshot, {})
                for stale in [path for path in self._snapshot_facts if path != snapshot][:-1]:
                    del self._snapshot_facts[stale]  # keep the current and the previous snapshot only
        if key not in facts:
            facts[key] = compute()
        return facts[key]

    # -- plumbing -----------------------------------------------------------------------------------------------

    def _rows(self, sql: str, params: list | tuple = ()) -> list[tuple]:
        return self._query(self._connections.connection(), sql, params)

    @staticmethod
    def _query(connection: duckdb.DuckDBPyConnection, sql: str, params: list | tuple = ()) -> list[tuple]:
        try:
            return connection.execute(sql, list(params)).fetchall()
        except duckdb.Error as error:
            raise ReadModelUnavailable(f"read-model query failed: {error}") from error

    def close(self) -> None:
        """Close the calling thread's connection."""
        self._connections.close_thread_connection()

    def snapshot_path(self) -> Path:
        return self._connections.current_snapshot_path()

    # -- freshness ----------------------------------------------------------------------------------------------

    def as_of(self) -> str:
        """When the current snapshot was published (UTC ISO text, as the publisher wrote it)."""
        return self._as_of(self._connections.connection())

    def _as_of(self, connection: duckdb.DuckDBPyConnection) -> str:
        return self._cached("as_of", lambda: self._read_as_of(connection))

    def _read_as_of(self, connection: duckdb.DuckDBPyConnection) -> str:
        rows = self._query(connection, "SELECT value FROM meta WHERE key = ?", ["published_at"])
        if not rows:
            raise ReadModelUnavailable("snapshot has no published_at in meta")
        return rows[0][0]

    def healthy(self) -> bool:
        """True when a snapshot is published and answers a query."""
        try:
            self.as_of()
        except ReadModelUnavailable:
            return False
        return True

    # -- master data --------------------------------------------------------------------------------------------

    def customers(self) -> list[dict]:
        rows = self._rows(f"SELECT {', '.join(CUSTOMER_COLUMNS)} FROM customers ORDER BY customer_id")
        return [dict(zip(CUSTOMER_COLUMNS, row)) for row in rows]

    def customer(self, customer_id: str) -> dict | None:
        rows = self._rows(
            f"SELECT {', '.join(CUSTOMER_COLUMNS)} FROM customers WHERE customer_id = ?", [customer_id]
        )
        return dict(zip(CUSTOMER_COLUMNS, rows[0])) if rows else None

    def _supply_dict(self, row: tuple) -> dict:
        supply = {column: _json_value(value) for column, value in zip(SUPPLY_COLUMNS, row)}
        supply["has_solar"] = bool(supply["has_solar"])
        for column in ("data_from", "data_until"):
            if supply[column] is not None:
                supply[column] = to_local_iso(_EPOCH + timedelta(microseconds=supply[column]))
        return supply

    def supplies_for_customer(self, customer_id: str) -> list[dict]:
        rows = self._rows(
            f"SELECT {_SUPPLY_SELECT} FROM supplies WHERE customer_id = ? ORDER BY supply_id",
            [customer_id],
        )
        return [self._supply_dict(row) for row in rows]

    def supply(self, supply_id: str) -> dict | None:
        row = self._supply_row(supply_id)
        return None if row is None else self._supply_dict(row)

    def _supply_row(self, supply_id: str) -> tuple | None:
        """The supply's row, from all supplies' rows read once per snapshot and process: the ownership check of
        every page and API call then costs no query (a DuckDB query costs ~1 ms however small). The rows are kept
        as JSON text: ~33 MB of objects for 100,000 supplies (~75 MB as tuples), ~45 MB more resident memory per
        gunicorn worker."""
        connection = self._connections.connection()
        with self._supplies_lock:  # one load per snapshot, not one per request thread
            packed = self._cached("supply_rows", lambda: self._read_supply_rows(connection))
        row = packed.get(supply_id)
        return None if row is None else tuple(json.loads(row))

    def _read_supply_rows(self, connection) -> dict[str, str]:
        try:
            cursor = connection.execute(f"SELECT {_SUPPLY_SELECT} FROM supplies")
            packed = {}
            while batch := cursor.fetchmany(10_000):
                packed.update((row[0], json.dumps(row, separators=(",", ":"))) for row in batch)
            return packed
        except duckdb.Error as error:
            raise ReadModelUnavailable(f"read-model query failed: {error}") from error

    # -- bills --------------------------------------------------------------------------------------------------

    @staticmethod
    def _bill_dict(row: tuple) -> dict:
        bill = {}
        for column, value in zip(BILL_COLUMNS, row):
            if column in BILL_KWH_FIELDS:
                value = round_kwh(value)
            elif column in BILL_MONEY_FIELDS:
                value = None if value is None else int(value)
            bill[column] = _json_value(value)
        return bill

    def bills(self, supply_id: str) -> list[dict]:
        """The supply's bills, newest period first."""
        rows = self._rows(
            f"SELECT {', '.join(BILL_COLUMNS)} FROM bills WHERE supply_id = ? "
            "ORDER BY period_end DESC, bill_id DESC",
            [supply_id],
        )
        return [self._bill_dict(row) for row in rows]

    def bill(self, supply_id: str, bill_id: str) -> dict | None:
        """One bill of the supply, with its `lines`; None when the bill is not this supply's."""
        connection = self._connections.connection()
        rows = self._query(
            connection,
            f"SELECT {', '.join(BILL_COLUMNS)} FROM bills WHERE supply_id = ? AND bill_id = ?",
            [supply_id, bill_id],
        )
        if not rows:
            return None
        bill = self._bill_dict(rows[0])
        line_rows = self._query(
            connection,
            f"SELECT {', '.join(BILL_LINE_COLUMNS)} FROM bill_lines WHERE bill_id = ? ORDER BY line_no",
            [bill_id],
        )
        bill["lines"] = [
            {
                "line_no": int(line_no),
                "code": code,
                "description": description,
                "quantity": None if quantity is None else round(float(quantity), 6),
                "unit": unit,
                "unit_price_clp": None if unit_price is None else float(unit_price),
                "amount_clp": None if amount is None else int(amount),
            }
            for line_no, code, description, quantity, unit, unit_price, amount in line_rows
        ]
        return bill

    # -- whole-history rows (the customer's "all my data" export) ------------------------------------------------

    def interval_rows(self, supply_id: str) -> list[tuple]:
        """Every stored interval of the supply: (flow, interval_end ISO local, interval_seconds, kwh, quality)."""
        rows = self._rows(
            "SELECT flow, interval_end, interval_seconds, kwh, quality FROM intervals WHERE supply_id = ? "
            "ORDER BY flow, interval_end",
            [supply_id],
        )
        return [(flow, to_local_iso(end), int(seconds), round_kwh(kwh), quality)
                for flow, end, seconds, kwh, quality in rows]

    def daily_rows(self, supply_id: str) -> list[tuple]:
        """Every daily total of the supply: (flow, local_date ISO, kwh, intervals, expected_intervals, quality)."""
        rows = self._rows(
            "SELECT flow, local_date, kwh, intervals, expected_intervals, quality FROM daily WHERE supply_id = ? "
            "ORDER BY flow, local_date",
            [supply_id],
        )
        return [(flow, day.isoformat(), round_kwh(kwh), intervals, expected, quality)
                for flow, day, kwh, intervals, expected, quality in rows]

    def day_quality_counts(self, supply_id: str, from_date: date, to_date: date, flow: str = "delivered") -> dict:
        """How many local days of [from_date, to_date) are actual, edited, estimated or missing (absent = missing)."""
        daily = self._daily_rows(self._connections.connection(), supply_id, from_date, to_date, flow)
        counts = dict.fromkeys(QUALITY_ORDER, 0)
        for day in date_range(from_date, to_date):
            counts[self._day_quality(daily.get(day))[1]] += 1
        return counts

    # -- tariffs ------------------------------------------------------------------------------------------------

    def _has_table(self, connection, table: str) -> bool:
        return self._cached(("table", table), lambda: bool(self._query(
            connection, "SELECT 1 FROM duckdb_tables() WHERE table_name = ? LIMIT 1", [table])))

    def tariffs(self, tariff: str | None = None) -> list[dict]:
        """The tariff schedule (oldest first), or [] when the snapshot carries no `tariffs` table."""
        return self._tariffs(self._connections.connection(), tariff)

    def _tariffs(self, connection, tariff: str | None) -> list[dict]:
        schedule = self._cached(("tariffs", tariff), lambda: self._read_tariffs(connection, tariff))
        return [dict(row) for row in schedule]

    def _read_tariffs(self, connection, tariff: str | None) -> list[dict]:
        if not self._has_table(connection, "tariffs"):
            return []
        sql = f"SELECT {', '.join(TARIFF_COLUMNS)} FROM tariffs"
        params: list = []
        if tariff is not None:
            sql += " WHERE tariff = ?"
            params.append(tariff)
        rows = self._query(connection, sql + " ORDER BY tariff, valid_from", params)
        schedule = []
        for valid_from, valid_to, name, fixed, energy, injection in rows:
            schedule.append(
                {
                    "valid_from": valid_from.isoformat(),
                    "valid_to": None if valid_to is None else valid_to.isoformat(),
                    "tariff": name,
                    "fixed_clp_month": None if fixed is None else int(fixed),
                    "energy_clp_per_kwh": None if energy is None else float(energy),
                    "injection_clp_per_kwh": None if injection is None else float(injection),
                }
            )
        return schedule

    # -- consumption --------------------------------------------------------------------------------------------

    def consumption(
        self,
        supply_id: str,
        granularity: str,
        from_date: date,
        to_date: date,
        flow: str = "delivered",
        supply: dict | None = None,
    ) -> dict:
        """The consumption series of one supply over local dates [from_date, to_date).

        `supply` (the supply's row, when the caller already has it) saves looking up its tariff and solar flag.
        Raises ValueError for an unknown granularity or flow, or an empty window.
        """
        if granularity not in GRANULARITIES:
            raise ValueError(f"unknown granularity {granularity!r}")
        if flow not in FLOWS:
            raise ValueError(f"unknown flow {flow!r}")
        if from_date >= to_date:
            raise ValueError("from_date must be before to_date")
        connection = self._connections.connection()
        if granularity == "day" and flow != "net":  # the busiest call: one pass, see `_priced_day_points`
            rate_of = self._rate_of(connection, supply_id, supply)
            points = _priced_day_points(
                self._daily_by_day(connection, supply_id, from_date, to_date, flow),
                from_date.toordinal() - _EPOCH_ORDINAL, to_date.toordinal() - _EPOCH_ORDINAL,
                rate_of, received=flow == "received")
            return self._series(connection, supply_id, granularity, from_date, to_date, flow, rate_of is not None,
                                points)
        if flow == "net":
            delivered = self._points(connection, supply_id, granularity, from_date, to_date, "delivered")
            if (supply or {}).get("has_solar") or self._supply_has_received_channel(connection, supply_id):
                received = self._points(connection, supply_id, granularity, from_date, to_date, "received")
                points = [_net_point(d, r) for d, r in zip(delivered, received, strict=True)]
                per_flow = {"delivered": delivered, "received": received}
            else:
                points = delivered
                per_flow = {"delivered": delivered}
        else:
            points = self._points(connection, supply_id, granularity, from_date, to_date, flow)
            per_flow = {flow: points}
        costs = self._costs(connection, supply_id, granularity, from_date, to_date, points, per_flow, supply)
        for point, clp in zip(points, costs if costs is not None else [None] * len(points), strict=True):
            kwh = point["kwh"]
            point["kwh"] = None if kwh is None else round6(float(kwh))  # round_kwh, inlined: ~400 points
            point["clp"] = clp
        return self._series(connection, supply_id, granularity, from_date, to_date, flow, costs is not None, points)

    def _series(self, connection, supply_id, granularity, from_date, to_date, flow, prices_available,
                points) -> dict:
        return {
            "supply_id": supply_id,
            "unit": "kWh",
            "timezone": TIMEZONE_NAME,
            "granularity": granularity,
            "as_of": self._as_of(connection),
            "from": from_date.isoformat(),
            "to": to_date.isoformat(),
            "flow": flow,
            "prices_available": prices_available,
            "points": points,
        }

    def _costs(self, connection, supply_id, granularity, from_date, to_date, points, per_flow,
               supply: dict | None = None) -> list | None:
        """Pesos of each point: energy charge plus IVA at the rate valid on each local day (received energy
        counts as a credit at the injection rate), never the fixed charge. None without a tariff schedule.

        Each day is priced with the tariff in force that day, so a tariff change never rewrites the past.
        """
        rate_of = self._rate_of(connection, supply_id, supply)
        if rate_of is None:
            return None
        if granularity in ("15min", "hour", "day"):
            return _priced_points(points, per_flow, rate_of)
        daily_by_flow = {
            flow: self._daily_rows(connection, supply_id, from_date, to_date, flow) for flow in per_flow
        }
        day_cost: dict[date, float | None] = {}
        for day in date_range(from_date, to_date):
            kwh_by_flow = {flow: (rows.get(day) or (None,))[0] for flow, rows in daily_by_flow.items()}
            day_cost[day] = _priced(kwh_by_flow, day, rate_of, rounded=False)
        costs = []
        for point in points:
            # a local day whose midnight does not exist starts at 01:00: the text still names its date
            first, stop = date.fromisoformat(point["start"][:10]), date.fromisoformat(point["end"][:10])
            known = [day_cost[day] for day in date_range(first, stop) if day_cost.get(day) is not None]
            costs.append(int(round(sum(known))) if known else None)
        return costs

    def _rate_of(self, connection, supply_id, supply: dict | None = None):
        """`_rate_lookup` of the supply's tariff schedule, or None when the snapshot prices nothing for it."""
        if not self._has_table(connection, "tariffs"):
            return None
        if supply is not None and "tariff" in supply:
            tariff = supply["tariff"]
        else:
            row = self._supply_row(supply_id)
            if row is None:
                return None
            tariff = row[SUPPLY_COLUMNS.index("tariff")]
        schedule = self._tariffs(connection, tariff)
        return _rate_lookup(schedule) if schedule else None

    def _supply_has_received_channel(self, connection, supply_id: str) -> bool:
        """A supply without solar has no export channel: its net equals delivered, not 'missing'."""
        row = self._supply_row(supply_id)
        if row is not None and row[SUPPLY_COLUMNS.index("has_solar")]:
            return True
        rows = self._query(
            connection, "SELECT 1 FROM daily WHERE supply_id = ? AND flow = ? LIMIT 1", [supply_id, "received"]
        )
        return bool(rows)

    def _points(self, connection, supply_id, granularity, from_date, to_date, flow) -> list[dict]:
        if granularity == "billing_period":
            return self._billing_period_points(connection, supply_id, from_date, to_date, flow)
        if granularity == "15min":
            return self._interval_points(connection, supply_id, from_date, to_date, flow, QUARTER_HOUR)
        if granularity == "hour":
            return self._interval_points(connection, supply_id, from_date, to_date, flow, ONE_HOUR)
        if granularity == "day":
            return self._day_points(connection, supply_id, from_date, to_date, flow)
        return self._month_points(connection, supply_id, from_date, to_date, flow)

    def _interval_points(self, connection, supply_id, from_date, to_date, flow, bucket: timedelta) -> list[dict]:
        """Buckets of `bucket` length built from stored intervals.

        Santiago offsets are whole hours, so UTC buckets coincide with local clock quarter-hours and hours, and a
        25-hour day simply yields 25 hourly buckets. A bucket is complete when its stored, non-null intervals
        cover all of its seconds.
        """
        window_start = local_midnight_utc(from_date)
        window_end = local_midnight_utc(to_date)
        rows = self._query(
            connection,
            "SELECT interval_end, interval_seconds, kwh, quality FROM intervals "
            "WHERE supply_id = ? AND flow = ? AND interval_end > ? AND interval_end <= ? "
            "ORDER BY interval_end",
            [supply_id, flow, window_start, window_end],
        )
        bucket_seconds = int(bucket.total_seconds())
        buckets: dict[datetime, list] = {}
        for interval_end, interval_seconds, kwh, quality in rows:
            interval_end = as_utc(interval_end)
            interval_seconds = int(interval_seconds or 900)
            if interval_seconds > bucket_seconds:
                continue  # a coarser interval cannot be split into finer points
            interval_start = interval_end - timedelta(seconds=interval_seconds)
            offset = (interval_start - window_start) // bucket
            bucket_start = window_start + offset * bucket
            buckets.setdefault(bucket_start, []).append((interval_seconds, kwh, quality))

        points = []
        bucket_start = window_start
        while bucket_start < window_end:
            parts = buckets.get(bucket_start, [])
            known = [(seconds, kwh, quality) for seconds, kwh, quality in parts if kwh is not None]
            covered_seconds = sum(seconds for seconds, _, _ in known)
            if covered_seconds >= bucket_seconds:
                quality = worst_quality(quality for _, _, quality in known)
            else:
                quality = "missing"
            points.append(
                {
                    "start": to_local_iso(bucket_start),
                    "end": to_local_iso(bucket_start + bucket),
                    "kwh": sum(kwh for _, kwh, _ in known) if known else None,
                    "quality": quality,
                }
            )
            bucket_start += bucket
        return points

    def _daily_rows(self, connection, supply_id, from_date, to_date, flow) -> dict[date, tuple]:
        """The supply's daily rows in [from_date, to_date): local date -> (kwh, intervals, expected, quality)."""
        return {date.fromordinal(_EPOCH_ORDINAL + day): row
                for day, row in self._daily_by_day(connection, supply_id, from_date, to_date, flow).items()}

    def _daily_by_day(self, connection, supply_id, from_date, to_date, flow) -> dict[int, tuple]:
        """`_daily_rows` keyed by days since 1970-01-01 (no date objects: the day series' hot path)."""
        recent_months = self._daily_recent_months(connection)
        params = [supply_id, flow, from_date, to_date]
        if recent_months is None:  # no supply-sorted base: the `daily` view over the month files
            rows = self._query(connection, f"SELECT {_DAILY_FIELDS} FROM daily WHERE {_DAILY_WHERE}", params)
            return {row[0]: row[1:] for row in rows}
        first_day, stop_day = from_date.toordinal() - _EPOCH_ORDINAL, to_date.toordinal() - _EPOCH_ORDINAL
        columns = self._base_columns(connection)
        if columns is not None:  # the base's day columns, mapped: no query for the base's part
            days = columns.days(supply_id, flow, first_day, stop_day)
            if not recent_months:
                return days
            recent_columns = self._recent_columns(connection)
            if recent_columns is not None:
                recent = recent_columns.days(supply_id, flow, first_day, stop_day)
            else:
                recent = {row[0]: row[1:5] for row in self._query(
                    connection, f"SELECT {_DAILY_BASE_FIELDS} FROM daily_recent "
                                "WHERE supply_id = ? AND flow = ? AND day >= ? AND day < ?",
                    [supply_id, flow, first_day, stop_day])}
            recent_days = self._daily_recent_days(connection)
            days = {day: row for day, row in days.items() if day not in recent_days}
            days.update(recent)
            return days
        spans = self._daily_spans(connection)
        span = None if spans is None else spans.get(day_columns.key_of(supply_id, flow))
        if spans is None:  # a base of the earliest layout: filter it by supply
            base_sql, base_params = f"SELECT {_DAILY_FIELDS}, false FROM daily_base.daily WHERE {_DAILY_WHERE}", params
        elif span is None:
            base_sql, base_params = None, []
        else:
            first_row = span >> _SPAN_ROWS_BITS
            last_row = first_row + (span & _SPAN_ROWS_MASK) - 1
            base_sql = (f"SELECT {_DAILY_BASE_FIELDS}, false FROM daily_base.daily "
                        "WHERE rowid BETWEEN ? AND ? AND day >= ? AND day < ?")
            base_params = [first_row, last_row, first_day, stop_day]
        # The base holds every month as of when it was written; `daily_recent` replaces the months since changed.
        if recent_months:
            if spans is None:
                recent_sql = f"SELECT {_DAILY_FIELDS}, true FROM daily_recent WHERE {_DAILY_WHERE}"
                recent_params = params
            else:
                recent_sql = (f"SELECT {_DAILY_BASE_FIELDS}, true FROM daily_recent "
                              "WHERE supply_id = ? AND flow = ? AND day >= ? AND day < ?")
                recent_params = [supply_id, flow, first_day, stop_day]
            if base_sql is None:
                base_sql, base_params = recent_sql, recent_params
            else:
                base_sql, base_params = f"{base_sql} UNION ALL {recent_sql}", base_params + recent_params
        if base_sql is None:
            return {}
        rows = self._query(connection, base_sql, base_params)
        if not recent_months:
            return {row[0]: row[1:5] for row in rows}
        recent_days = self._daily_recent_days(connection)
        return {row[0]: row[1:5] for row in rows if row[5] or row[0] not in recent_days}

    def _daily_recent_months(self, connection) -> frozenset[tuple[int, int]] | None:
        """(year, month) of the snapshot's `daily_recent`, or None when no daily base is attached."""
        return self._cached("daily_recent_months", lambda: self._read_daily_recent_months(connection))

    def _daily_recent_days(self, connection) -> frozenset[int]:
        """Days (since 1970-01-01) of the months in the snapshot's `daily_recent`."""
        def days() -> frozenset[int]:
            numbers = set()
            for year, month in self._daily_recent_months(connection):
                first = date(year, month, 1).toordinal() - _EPOCH_ORDINAL
                numbers.update(range(first, first + calendar.monthrange(year, month)[1]))
            return frozenset(numbers)
        return self._cached("daily_recent_days", days)

    def _read_daily_recent_months(self, connection) -> frozenset[tuple[int, int]] | None:
        attached = self._query(connection, "SELECT 1 FROM duckdb_databases() WHERE database_name = 'daily_base'")
        rows = self._query(connection, "SELECT value FROM meta WHERE key = 'daily_recent_months'")
        if not attached or not rows:
            return None
        return frozenset((month.year, month.month) for month in map(date.fromisoformat, json.loads(rows[0][0])))

    def _daily_base_name(self, connection) -> str:
        return self._cached("daily_base_name", lambda: self._query(
            connection, "SELECT value FROM meta WHERE key = 'daily_base'")[0][0])

    def _base_columns(self, connection) -> DayColumns | None:
        """The attached daily base's day columns, mapped (None for a base without them). Opened once per base file
        and process (bases outlive many snapshots); shared with every worker through the page cache."""
        base = self._daily_base_name(connection)
        opened = self._base_columns_by_name
        if base in opened:
            return opened[base]
        with self._base_lock:  # one thread opens it; the others wait for it
            if base not in self._base_columns_by_name:
                # Keep the previous base too: threads on the previous snapshot may still ask for it.
                previous = list(self._base_columns_by_name.items())[-1:]
                self._base_columns_by_name = dict(
                    [*previous, (base, self._open_day_columns(self.readmodel_dir / base))])
            return self._base_columns_by_name[base]

    def _recent_columns(self, connection) -> DayColumns | None:
        """The snapshot's `daily_recent` as day columns (meta `daily_recent_columns`), or None without them."""
        with self._recent_lock:  # one thread opens them after a publish; the others find them cached
            return self._cached("daily_recent_columns", lambda: self._open_recent_columns(connection))

    def _open_recent_columns(self, connection) -> DayColumns | None:
        rows = self._query(connection, "SELECT value FROM meta WHERE key = 'daily_recent_columns'")
        return self._open_day_columns(self.readmodel_dir / rows[0][0]) if rows and rows[0][0] else None

    def _open_day_columns(self, path: Path) -> DayColumns | None:
        path = path.with_suffix(day_columns.SUFFIX)
        if not path.resolve().is_relative_to(self.readmodel_dir.resolve()) or not path.is_file():
            return None
        try:
            return DayColumns(path)
        except (OSError, ValueError) as error:  # read through DuckDB instead
            log.warning("day columns %s unusable: %s", path, error)
            return None

    def _daily_spans(self, connection) -> dict[str, int] | None:
        """The attached daily base's rowid range of each supply and flow (key `supply_id + "\\x1f" + flow`, value
        first_row << 24 | rows), or None for a base without `spans`; only for bases without day columns. Read once
        per base file and process. ~12 MB for 100,000 supplies."""
        base = self._daily_base_name(connection)
        with self._base_lock:
            if base not in self._spans_by_base:
                self._spans_by_base = {base: self._read_daily_spans(connection)}  # the previous base is done with
            return self._spans_by_base[base]

    def _read_daily_spans(self, connection) -> dict[str, int] | None:
        if not self._query(connection, "SELECT 1 FROM duckdb_tables() WHERE database_name = 'daily_base' "
                                        "AND table_name = 'spans'"):
            return None
        try:
            cursor = connection.execute(
                f"SELECT supply_id || chr(31) || flow, first_row << {_SPAN_ROWS_BITS} | rows FROM daily_base.spans")
            spans = {}
            while batch := cursor.fetchmany(50_000):
                spans.update(batch)
            return spans
        except duckdb.Error as error:
            raise ReadModelUnavailable(f"read-model query failed: {error}") from error

    @staticmethod
    def _day_quality(daily_row: tuple | None) -> tuple[float | None, str]:
        """(kwh, quality) of a local day: missing when absent, incomplete, or of an unknown quality."""
        if daily_row is None:
            return None, "missing"
        kwh, intervals, expected_intervals, quality = daily_row
        if kwh is None or (expected_intervals is not None and (intervals or 0) < expected_intervals):
            return kwh, "missing"
        return kwh, quality if quality in _QUALITY_RANK else "missing"

    def _day_points(self, connection, supply_id, from_date, to_date, flow) -> list[dict]:
        """One point per local day."""
        return _day_points(self._daily_by_day(connection, supply_id, from_date, to_date, flow),
                           from_date.toordinal() - _EPOCH_ORDINAL, to_date.toordinal() - _EPOCH_ORDINAL)

    def _month_points(self, connection, supply_id, from_date, to_date, flow) -> list[dict]:
        """Whole months come from `monthly`; months cut by the window edges are summed from `daily`."""
        monthly_rows = self._query(
            connection,
            "SELECT month, kwh, days, quality FROM monthly "
            "WHERE supply_id = ? AND flow = ? AND month >= ? AND month < ?",
            [supply_id, flow, first_of_month(from_date), to_date],
        )
        monthly = {row[0]: row[1:] for row in monthly_rows}
        daily = self._daily_rows(connection, supply_id, from_date, to_date, flow)

        points = []
        month_start = first_of_month(from_date)
        while month_start < to_date:
            next_month = (month_start + timedelta(days=32)).replace(day=1)
            part_start, part_end = max(month_start, from_date), min(next_month, to_date)
            if (part_start, part_end) == (month_start, next_month):
                kwh, quality = self._whole_month(monthly.get(month_start), month_start)
            else:
                days = [self._day_quality(daily.get(day)) for day in date_range(part_start, part_end)]
                known = [kwh for kwh, _ in days if kwh is not None]
                kwh = sum(known) if known else None
                quality = worst_quality(quality for _, quality in days)
            points.append(
                {
                    "start": to_local_iso(local_midnight_utc(part_start)),
                    "end": to_local_iso(local_midnight_utc(part_end)),
                    "kwh": kwh,
                    "quality": quality,
                }
            )
            month_start = next_month
        return points

    def billing_periods(self, supply_id: str, from_date: date, to_date: date) -> list[tuple[date, date, str | None]]:
        """Billing periods [start, end) overlapping [from_date, to_date), with the bill id when one was issued."""
        return self._billing_periods(self._connections.connection(), supply_id, from_date, to_date)

    def _billing_periods(self, connection, supply_id, from_date, to_date) -> list[tuple[date, date, str | None]]:
        """Issued bills give the real periods; before the first and after the last, periods continue monthly on
        the same cycle day (the open period after the last bill is the one being read now)."""
        rows = self._query(
            connection,
            "SELECT period_start, period_end, bill_id FROM bills WHERE supply_id = ? ORDER BY period_start",
            [supply_id],
        )
        periods: list[tuple[date, date, str | None]] = [(start, end, bill_id) for start, end, bill_id in rows]
        if not periods:
            anchor = first_of_month(from_date)
            periods = [(anchor, add_months(anchor, 1), None)]
        while periods[0][0] > from_date:
            start = periods[0][0]
            periods.insert(0, (add_months(start, -1), start, None))
        while periods[-1][1] < to_date:
            end = periods[-1][1]
            periods.append((end, add_months(end, 1), None))
        return [period for period in periods if period[0] < to_date and period[1] > from_date]

    def _billing_period_points(self, connection, supply_id, from_date, to_date, flow) -> list[dict]:
        daily = self._daily_rows(connection, supply_id, from_date, to_date, flow)
        points = []
        for period_start, period_end, bill_id in self._billing_periods(connection, supply_id, from_date, to_date):
            part_start, part_end = max(period_start, from_date), min(period_end, to_date)
            days = [self._day_quality(daily.get(day)) for day in date_range(part_start, part_end)]
            known = [kwh for kwh, _ in days if kwh is not None]
            point = {
                "start": to_local_iso(local_midnight_utc(part_start)),
                "end": to_local_iso(local_midnight_utc(part_end)),
                "kwh": sum(known) if known else None,
                "quality": worst_quality(quality for _, quality in days),
            }
            if bill_id is not None:
                point["bill_id"] = bill_id
            points.append(point)
        return points

    @staticmethod
    def _whole_month(monthly_row: tuple | None, month_start: date) -> tuple[float | None, str]:
        if monthly_row is None:
            return None, "missing"
        kwh, days, quality = monthly_row
        days_in_month = calendar.monthrange(month_start.year, month_start.month)[1]
        incomplete = kwh is None or (days is not None and days < days_in_month)
        return kwh, worst_quality([quality, "missing" if incomplete else "actual"])


@functools.lru_cache(maxsize=16384)
def _day_bounds(day: date) -> tuple[str, str]:
    """ISO texts of a local day's first and next day's first instant (cached: the same days are asked often)."""
    return to_local_iso(local_midnight_utc(day)), to_local_iso(local_midnight_utc(day + timedelta(days=1)))


@functools.lru_cache(maxsize=16384)
def _day_bounds_of_number(day: int) -> tuple[str, str]:
    """`_day_bounds` of the local date `day` days after 1970-01-01."""
    return _day_bounds(date.fromordinal(_EPOCH_ORDINAL + day))


def _rate_lookup(schedule: list[dict]):
    """day -> the tariff row valid that day (valid_from <= day < valid_to), or None."""
    rows = [
        (date.fromisoformat(row["valid_from"]), date.fromisoformat(row["valid_to"]) if row["valid_to"] else None, row)
        for row in schedule
    ]

    def rate_of(day: date) -> dict | None:
        for valid_from, valid_to, row in rows:
            if valid_from <= day and (valid_to is None or day < valid_to):
                return row
        return None

    # Between two consecutive dates where some row starts or ends, the answer cannot change (ISO texts).
    rate_of.breakpoints = sorted({row["valid_from"] for row in schedule}
                                 | {row["valid_to"] for row in schedule if row["valid_to"]})
    return rate_of


def _priced(kwh_by_flow: dict, day: date, rate_of, rounded: bool = True):
    """Energy pesos (with IVA) of the given kWh per flow on `day`; received energy is a credit."""
    row = rate_of(day)
    if row is None:
        return None
    total, known = 0.0, False
    for flow, kwh in kwh_by_flow.items():
        if kwh is None:
            continue
        known = True
        if flow == "received":
            total -= float(kwh) * (row["injection_clp_per_kwh"] or 0.0)
        else:
            total += float(kwh) * (row["energy_clp_per_kwh"] or 0.0)
    if not known:
        return None
    total *= 1 + IVA_RATE
    return int(round(total)) if rounded else total


def _priced_points(points: list[dict], per_flow: dict[str, list[dict]], rate_of) -> list:
    """`_priced` of each point's kWh per flow on the local date its start names (the same arithmetic in the same
    order, so the pesos are identical), the rate looked up once per stretch of days between the schedule's
    breakpoints rather than once per day."""
    breakpoints = rate_of.breakpoints
    rates: dict[int, tuple[float, float] | None] = {}
    kwh_by_flow = [(flow == "received", [point["kwh"] for point in series]) for flow, series in per_flow.items()]
    iva_factor = 1 + IVA_RATE
    single_received, single = kwh_by_flow[0] if len(kwh_by_flow) == 1 else (False, None)
    costs = []
    append = costs.append
    for index, point in enumerate(points):
        day_text = point["start"][:10]
        stretch = bisect_right(breakpoints, day_text)
        rate = rates.get(stretch, ())
        if rate == ():
            row = rate_of(date.fromisoformat(day_text))
            rate = None if row is None else (row["energy_clp_per_kwh"] or 0.0, row["injection_clp_per_kwh"] or 0.0)
            rates[stretch] = rate
        if rate is None:
            append(None)
            continue
        if single is not None:  # one flow (not net): the loop below, unrolled
            kwh = single[index]
            if kwh is None:
                append(None)
            else:
                append(int(round((0.0 - float(kwh) * rate[1] if single_received else float(kwh) * rate[0])
                                 * iva_factor)))
            continue
        total, known = 0.0, False
        for received, kwhs in kwh_by_flow:
            kwh = kwhs[index]
            if kwh is None:
                continue
            known = True
            if received:
                total -= float(kwh) * rate[1]
            else:
                total += float(kwh) * rate[0]
        append(int(round(total * iva_factor)) if known else None)
    return costs


def _day_points(daily: dict[int, tuple], first_day: int, stop_day: int) -> list[dict]:
    """One point per day number in [first_day, stop_day) from `_daily_by_day`'s rows; `_day_quality` inlined."""
    points = []
    append, day_row, bounds = points.append, daily.get, _day_bounds_of_number
    for day in range(first_day, stop_day):
        row = day_row(day)
        if row is None:
            kwh, quality = None, "missing"
        else:
            kwh, intervals, expected_intervals, quality = row
            if (kwh is None or (expected_intervals is not None and (intervals or 0) < expected_intervals)
                    or quality not in _QUALITY_RANK):
                quality = "missing"
        start, end = bounds(day)
        append({"start": start, "end": end, "kwh": kwh, "quality": quality})
    return points


def _priced_day_points(daily: dict[int, tuple], first_day: int, stop_day: int, rate_of, received: bool) -> list:
    """The finished points of a one-flow day series over day numbers [first_day, stop_day): what `_day_points`,
    `_priced_points` (None `rate_of`: no prices) and rounding the kWh with `round6` give, in one pass: the same
    arithmetic in the same order, so the same numbers, for the portal's busiest call."""
    iva_factor = 1 + IVA_RATE
    breaks = [] if rate_of is None else [
        date.fromisoformat(text).toordinal() - _EPOCH_ORDINAL for text in rate_of.breakpoints]
    points = []
    append, day_row, bounds, rank = points.append, daily.get, _day_bounds_of_number, _QUALITY_RANK
    next_break, price = first_day, None  # the rate is looked up again at each breakpoint the days cross
    for day in range(first_day, stop_day):
        if day >= next_break:
            index = bisect_right(breaks, day)
            next_break = breaks[index] if index < len(breaks) else stop_day
            row = None if rate_of is None else rate_of(date.fromordinal(_EPOCH_ORDINAL + day))
            price = None if row is None else (
                row["injection_clp_per_kwh"] or 0.0 if received else row["energy_clp_per_kwh"] or 0.0)
        row = day_row(day)
        if row is None:
            kwh, quality, clp = None, "missing", None
        else:
            kwh, intervals, expected_intervals, quality = row
            if (kwh is None or (expected_intervals is not None and (intervals or 0) < expected_intervals)
                    or quality not in rank):
                quality = "missing"
            if kwh is None:
                clp = None
            else:
                kwh = float(kwh)
                if price is None:
                    clp = None
                else:
                    clp = int(round((0.0 - kwh * price if received else kwh * price) * iva_factor))
                # round6(kwh), inlined
                scaled = kwh * 1e6
                if -1e15 < scaled < 1e15 and (nearest := round(scaled)) and (
                        abs(scaled - nearest) < 0.5 - abs(scaled) * 4.5e-16):
                    kwh = nearest / 1e6
                else:
                    kwh = round(kwh, 6)
        start, end = bounds(day)
        append({"start": start, "end": end, "kwh": kwh, "quality": quality, "clp": clp})
    return points


def _net_point(delivered: dict, received: dict) -> dict:
    both_known = delivered["kwh"] is not None and received["kwh"] is not None
    return {
        "start": delivered["start"],
        "end": delivered["end"],
        "kwh": delivered["kwh"] - received["kwh"] if both_known else None,
        "quality": worst_quality([delivered["quality"], received["quality"]]),
    }
