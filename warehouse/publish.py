"""Publish of the read-model snapshot the portal reads (contract: docs/architecture.md, "Read-model snapshot").

The portal never opens the warehouse (DuckDB locks a file against other processes). Each publish writes a NEW
DuckDB file `snapshots/rm-<UTC stamp>.duckdb` from the open warehouse connection, flushes it to disk, then
atomically replaces the `CURRENT` pointer file with its relative path. Readers holding an older snapshot keep
reading it; old snapshots are deleted only when they are neither among the newest few nor recent.

Each snapshot table is one SELECT in SNAPSHOT_TABLES, so a later incremental publish can change them one by one.
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
    "intervals": """
        SELECT supply_id, flow, interval_end, interval_seconds, CAST(kwh AS DOUBLE) AS kwh, quality
        FROM interval_readings
        ORDER BY supply_id, flow, interval_end
    """,
    "daily": """
        SELECT supply_id, flow, local_date, CAST(kwh AS DOUBLE) AS kwh, intervals, expected_intervals, quality
        FROM daily_consumption
        ORDER BY supply_id, flow, local_date
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
}


@dataclass(frozen=True)
class PublishResult:
    path: Path
    published_at: dt.datetime
    row_counts: dict[str, int]
    seconds: float


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


def _write_snapshot(
    con: duckdb.DuckDBPyConnection, snapshot_path: Path, published_at: dt.datetime
) -> dict[str, int]:
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
            for table, select_sql in SNAPSHOT_TABLES.items():
                con.execute(f"CREATE TABLE {_ALIAS}.{table} AS {select_sql}")
                row_counts[table] = con.execute(f"SELECT count(*) FROM {_ALIAS}.{table}").fetchall()[0][0]
            con.commit()
        except BaseException:
            con.rollback()
            raise
        con.execute(f"CHECKPOINT {_ALIAS}")
    finally:
        con.execute(f"DETACH {_ALIAS}")
    return row_counts


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
        deleted.append(snapshot)
    if deleted:
        log.info("Deleted %d old read-model snapshots", len(deleted))
    return deleted


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
    try:
        row_counts = _write_snapshot(con, snapshot_path, published_at)
        _fsync_file(snapshot_path)
        _fsync_dir(snapshots_dir)
    except BaseException:
        snapshot_path.unlink(missing_ok=True)
        Path(str(snapshot_path) + ".wal").unlink(missing_ok=True)
        raise
    snapshot_relative = f"{SNAPSHOTS_DIR}/{snapshot_path.name}"
    _point_current_to(readmodel_dir, snapshot_relative)
    seconds = time.monotonic() - started
    con.execute(
        "INSERT INTO publish_log (published_at, snapshot_path, row_counts, seconds) VALUES (?, ?, ?, ?)",
        [published_at, snapshot_relative, json.dumps(row_counts, sort_keys=True), seconds],
    )
    clean_old_snapshots(readmodel_dir)
    log.info("Published read model %s in %.2f s: %s", snapshot_relative, seconds, row_counts)
    return PublishResult(path=snapshot_path, published_at=published_at, row_counts=row_counts, seconds=seconds)
