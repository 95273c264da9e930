"""Opening the warehouse DuckDB file: waits for the file lock, pins the session time zone, applies migrations.

DuckDB lets one process hold a database file read-write and makes every other process (reader or writer) fail to
open it. Dagster steps run in separate processes, so a connect retries with backoff until the holder lets go.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import duckdb

from warehouse.schema import apply_migrations

log = logging.getLogger(__name__)

_FIRST_BACKOFF_SECONDS = 0.05
_MAX_BACKOFF_SECONDS = 1.0


class WarehouseLockTimeout(TimeoutError):
    """Another process kept the warehouse file locked longer than the caller was willing to wait."""


def _is_lock_conflict(error: duckdb.Error) -> bool:
    return isinstance(error, duckdb.IOException) and "lock" in str(error).lower()


def connect(
    path: str | Path, read_only: bool = False, wait_seconds: float = 60
) -> duckdb.DuckDBPyConnection:
    """Open the warehouse at `path`, retrying while another process holds its lock.

    The session time zone is UTC so TIMESTAMPTZ values print and cast in UTC regardless of the host. A read-write
    connection brings the schema up to date; a read-only one leaves the file untouched.
    """
    path = Path(path)
    if not read_only:
        path.parent.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + wait_seconds
    backoff = _FIRST_BACKOFF_SECONDS
    while True:
        try:
            con = duckdb.connect(str(path), read_only=read_only)
            break
        except duckdb.Error as error:
            if not _is_lock_conflict(error):
                raise
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise WarehouseLockTimeout(
                    f"Warehouse {path} stayed locked by another process for {wait_seconds} s; "
                    f"retry later or stop the process holding it ({error})"
                ) from error
            log.debug("Warehouse %s is locked by another process; retrying in %.2f s", path, backoff)
            time.sleep(min(backoff, remaining))
            backoff = min(backoff * 2, _MAX_BACKOFF_SECONDS)
    try:
        con.execute("SET TimeZone = 'UTC'")
        if not read_only:
            applied = apply_migrations(con)
            if applied:
                log.info("Warehouse %s migrated to versions %s", path, applied)
    except Exception:
        con.close()
        raise
    return con
