"""What the passthrough must remember across requests and gunicorn workers, in `AMI_DATA_DIR/passthrough.sqlite`
(WAL mode, one connection per thread, opened lazily after the fork):

- `meter_reads`: on-demand reads (state pending/done/failed, value, time read). Also the per-supply rate limit:
  a new read is reserved in a `BEGIN IMMEDIATE` transaction only if the supply has none in the window, so two
  workers cannot both let a request through.
- `balances`: the last balance billing gave per supply and when it was read: the stale fallback."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

SCHEMA = """
CREATE TABLE IF NOT EXISTS meter_reads(
    read_id TEXT PRIMARY KEY, supply_id TEXT NOT NULL, usage_point_mrid TEXT NOT NULL, meter_mrid TEXT NOT NULL,
    correlation_id TEXT NOT NULL, requested_at REAL NOT NULL, state TEXT NOT NULL, value_kwh REAL,
    read_at TEXT, message_key TEXT, inbox_file TEXT, updated_at REAL NOT NULL);
CREATE INDEX IF NOT EXISTS meter_reads_by_supply ON meter_reads(supply_id, requested_at);
CREATE TABLE IF NOT EXISTS balances(
    supply_id TEXT PRIMARY KEY, amount_due_clp INTEGER NOT NULL, due_date TEXT, payment_status TEXT NOT NULL,
    read_at REAL NOT NULL);
"""
READ_COLUMNS = ("read_id", "supply_id", "usage_point_mrid", "meter_mrid", "correlation_id", "requested_at", "state",
                "value_kwh", "read_at", "message_key", "inbox_file", "updated_at")


class LiveStore:
    def __init__(self, path: Path):
        self.path = Path(path)
        self._local = threading.local()

    def _connection(self) -> sqlite3.Connection:
        connection = getattr(self._local, "connection", None)
        if connection is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            connection = sqlite3.connect(self.path, timeout=5.0, isolation_level=None)
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("PRAGMA busy_timeout=5000")
            connection.executescript(SCHEMA)
            self._local.connection = connection
        return connection

    def initialize(self) -> None:
        self._connection()

    # --- on-demand reads ------------------------------------------------------------------------------------

    def reserve_read(self, *, read_id: str, supply_id: str, usage_point_mrid: str, meter_mrid: str,
                     correlation_id: str, window_s: float, now: float | None = None) -> float:
        """Reserve a pending read unless the supply had one in the last `window_s` seconds. Returns 0 when
        reserved, else the seconds until the next read is allowed."""
        now = time.time() if now is None else now
        connection = self._connection()
        connection.execute("BEGIN IMMEDIATE")
        try:
            (latest,) = connection.execute(
                "SELECT MAX(requested_at) FROM meter_reads WHERE supply_id = ?", [supply_id]).fetchone()
            if latest is not None and now - latest < window_s:
                connection.execute("ROLLBACK")
                return max(1.0, window_s - (now - latest))
            connection.execute(
                "INSERT INTO meter_reads(read_id, supply_id, usage_point_mrid, meter_mrid, correlation_id, "
                "requested_at, state, updated_at) VALUES (?, ?, ?, ?, ?, ?, 'pending', ?)",
                [read_id, supply_id, usage_point_mrid, meter_mrid, correlation_id, now, now])
            connection.execute("COMMIT")
            return 0.0
        except BaseException:
            connection.execute("ROLLBACK")
            raise

    def drop_read(self, read_id: str) -> None:
        """Forget a reservation whose request never reached the head-end (it does not count for the limit)."""
        self._connection().execute("DELETE FROM meter_reads WHERE read_id = ? AND state = 'pending'", [read_id])

    def get_read(self, supply_id: str, read_id: str) -> dict | None:
        row = self._connection().execute(
            f"SELECT {', '.join(READ_COLUMNS)} FROM meter_reads WHERE read_id = ? AND supply_id = ?",
            [read_id, supply_id]).fetchone()
        return dict(zip(READ_COLUMNS, row)) if row else None

    def finish_read(self, read_id: str, state: str, message_key: str, value_kwh: float | None = None,
                    read_at: str | None = None) -> bool:
        """Move a pending read to done/failed. True for the one caller that made the change (only it writes the
        inbox file), False when another worker finished it first."""
        cursor = self._connection().execute(
            "UPDATE meter_reads SET state = ?, message_key = ?, value_kwh = ?, read_at = ?, updated_at = ? "
            "WHERE read_id = ? AND state = 'pending'", [state, message_key, value_kwh, read_at, time.time(), read_id])
        return cursor.rowcount == 1

    def set_inbox_file(self, read_id: str, name: str) -> None:
        self._connection().execute("UPDATE meter_reads SET inbox_file = ? WHERE read_id = ?", [name, read_id])

    # --- balances -------------------------------------------------------------------------------------------

    def save_balance(self, supply_id: str, amount_due_clp: int, due_date: str | None, payment_status: str,
                     read_at: float) -> None:
        self._connection().execute(
            "INSERT INTO balances(supply_id, amount_due_clp, due_date, payment_status, read_at) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT(supply_id) DO UPDATE SET amount_due_clp = excluded.amount_due_clp, "
            "due_date = excluded.due_date, payment_status = excluded.payment_status, read_at = excluded.read_at "
            "WHERE excluded.read_at >= balances.read_at",
            [supply_id, int(amount_due_clp), due_date, payment_status, read_at])

    def last_balance(self, supply_id: str) -> dict | None:
        row = self._connection().execute(
            "SELECT amount_due_clp, due_date, payment_status, read_at FROM balances WHERE supply_id = ?",
            [supply_id]).fetchone()
        if row is None:
            return None
        return {"amount_due_clp": int(row[0]), "due_date": row[1], "payment_status": row[2], "read_at": row[3]}
