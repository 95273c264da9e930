"""Publish of the read-model snapshot the portal reads (contract: docs/architecture.md, "Read-model snapshot").

The portal never opens the warehouse (DuckDB locks a file against other processes). Each publish writes a NEW
DuckDB file `snapshots/rm-<UTC stamp>.duckdb` from the open warehouse connection, flushes it to disk, then
atomically replaces the `CURRENT` pointer file with its relative path. Readers holding an older snapshot keep
reading it; old snapshots are deleted only when they are neither among the newest few nor recent.

Cost proportional to change: the two big tables (`intervals`, `daily`) are not copied into each snapshot. They
are kept as one immutable Parquet file per local month under `parts/<table>/month=YYYY-MM/<fingerprint>.parquet`
(Hive-style, sorted by supply, flow and time), and each snapshot holds a VIEW over the files of its months. The
fingerprint is an order-independent hash of the month's rows; a month whose fingerprint already has a file is
reused as is. A publish starts from the snapshot CURRENT names (its `published_parts` and meta): only months
holding intervals loaded after that snapshot's `intervals_loaded_until` are fingerprinted again (loads stamp what
they insert or change with `loaded_at`, so a late correction in a closed month rewrites that month alone), and the
supplies' data spans are widened by those intervals only. `daily` (1/96 of the intervals) is fingerprinted whole,
since a rollup may rewrite days without a new load. Part files are deleted once no remaining snapshot names them
(each snapshot's list is `parts/manifests/<snapshot>.json`).

For the portal's per-supply day lookups, `daily` also lives in a supply-sorted DuckDB file
`parts/daily_base/base-v3-<digest>.duckdb` (rewritten only when more than DAILY_MAX_RECENT_MONTHS months differ
from it) plus, in each snapshot, `daily_recent`: the months that differ. Both also go out as day columns (flat
arrays with an index by supply, `.days`) that readers map and slice without a query; the base's `spans` table
gives the same rowid ranges to readers that query it.

Small tables (meta, customers, supplies, monthly, bills, bill_lines, tariffs) are copied into the snapshot.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

import duckdb
import numpy as np

log = logging.getLogger(__name__)

SNAPSHOT_SCHEMA_VERSION = "1"
SNAPSHOTS_DIR = "snapshots"
CURRENT_FILE = "CURRENT"
_ALIAS = "read_model_snapshot"

PARTS_DIR = "parts"
MANIFESTS_DIR = "manifests"
_PREVIOUS = "previous_read_model_snapshot"
_BASE_ALIAS = "read_model_daily_base"
# The supply-sorted copy of `daily` (parts/daily_base/base-<digest>.duckdb) that readers attach as `daily_base`;
# it is rewritten when more months than this differ from it, so each snapshot copies at most that many months.
DAILY_BASE_TABLE = "daily_base"
DAILY_MAX_RECENT_MONTHS = 3
# The base's layout: its `daily` carries `day` (days since 1970-01-01) and a `spans` table gives each supply and
# flow's contiguous rowid range, so a reader fetches one supply's days by rowid instead of filtering a row group.
# v3 adds, beside each base, its day columns as flat arrays with an index by supply (`_write_day_columns`): a
# reader maps the file and slices a supply's days out of it without a query. Bases of another layout are rebuilt by
# the next publish, never reused.
DAILY_BASE_LAYOUT = "v3"
DAY_COLUMNS_SUFFIX = ".days"
# A snapshot's `daily_recent` as day columns too: parts/daily_recent/<snapshot>.days, named in its meta.
DAILY_RECENT_COLUMNS_DIR = "daily_recent"
DAY_COLUMNS_MAGIC = b"AMIDAYS1"
DAY_COLUMNS_HEADER_BYTES = 64
DAY_SPAN_ROWS_BITS = 24
# (column, SQL giving it without NULLs, numpy dtype): the file holds them in this order after the header.
DAY_COLUMNS_QUALITIES = ("actual", "edited", "estimated", "missing")  # codes 0..3; 255 is any other or NULL
DAY_COLUMNS = (
    ("kwh", "coalesce(kwh, 'NaN'::DOUBLE)", "<f8"),  # NaN: NULL
    ("day", "day", "<i4"),
    ("intervals", "coalesce(intervals, -1)", "<i4"),  # -1: NULL
    ("expected_intervals", "coalesce(expected_intervals, -1)", "<i4"),  # -1: NULL
    ("quality", "CASE quality " + " ".join(f"WHEN '{name}' THEN {code}"
                                          for code, name in enumerate(DAY_COLUMNS_QUALITIES))
                + " ELSE 255 END", "u1"),
)
_DAY_COLUMNS_CHUNK_ROWS = 1 << 20
# Days since 1970-01-01 of a local date: readers get integers, cheaper to fetch than Python dates.
DAY_NUMBER_SQL = "CAST(datediff('day', DATE '1970-01-01', local_date) AS INTEGER)"
SNAPSHOT_ROW_GROUP_SIZE = 8192

# Big tables: one Parquet file per local month. `month_of` gives the local month (first day) of a row; `columns`
# is the contract's column list; `order` the sort inside each file; `fingerprint` hashes one row.
PARTITIONED_TABLES: dict[str, dict[str, str]] = {
    "intervals": {
        "source": "interval_readings",
        "columns": "supply_id, flow, interval_end, interval_seconds, CAST(kwh AS DOUBLE) AS kwh, quality",
        # An interval belongs to the local date of its start: end minus one microsecond gives the same month.
        "month_of": "CAST(date_trunc('month', timezone('America/Santiago', interval_end - INTERVAL 1 MICROSECOND))"
                    " AS DATE)",
        "range": "interval_end > ? AND interval_end <= ?",
        "order": "supply_id, flow, interval_end",
        "fingerprint": "hash(supply_id, flow, interval_end, interval_seconds, kwh, quality)",
    },
    "daily": {
        "source": "daily_consumption",
        "columns": "supply_id, flow, local_date, CAST(kwh AS DOUBLE) AS kwh, intervals, expected_intervals, quality",
        "month_of": "CAST(date_trunc('month', local_date) AS DATE)",
        "range": "local_date >= ? AND local_date < ?",
        "order": "supply_id, flow, local_date",
        "fingerprint": "hash(supply_id, flow, local_date, kwh, intervals, expected_intervals, quality)",
    },
}

# Small tables, copied into every snapshot; tariffs only when the warehouse has that table.
SNAPSHOT_TABLES: dict[str, str] = {
    "customers": """
        SELECT customer_id, client_number, name, rut, email FROM customers ORDER BY customer_id
    """,
    "supplies": """
        SELECT s.supply_id, s.customer_id, s.usage_point_mrid, s.meter_mrid, s.address, s.comuna, s.tariff,
               s.status, s.has_solar, span.data_from, span.data_until
        FROM supplies s
        LEFT JOIN (
            SELECT supply_id,
                   CAST(min(interval_end - to_seconds(interval_seconds)) AS TIMESTAMPTZ) AS data_from,
                   max(interval_end) AS data_until
            FROM interval_readings GROUP BY supply_id
        ) span USING (supply_id)
        ORDER BY s.supply_id
    """,
    "monthly": """
        SELECT supply_id, flow, month, CAST(kwh AS DOUBLE) AS kwh, days, quality
        FROM monthly_consumption
        ORDER BY supply_id, flow, month
    """,
    "bills": """
        SELECT bill_id, supply_id, period_start, period_end, issue_date, due_date,
               CAST(kwh AS DOUBLE) AS kwh, CAST(register_start_kwh AS DOUBLE) AS register_start_kwh,
               CAST(register_end_kwh AS DOUBLE) AS register_end_kwh, CAST(received_kwh AS DOUBLE) AS received_kwh,
               net_clp, iva_clp, total_clp, status
        FROM bills
        ORDER BY supply_id, period_start
    """,
    "bill_lines": """
        SELECT bill_id, line_no, code, description, quantity, unit, unit_price_clp, amount_clp
        FROM bill_lines
        ORDER BY bill_id, line_no
    """,
    "tariffs": """
        SELECT valid_from, valid_to, tariff, CAST(fixed_clp_month AS BIGINT) AS fixed_clp_month,
               CAST(energy_clp_per_kwh AS DOUBLE) AS energy_clp_per_kwh,
               CAST(injection_clp_per_kwh AS DOUBLE) AS injection_clp_per_kwh
        FROM tariffs
        ORDER BY tariff, valid_from
    """,
}
OPTIONAL_TABLES = frozenset({"tariffs"})

# `supplies` of an incremental publish: the spans the previous snapshot published, widened by the intervals loaded
# since (parameter: its loaded-until mark), so no publish scans all interval history for them.
SUPPLIES_SINCE_SQL = """
    SELECT s.supply_id, s.customer_id, s.usage_point_mrid, s.meter_mrid, s.address, s.comuna, s.tariff,
           s.status, s.has_solar, span.data_from, span.data_until
    FROM supplies s
    LEFT JOIN (
        SELECT supply_id, min(data_from) AS data_from, max(data_until) AS data_until
        FROM (
            SELECT supply_id, data_from, data_until FROM {previous}.supplies WHERE data_until IS NOT NULL
            UNION ALL
            SELECT supply_id, CAST(min(interval_end - to_seconds(interval_seconds)) AS TIMESTAMPTZ),
                   max(interval_end)
            FROM interval_readings WHERE loaded_at > ? GROUP BY supply_id
        ) GROUP BY supply_id
    ) span USING (supply_id)
    ORDER BY s.supply_id
"""


@dataclass(frozen=True)
class PublishResult:
    path: Path
    published_at: dt.datetime
    row_counts: dict[str, int]
    seconds: float
    parts_written: int = 0
    parts_reused: int = 0
    incremental: bool = False  # False: no usable previous snapshot, everything was scanned
    daily_base_rebuilt: bool = False
    daily_recent_months: int = 0


def _fsync_file(path: Path) -> None:
    with open(path, "rb") as handle:
        os.fsync(handle.fileno())


def _fsync_dir(path: Path) -> None:
    # Makes a rename or a new directory entry durable; not every platform allows opening a directory.
    try:
        descriptor = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _new_snapshot_path(snapshots_dir: Path, published_at: dt.datetime) -> Path:
    stamp = published_at.strftime("%Y%m%dT%H%M%S%fZ")
    candidate = snapshots_dir / f"rm-{stamp}.duckdb"
    suffix = 1
    while candidate.exists():
        candidate = snapshots_dir / f"rm-{stamp}-{suffix}.duckdb"
        suffix += 1
    return candidate


def _month_bounds(month: dt.date) -> tuple[dt.date, dt.date]:
    following = (month.replace(day=28) + dt.timedelta(days=4)).replace(day=1)
    return month, following


def _utc_midnight(local_date: dt.date) -> dt.datetime:
    from warehouse.rollups import local_midnight_utc

    return local_midnight_utc(local_date)


@dataclass(frozen=True)
class _Part:
    table: str
    month: dt.date
    rows: int
    fingerprint: int
    path: Path


def _month_fingerprints(
    con: duckdb.DuckDBPyConnection, table: str, months: list[dt.date] | None = None
) -> list[tuple[dt.date, int, int]]:
    """(month, rows, fingerprint) of every local month of a big table, from one aggregate scan; with `months`,
    of those months only (the scan is bounded by their time ranges, so DuckDB skips the other row groups)."""
    spec = PARTITIONED_TABLES[table]
    where, params = "", []
    if months is not None:
        if not months:
            return []
        ranges = []
        for month in months:
            ranges.append(f"({spec['range']})")
            params += _range_params(table, month)
        where = "WHERE " + " OR ".join(ranges)
    return con.execute(
        f"SELECT {spec['month_of']} AS month, count(*), bit_xor({spec['fingerprint']}) "
        f"FROM {spec['source']} {where} GROUP BY ALL ORDER BY month",
        params,
    ).fetchall()


def _range_params(table: str, month: dt.date) -> list:
    first, following = _month_bounds(month)
    return [_utc_midnight(first), _utc_midnight(following)] if table == "intervals" else [first, following]


@dataclass
class _Previous:
    """What the snapshot CURRENT names says about its own publish: the state an incremental publish starts from."""

    loaded_until: dt.datetime | None
    parts: dict[tuple[str, dt.date], tuple[int, int, Path]]  # (table, month) -> (rows, fingerprint, path)
    daily_base: Path | None
    daily_base_months: dict[dt.date, tuple[int, int]]


def _attach_previous(con: duckdb.DuckDBPyConnection, readmodel_dir: Path) -> _Previous | None:
    """Attach the current snapshot (read-only, as `_PREVIOUS`) and read its publish state; None (and nothing
    attached) when there is none or it predates incremental state, so the caller scans everything."""
    current = read_current(readmodel_dir)
    if current is None or not (readmodel_dir / current).is_file():
        return None
    con.execute(f"ATTACH ? AS {_PREVIOUS} (READ_ONLY)", [str(readmodel_dir / current)])
    try:
        tables = {row[0] for row in con.execute(
            "SELECT table_name FROM duckdb_tables() WHERE database_name = ?", [_PREVIOUS]).fetchall()}
        meta = dict(con.execute(f"SELECT key, value FROM {_PREVIOUS}.meta").fetchall()) if "meta" in tables else {}
        if (meta.get("schema_version") != SNAPSHOT_SCHEMA_VERSION or "intervals_loaded_until" not in meta
                or "published_parts" not in tables):
            con.execute(f"DETACH {_PREVIOUS}")
            return None
        previous = _Previous(
            loaded_until=dt.datetime.fromisoformat(meta["intervals_loaded_until"])
            if meta["intervals_loaded_until"] else None,
            parts={}, daily_base=None, daily_base_months={},
        )
        for table, month, rows, fingerprint, relative in con.execute(
                f"SELECT table_name, month, rows, fingerprint, path FROM {_PREVIOUS}.published_parts").fetchall():
            if table == DAILY_BASE_TABLE:
                previous.daily_base = readmodel_dir / relative
                previous.daily_base_months[month] = (rows, fingerprint)
            else:
                previous.parts[(table, month)] = (rows, fingerprint, readmodel_dir / relative)
        return previous
    except BaseException:
        con.execute(f"DETACH {_PREVIOUS}")
        raise


def _changed_interval_months(
    con: duckdb.DuckDBPyConnection, loaded_until: dt.datetime | None
) -> tuple[list[dt.date], dt.datetime | None]:
    """Local months holding intervals loaded (inserted or corrected) after `loaded_until` (all months when it is
    None), and the new mark.

    Loads stamp every row they insert or change with `loaded_at`, and rows arrive roughly in load order, so the
    bound filter lets DuckDB skip the row groups of older loads by their min/max instead of scanning history."""
    spec = PARTITIONED_TABLES["intervals"]
    where, params = ("", []) if loaded_until is None else ("WHERE loaded_at > ?", [loaded_until])
    months, newest = con.execute(
        f"SELECT list(DISTINCT {spec['month_of']}), max(loaded_at) FROM interval_readings {where}", params
    ).fetchall()[0]
    return sorted(months or []), newest if newest is not None else loaded_until


def _interval_month_fingerprints(
    con: duckdb.DuckDBPyConnection, previous: _Previous | None
) -> tuple[list[tuple[dt.date, int, int]], dt.datetime | None]:
    """(month, rows, fingerprint) of every month of `intervals`, and the loaded-until mark to record: months
    unchanged since the previous publish are taken from its state, the others are fingerprinted again."""
    if previous is None:
        loaded_until = con.execute("SELECT max(loaded_at) FROM interval_readings").fetchall()[0][0]
        return _month_fingerprints(con, "intervals"), loaded_until
    changed, loaded_until = _changed_interval_months(con, previous.loaded_until)
    known = {month: (rows, fingerprint) for (table, month), (rows, fingerprint, path) in previous.parts.items()
             if table == "intervals" and path.exists()}
    missing = [month for (table, month) in previous.parts if table == "intervals" and month not in known]
    recheck = sorted(set(changed) | set(missing))
    fresh = {month: (rows, fingerprint) for month, rows, fingerprint in _month_fingerprints(con, "intervals", recheck)}
    merged = {**{month: value for month, value in known.items() if month not in recheck}, **fresh}
    return [(month, *merged[month]) for month in sorted(merged)], loaded_until


@dataclass(frozen=True)
class _DailyLayout:
    """The supply-sorted copy of `daily` the portal looks days up in: a base file plus the recent months."""

    base: Path
    base_months: dict[dt.date, tuple[int, int]]
    recent_months: list[dt.date]
    rebuilt: bool


def _daily_layout(
    con: duckdb.DuckDBPyConnection, readmodel_dir: Path, daily_months: list[tuple[dt.date, int, int]],
    previous: _Previous | None,
) -> _DailyLayout:
    """Keep the previous base when at most `DAILY_MAX_RECENT_MONTHS` months differ from it (those go into the
    snapshot's `daily_recent`); otherwise write a new base holding every month, once."""
    current = {month: (rows, fingerprint) for month, rows, fingerprint in daily_months}
    if (previous is not None and previous.daily_base is not None and previous.daily_base.exists()
            and previous.daily_base.name.startswith(f"base-{DAILY_BASE_LAYOUT}-")):
        base_months = previous.daily_base_months
        stale = sorted({month for month in current if base_months.get(month) != current[month]}
                       | {month for month in base_months if month not in current})
        if len(stale) <= DAILY_MAX_RECENT_MONTHS:
            return _DailyLayout(previous.daily_base, base_months, stale, rebuilt=False)
    digest = hashlib.sha256(json.dumps(
        [[month.isoformat(), rows, fingerprint] for month, (rows, fingerprint) in sorted(current.items())]
    ).encode()).hexdigest()[:20]
    directory = readmodel_dir / PARTS_DIR / DAILY_BASE_TABLE
    path = directory / f"base-{DAILY_BASE_LAYOUT}-{digest}.duckdb"
    if not path.exists():
        directory.mkdir(parents=True, exist_ok=True)
        temporary = directory / f".{path.name}.{os.getpid()}.tmp"
        columns_path = day_columns_path(path)
        columns_temporary = directory / f".{columns_path.name}.{os.getpid()}.tmp"
        temporary.unlink(missing_ok=True)
        columns_temporary.unlink(missing_ok=True)  # a crashed publish's leftovers
        spec = PARTITIONED_TABLES["daily"]
        try:
            con.execute(f"ATTACH ? AS {_BASE_ALIAS}", [str(temporary)])
            try:
                con.execute(
                    f"CREATE TABLE {_BASE_ALIAS}.daily AS SELECT {spec['columns']}, {DAY_NUMBER_SQL} AS day "
                    f"FROM {spec['source']} ORDER BY {spec['order']}"
                )
                with_columns = _write_daily_spans(con) and _write_day_columns(
                    con, f"{_BASE_ALIAS}.daily", columns_temporary)
                con.execute(f"CHECKPOINT {_BASE_ALIAS}")
            finally:
                con.execute(f"DETACH {_BASE_ALIAS}")
            # The day columns go in place first: a base that exists is complete.
            if with_columns:
                _fsync_file(columns_temporary)
                os.replace(columns_temporary, columns_path)
            _fsync_file(temporary)
            os.replace(temporary, path)
            _fsync_dir(directory)
        finally:
            temporary.unlink(missing_ok=True)
            Path(f"{temporary}.wal").unlink(missing_ok=True)
            columns_temporary.unlink(missing_ok=True)
    return _DailyLayout(path, current, [], rebuilt=True)


def day_columns_path(base: Path) -> Path:
    """The flat day columns written beside a daily base."""
    return base.with_suffix(DAY_COLUMNS_SUFFIX)


def _write_daily_spans(con: duckdb.DuckDBPyConnection) -> bool:
    """`spans` of the base being written: each supply and flow's first and last rowid. The table was created
    sorted by supply and flow, so each range is contiguous; that is checked, and without it no `spans` is written
    (readers then filter by supply instead) and False is returned."""
    con.execute(
        f"CREATE TABLE {_BASE_ALIAS}.spans AS SELECT supply_id, flow, min(rowid) AS first_row, "
        f"max(rowid) AS last_row, count(*) AS rows FROM {_BASE_ALIAS}.daily GROUP BY supply_id, flow "
        "ORDER BY supply_id, flow"
    )
    broken = con.execute(
        f"SELECT count(*) FROM {_BASE_ALIAS}.spans WHERE last_row - first_row + 1 <> rows").fetchall()[0][0]
    if broken:
        log.warning("daily base: %d supply spans are not contiguous; readers will filter by supply", broken)
        con.execute(f"DROP TABLE {_BASE_ALIAS}.spans")
        return False
    return True


def _write_day_columns(con: duckdb.DuckDBPyConnection, table: str, path: Path) -> bool:
    """`table`'s rows (a base's `daily` or a snapshot's `daily_recent`, sorted by supply, flow and day) as flat
    arrays readers map and slice without a query (readmodel.day_columns has the layout): a supply's days from
    DuckDB cost about a millisecond, the busiest call's largest part. Written to `path` and True, unless some
    supply's rows are not contiguous in rowid order or not in increasing day order (then nothing is left at
    `path` and readers query the table)."""
    keys = con.execute(
        f"SELECT supply_id || chr(31) || flow, min(rowid), max(rowid), count(*) FROM {table} "
        "GROUP BY supply_id, flow ORDER BY 2").fetchall()
    rows = sum(count for *_, count in keys)
    if any(last - first + 1 != count or count >= 1 << 24 or "\n" in key for key, first, last, count in keys):
        log.warning("%s: a supply's rows are not contiguous (or too many, or its id holds a newline); no day "
                    "columns, readers will query it", table)
        return False
    key_starts = np.array([first for _, first, _, _ in keys], dtype=np.int64)
    text = "\n".join(key for key, *_ in keys).encode("utf-8")
    offsets, offset = {}, DAY_COLUMNS_HEADER_BYTES
    for name, _, dtype in DAY_COLUMNS:
        offsets[name] = offset
        offset += rows * np.dtype(dtype).itemsize
    columns_end = -(-offset // 8) * 8
    select = ", ".join(f"{sql} AS {name}" for name, sql, _ in DAY_COLUMNS)
    previous_day = None
    with open(path, "wb") as out:
        out.write(DAY_COLUMNS_MAGIC + b"".join(value.to_bytes(8, "little") for value in (rows, len(keys), len(text))))
        out.truncate(columns_end)
        for start in range(0, rows, _DAY_COLUMNS_CHUNK_ROWS):
            chunk = con.execute(
                f"SELECT {select} FROM {table} WHERE rowid >= ? AND rowid < ? ORDER BY rowid",
                [start, start + _DAY_COLUMNS_CHUNK_ROWS],
            ).fetchnumpy()
            days = np.asarray(chunk["day"], dtype=np.int64)
            if len(days) != min(_DAY_COLUMNS_CHUNK_ROWS, rows - start):
                break  # rowids not 0 .. rows - 1
            if previous_day is not None:
                days = np.concatenate(([previous_day], days))
            # A day not after the one before is only allowed where a supply's rows start.
            steps_back = np.flatnonzero(np.diff(days) <= 0) + start + (1 if previous_day is None else 0)
            if not np.isin(steps_back, key_starts).all():
                break
            previous_day = days[-1]
            for name, _, dtype in DAY_COLUMNS:
                values = np.asarray(chunk[name], dtype=dtype)
                out.seek(offsets[name] + start * values.itemsize)
                out.write(values.tobytes())
        else:
            out.seek(columns_end)
            out.write(np.array([first << DAY_SPAN_ROWS_BITS | count for _, first, _, count in keys],
                               dtype="<i8").tobytes())
            out.write(text)
            return True
    log.warning("%s: a supply's rows are not in increasing day order; no day columns, readers will query it", table)
    path.unlink()
    return False


def _write_parts(
    con: duckdb.DuckDBPyConnection, readmodel_dir: Path, fingerprints: dict[str, list[tuple[dt.date, int, int]]]
) -> tuple[list[_Part], int]:
    """Make sure every month of every big table has its Parquet file; return the parts and how many were
    written now (the rest already existed with the same fingerprint)."""
    parts, written = [], 0
    for table, spec in PARTITIONED_TABLES.items():
        for month, rows, fingerprint in fingerprints[table]:
            directory = readmodel_dir / PARTS_DIR / table / f"month={month:%Y-%m}"
            path = directory / f"{rows}-{fingerprint:016x}.parquet"
            if not path.exists():
                directory.mkdir(parents=True, exist_ok=True)
                temporary = directory / f".{path.name}.{os.getpid()}.tmp"
                con.execute(
                    f"COPY (SELECT {spec['columns']} FROM {spec['source']} WHERE {spec['range']} "
                    f"ORDER BY {spec['order']}) TO '{_sql_path(temporary)}' "
                    "(FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE 61440)",
                    _range_params(table, month),
                )
                _fsync_file(temporary)
                os.replace(temporary, path)
                written += 1
            parts.append(_Part(table, month, rows, fingerprint, path))
    return parts, written


def _sql_path(path: Path) -> str:
    # COPY ... TO and read_parquet in a view take a literal path; ours are built from stamps and digits only,
    # quoted defensively all the same.
    return str(path.resolve()).replace("'", "''")


def _table_exists(con: duckdb.DuckDBPyConnection, table: str) -> bool:
    return bool(con.execute(
        "SELECT 1 FROM duckdb_tables() WHERE database_name = current_database() AND schema_name = 'main' "
        "AND table_name = ?", [table]).fetchall())


def _write_snapshot(
    con: duckdb.DuckDBPyConnection, snapshot_path: Path, published_at: dt.datetime, parts: list[_Part],
    readmodel_dir: Path, layout: _DailyLayout, loaded_until: dt.datetime | None, previous: _Previous | None,
    recent_columns: Path | None = None,
) -> dict[str, int]:
    small_tables = {
        table: sql for table, sql in SNAPSHOT_TABLES.items() if table not in OPTIONAL_TABLES or _table_exists(con, table)
    }
    small_params: dict[str, list] = {}
    if previous is not None and previous.loaded_until is not None:
        # Spans only grow (intervals are never deleted): the previous spans widened by what was loaded since.
        small_tables["supplies"] = SUPPLIES_SINCE_SQL.format(previous=_PREVIOUS)
        small_params["supplies"] = [previous.loaded_until]
    relative = {part.path: str(part.path.relative_to(readmodel_dir)) for part in parts}
    base_relative = str(layout.base.relative_to(readmodel_dir))
    # Row groups of 8,192 rows: readers look one supply up in sorted tables, and DuckDB skips whole row groups by
    # their min/max, so smaller groups mean less to scan (the default 122,880 holds a whole `supplies` table).
    con.execute(f"ATTACH ? AS {_ALIAS} (ROW_GROUP_SIZE {SNAPSHOT_ROW_GROUP_SIZE})", [str(snapshot_path)])
    try:
        row_counts: dict[str, int] = {}
        con.begin()
        try:
            con.execute(f"CREATE TABLE {_ALIAS}.meta (key VARCHAR, value VARCHAR)")
            con.execute(
                f"INSERT INTO {_ALIAS}.meta VALUES ('published_at', ?), ('schema_version', ?), "
                "('intervals_loaded_until', ?), ('daily_base', ?), ('daily_recent_months', ?)",
                [published_at.isoformat().replace("+00:00", "Z"), SNAPSHOT_SCHEMA_VERSION,
                 "" if loaded_until is None else loaded_until.isoformat(), base_relative,
                 json.dumps([month.isoformat() for month in layout.recent_months])],
            )
            for table, select_sql in small_tables.items():
                con.execute(f"CREATE TABLE {_ALIAS}.{table} AS {select_sql}", small_params.get(table, []))
                row_counts[table] = con.execute(f"SELECT count(*) FROM {_ALIAS}.{table}").fetchall()[0][0]
            for table, spec in PARTITIONED_TABLES.items():
                files = [part.path for part in parts if part.table == table]
                if files:
                    listed = ", ".join(f"'{_sql_path(path)}'" for path in files)
                    con.execute(
                        f"CREATE VIEW {_ALIAS}.{table} AS "
                        f"SELECT * FROM read_parquet([{listed}], hive_partitioning = false)"
                    )
                else:
                    con.execute(
                        f"CREATE TABLE {_ALIAS}.{table} AS SELECT {spec['columns']} FROM {spec['source']} LIMIT 0"
                    )
                row_counts[table] = sum(part.rows for part in parts if part.table == table)
            daily = PARTITIONED_TABLES["daily"]
            recent_where = " OR ".join(f"({daily['range']})" for _ in layout.recent_months) or "false"
            con.execute(
                f"CREATE TABLE {_ALIAS}.daily_recent AS SELECT {daily['columns']}, {DAY_NUMBER_SQL} AS day "
                f"FROM {daily['source']} "
                f"WHERE {recent_where} ORDER BY {daily['order']}",
                [value for month in layout.recent_months for value in _range_params("daily", month)],
            )
            con.execute(
                f"CREATE TABLE {_ALIAS}.published_parts (table_name VARCHAR, month DATE, rows BIGINT, "
                "fingerprint UBIGINT, path VARCHAR)"
            )
            state = [(part.table, part.month, part.rows, part.fingerprint, relative[part.path]) for part in parts]
            state += [(DAILY_BASE_TABLE, month, rows, fingerprint, base_relative)
                      for month, (rows, fingerprint) in sorted(layout.base_months.items())]
            if state:
                con.executemany(f"INSERT INTO {_ALIAS}.published_parts VALUES (?, ?, ?, ?, ?)", state)
            con.commit()
        except BaseException:
            con.rollback()
            raise
        # After the commit: rows a transaction has not committed yet have no final rowids.
        if recent_columns is not None:
            recent_columns.parent.mkdir(parents=True, exist_ok=True)
            temporary = recent_columns.with_name(f".{recent_columns.name}.{os.getpid()}.tmp")
            try:
                if _write_day_columns(con, f"{_ALIAS}.daily_recent", temporary):
                    _fsync_file(temporary)
                    os.replace(temporary, recent_columns)
                    con.execute(f"INSERT INTO {_ALIAS}.meta VALUES ('daily_recent_columns', ?)",
                                [str(recent_columns.relative_to(readmodel_dir))])
            finally:
                temporary.unlink(missing_ok=True)
        con.execute(f"CHECKPOINT {_ALIAS}")
    finally:
        con.execute(f"DETACH {_ALIAS}")
    return {table: row_counts[table] for table in [*small_tables, *PARTITIONED_TABLES] if table in row_counts}


def _point_current_to(readmodel_dir: Path, snapshot_relative: str) -> None:
    current = readmodel_dir / CURRENT_FILE
    temporary = readmodel_dir / f".{CURRENT_FILE}.{os.getpid()}.tmp"
    with open(temporary, "w", encoding="utf-8") as handle:
        handle.write(snapshot_relative + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, current)
    _fsync_dir(readmodel_dir)


def clean_old_snapshots(
    readmodel_dir: Path, keep: int = 3, min_age_seconds: float = 600, now: float | None = None
) -> list[Path]:
    """Delete snapshots that are both outside the `keep` newest and older than `min_age_seconds` (a reader may
    still hold a recent one). The snapshot CURRENT points to is never deleted. Returns the deleted paths."""
    snapshots_dir = readmodel_dir / SNAPSHOTS_DIR
    if not snapshots_dir.is_dir():
        return []
    now = time.time() if now is None else now
    current_name = read_current(readmodel_dir)
    # Names embed the UTC stamp, so name order is publish order.
    snapshots = sorted(snapshots_dir.glob("rm-*.duckdb"), key=lambda path: path.name, reverse=True)
    deleted = []
    for snapshot in snapshots[keep:]:
        if current_name is not None and snapshot.name == Path(current_name).name:
            continue
        try:
            if now - snapshot.stat().st_mtime < min_age_seconds:
                continue
            snapshot.unlink()
        except FileNotFoundError:
            continue
        Path(str(snapshot) + ".wal").unlink(missing_ok=True)
        (readmodel_dir / PARTS_DIR / MANIFESTS_DIR / f"{snapshot.stem}.json").unlink(missing_ok=True)
        deleted.append(snapshot)
    if deleted:
        log.info("Deleted %d old read-model snapshots", len(deleted))
    _clean_unreferenced_parts(readmodel_dir, now, min_age_seconds)
    return deleted


def _clean_unreferenced_parts(readmodel_dir: Path, now: float, min_age_seconds: float) -> None:
    """Delete month files, daily bases (with their day columns) and snapshots' recent day columns that no
    remaining snapshot's manifest names (and that are not brand new: a publish in progress may have just written
    one)."""
    parts_dir = readmodel_dir / PARTS_DIR
    manifests_dir = parts_dir / MANIFESTS_DIR
    if not manifests_dir.is_dir():
        return
    remaining = {path.name for path in (readmodel_dir / SNAPSHOTS_DIR).glob("rm-*.duckdb")}
    referenced: set[str] = set()
    for manifest in manifests_dir.glob("rm-*.json"):
        if f"{manifest.stem}.duckdb" not in remaining:
            continue
        try:
            referenced.update(json.loads(manifest.read_text()))
        except (OSError, ValueError):
            return  # an unreadable manifest: keep everything rather than delete what a reader may need
    bases, recent = parts_dir / DAILY_BASE_TABLE, parts_dir / DAILY_RECENT_COLUMNS_DIR
    candidates = [*parts_dir.glob("*/month=*/*.parquet"), *bases.glob("*.duckdb"),
                  *bases.glob(f"*{DAY_COLUMNS_SUFFIX}"), *recent.glob(f"*{DAY_COLUMNS_SUFFIX}")]
    for part in candidates:
        # a base's day columns go with the base
        owner = part.with_suffix(".duckdb") if part.parent == bases and part.suffix == DAY_COLUMNS_SUFFIX else part
        if str(owner.relative_to(readmodel_dir)) in referenced:
            continue
        try:
            if now - part.stat().st_mtime >= min_age_seconds:
                part.unlink()
        except FileNotFoundError:
            continue


def read_current(readmodel_dir: Path) -> str | None:
    """Relative path of the current snapshot (`snapshots/rm-....duckdb`), or None before the first publish."""
    try:
        return (readmodel_dir / CURRENT_FILE).read_text(encoding="utf-8").strip() or None
    except FileNotFoundError:
        return None


def publish_read_model(con: duckdb.DuckDBPyConnection, readmodel_dir: Path) -> PublishResult:
    """Write a new read-model snapshot from the warehouse, point CURRENT at it and clean old snapshots.

    With a current snapshot in `readmodel_dir`, only what changed since it is scanned (see the module doc);
    without one (a first publish, or a new directory) everything is."""
    started = time.monotonic()
    readmodel_dir = Path(readmodel_dir)
    snapshots_dir = readmodel_dir / SNAPSHOTS_DIR
    snapshots_dir.mkdir(parents=True, exist_ok=True)
    published_at = dt.datetime.now(dt.timezone.utc)
    snapshot_path = _new_snapshot_path(snapshots_dir, published_at)
    con.execute("SET enable_progress_bar = false")  # a run's log is no terminal
    previous = _attach_previous(con, readmodel_dir)
    try:
        interval_months, loaded_until = _interval_month_fingerprints(con, previous)
        daily_months = _month_fingerprints(con, "daily")
        parts, written = _write_parts(con, readmodel_dir, {"intervals": interval_months, "daily": daily_months})
        layout = _daily_layout(con, readmodel_dir, daily_months, previous)
        manifest = readmodel_dir / PARTS_DIR / MANIFESTS_DIR / f"{snapshot_path.stem}.json"
        manifest.parent.mkdir(parents=True, exist_ok=True)
        listed = {str(part.path.relative_to(readmodel_dir)) for part in parts}
        listed.add(str(layout.base.relative_to(readmodel_dir)))
        recent_columns = (readmodel_dir / PARTS_DIR / DAILY_RECENT_COLUMNS_DIR
                          / f"{snapshot_path.stem}{DAY_COLUMNS_SUFFIX}") if layout.recent_months else None
        if recent_columns is not None:
            listed.add(str(recent_columns.relative_to(readmodel_dir)))
        manifest.write_text(json.dumps(sorted(listed)))
        try:
            row_counts = _write_snapshot(con, snapshot_path, published_at, parts, readmodel_dir, layout,
                                         loaded_until, previous, recent_columns)
            _fsync_file(snapshot_path)
            _fsync_dir(snapshots_dir)
        except BaseException:
            snapshot_path.unlink(missing_ok=True)
            Path(str(snapshot_path) + ".wal").unlink(missing_ok=True)
            manifest.unlink(missing_ok=True)
            if recent_columns is not None:
                recent_columns.unlink(missing_ok=True)
            raise
    finally:
        if previous is not None:
            con.execute(f"DETACH {_PREVIOUS}")
    snapshot_relative = f"{SNAPSHOTS_DIR}/{snapshot_path.name}"
    _point_current_to(readmodel_dir, snapshot_relative)
    seconds = time.monotonic() - started
    con.execute(
        "INSERT INTO publish_log (published_at, snapshot_path, row_counts, seconds) VALUES (?, ?, ?, ?)",
        [published_at, snapshot_relative, json.dumps(row_counts, sort_keys=True), seconds],
    )
    clean_old_snapshots(readmodel_dir)
    log.info("Published read model %s in %.2f s (%s; %d month files written, %d reused; daily base %s, %d recent "
             "months): %s", snapshot_relative, seconds, "incremental" if previous else "full scan", written,
             len(parts) - written, "rewritten" if layout.rebuilt else "kept", len(layout.recent_months), row_counts)
    return PublishResult(path=snapshot_path, published_at=published_at, row_counts=row_counts, seconds=seconds,
                         parts_written=written, parts_reused=len(parts) - written, incremental=previous is not None,
                         daily_base_rebuilt=layout.rebuilt, daily_recent_months=len(layout.recent_months))
