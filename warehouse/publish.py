"""Publish of the read-model snapshot the portal reads (contract: docs/architecture.md, "Read-model snapshot").

The portal never opens the warehouse (DuckDB locks a file against other processes). Each publish writes a NEW
DuckDB file `snapshots/rm-<UTC stamp>.duckdb` from the open warehouse connection, flushes it to disk, then
atomically replaces the `CURRENT` pointer file with its relative path. Readers holding an older snapshot keep
reading it; old snapshots are deleted only when they are neither among the newest few nor recent.

Cost proportional to change: the two big tables (`intervals`, `daily`) are not copied into each snapshot. They
are kept as one immutable Parquet file per local month under `parts/<table>/month=YYYY-MM/<fingerprint>.parquet`
(Hive-style, sorted by supply, flow and time), and each snapshot holds a VIEW over the files of its months. The
fingerprint is an order-independent hash of the month's rows, computed from the warehouse in one aggregate
scan; a month whose fingerprint already has a file is reused as is, so a publish after a one-day increment
writes the running month's files and the small tables only. A late correction in a closed month changes that
month's fingerprint and rewrites that month alone. Part files are deleted once no remaining snapshot names them
(each snapshot's list is `parts/manifests/<snapshot>.json`).

Small tables (meta, customers, supplies, monthly, bills, bill_lines, tariffs) are copied into the snapshot.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

import duckdb

log = logging.getLogger(__name__)

SNAPSHOT_SCHEMA_VERSION = "1"
SNAPSHOTS_DIR = "snapshots"
CURRENT_FILE = "CURRENT"
_ALIAS = "read_model_snapshot"

PARTS_DIR = "parts"
MANIFESTS_DIR = "manifests"

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


@dataclass(frozen=True)
class PublishResult:
    path: Path
    published_at: dt.datetime
    row_counts: dict[str, int]
    seconds: float
    parts_written: int = 0
    parts_reused: int = 0


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
    path: Path


def _month_fingerprints(con: duckdb.DuckDBPyConnection, table: str) -> list[tuple[dt.date, int, int]]:
    """(month, rows, fingerprint) of every local month of a big table, from one aggregate scan."""
    spec = PARTITIONED_TABLES[table]
    return con.execute(
        f"SELECT {spec['month_of']} AS month, count(*), bit_xor({spec['fingerprint']}) "
        f"FROM {spec['source']} GROUP BY ALL ORDER BY month"
    ).fetchall()


def _write_parts(con: duckdb.DuckDBPyConnection, readmodel_dir: Path) -> tuple[list[_Part], int]:
    """Make sure every month of every big table has its Parquet file; return the parts and how many were
    written now (the rest already existed with the same fingerprint)."""
    parts, written = [], 0
    for table, spec in PARTITIONED_TABLES.items():
        for month, rows, fingerprint in _month_fingerprints(con, table):
            directory = readmodel_dir / PARTS_DIR / table / f"month={month:%Y-%m}"
            path = directory / f"{rows}-{fingerprint:016x}.parquet"
            if not path.exists():
                directory.mkdir(parents=True, exist_ok=True)
                first, following = _month_bounds(month)
                bounds = (
                    [_utc_midnight(first), _utc_midnight(following)] if table == "intervals" else [first, following]
                )
                temporary = directory / f".{path.name}.{os.getpid()}.tmp"
                con.execute(
                    f"COPY (SELECT {spec['columns']} FROM {spec['source']} WHERE {spec['range']} "
                    f"ORDER BY {spec['order']}) TO '{_sql_path(temporary)}' "
                    "(FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE 61440)",
                    bounds,
                )
                _fsync_file(temporary)
                os.replace(temporary, path)
                written += 1
            parts.append(_Part(table, month, rows, path))
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
    con: duckdb.DuckDBPyConnection, snapshot_path: Path, published_at: dt.datetime, parts: list[_Part]
) -> dict[str, int]:
    small_tables = {
        table: sql for table, sql in SNAPSHOT_TABLES.items() if table not in OPTIONAL_TABLES or _table_exists(con, table)
    }
    con.execute("ATTACH ? AS " + _ALIAS, [str(snapshot_path)])
    try:
        row_counts: dict[str, int] = {}
        con.begin()
        try:
            con.execute(f"CREATE TABLE {_ALIAS}.meta (key VARCHAR, value VARCHAR)")
            con.execute(
                f"INSERT INTO {_ALIAS}.meta VALUES ('published_at', ?), ('schema_version', ?)",
                [published_at.isoformat().replace("+00:00", "Z"), SNAPSHOT_SCHEMA_VERSION],
            )
            for table, select_sql in small_tables.items():
                con.execute(f"CREATE TABLE {_ALIAS}.{table} AS {select_sql}")
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
            con.commit()
        except BaseException:
            con.rollback()
            raise
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
    """Delete month files that no remaining snapshot's manifest names (and that are not brand new: a publish in
    progress may have just written one)."""
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
    for part in parts_dir.glob("*/month=*/*.parquet"):
        if str(part.relative_to(readmodel_dir)) in referenced:
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
    """Write a new read-model snapshot from the warehouse, point CURRENT at it and clean old snapshots."""
    started = time.monotonic()
    readmodel_dir = Path(readmodel_dir)
    snapshots_dir = readmodel_dir / SNAPSHOTS_DIR
    snapshots_dir.mkdir(parents=True, exist_ok=True)
    published_at = dt.datetime.now(dt.timezone.utc)
    snapshot_path = _new_snapshot_path(snapshots_dir, published_at)
    con.execute("SET enable_progress_bar = false")  # a run's log is no terminal
    parts, written = _write_parts(con, readmodel_dir)
    manifest = readmodel_dir / PARTS_DIR / MANIFESTS_DIR / f"{snapshot_path.stem}.json"
    manifest.parent.mkdir(parents=True, exist_ok=True)
    manifest.write_text(json.dumps(sorted(str(part.path.relative_to(readmodel_dir)) for part in parts)))
    try:
        row_counts = _write_snapshot(con, snapshot_path, published_at, parts)
        _fsync_file(snapshot_path)
        _fsync_dir(snapshots_dir)
    except BaseException:
        snapshot_path.unlink(missing_ok=True)
        Path(str(snapshot_path) + ".wal").unlink(missing_ok=True)
        manifest.unlink(missing_ok=True)
        raise
    snapshot_relative = f"{SNAPSHOTS_DIR}/{snapshot_path.name}"
    _point_current_to(readmodel_dir, snapshot_relative)
    seconds = time.monotonic() - started
    con.execute(
        "INSERT INTO publish_log (published_at, snapshot_path, row_counts, seconds) VALUES (?, ?, ?, ?)",
        [published_at, snapshot_relative, json.dumps(row_counts, sort_keys=True), seconds],
    )
    clean_old_snapshots(readmodel_dir)
    log.info("Published read model %s in %.2f s (%d month files written, %d reused): %s",
             snapshot_relative, seconds, written, len(parts) - written, row_counts)
    return PublishResult(path=snapshot_path, published_at=published_at, row_counts=row_counts, seconds=seconds,
                         parts_written=written, parts_reused=len(parts) - written)
