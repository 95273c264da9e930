"""Opening the current read-model snapshot: one read-only DuckDB connection per thread, switching on publish.

The publisher writes `snapshots/rm-<stamp>.duckdb` and then atomically replaces `CURRENT` with its name. Readers
stat `CURRENT` at most once per `recheck_seconds` (shared across threads), and each thread reopens its own
connection when the name changes. A DuckDB connection is never shared across threads; a thread closes its old
connection before opening the new one, so a snapshot stays open only while some thread still has work on it.
A snapshot that names a supply-sorted daily base file (meta `daily_base`) gets it attached as `daily_base`.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path

import duckdb

log = logging.getLogger(__name__)


class ReadModelUnavailable(RuntimeError):
    """No snapshot has been published yet, or the current one cannot be opened."""


class SnapshotConnections:
    """Per-thread read-only connections to whatever snapshot `CURRENT` names."""

    def __init__(self, readmodel_dir: Path, recheck_seconds: float = 1.0):
        self.readmodel_dir = Path(readmodel_dir)
        self.recheck_seconds = recheck_seconds
        self._pointer_lock = threading.Lock()
        self._checked_at = float("-inf")
        self._pointer_stat: tuple[int, int, int] | None = None
        self._snapshot_path: Path | None = None
        self._local = threading.local()

    @property
    def pointer_path(self) -> Path:
        return self.readmodel_dir / "CURRENT"

    def current_snapshot_path(self) -> Path:
        """The snapshot file `CURRENT` names, re-read when `CURRENT` changed (checked at most every ~1 s)."""
        now = time.monotonic()
        with self._pointer_lock:
            if self._snapshot_path is None or now - self._checked_at >= self.recheck_seconds:
                self._checked_at = now
                self._refresh_pointer()
            if self._snapshot_path is None:
                raise ReadModelUnavailable(f"no read-model snapshot published yet in {self.readmodel_dir}")
            return self._snapshot_path

    def _refresh_pointer(self) -> None:
        try:
            stat = self.pointer_path.stat()
        except FileNotFoundError:
            self._pointer_stat = None
            self._snapshot_path = None
            return
        # os.replace gives CURRENT a new inode, so (inode, mtime, size) changes on every publish.
        pointer_stat = (stat.st_ino, stat.st_mtime_ns, stat.st_size)
        if pointer_stat == self._pointer_stat and self._snapshot_path is not None:
            return
        name = self.pointer_path.read_text(encoding="utf-8").strip()
        if not name:
            raise ReadModelUnavailable(f"{self.pointer_path} is empty")
        snapshot_path = (self.readmodel_dir / name).resolve()
        if not snapshot_path.is_relative_to(self.readmodel_dir.resolve()):
            raise ReadModelUnavailable(f"{self.pointer_path} points outside {self.readmodel_dir}: {name!r}")
        self._pointer_stat = pointer_stat
        if snapshot_path != self._snapshot_path:
            log.info("read model now serving snapshot %s", snapshot_path.name)
        self._snapshot_path = snapshot_path

    def connection(self) -> duckdb.DuckDBPyConnection:
        """This thread's connection to the current snapshot (opened lazily, reopened after a publish)."""
        snapshot_path = self.current_snapshot_path()
        held_path = getattr(self._local, "snapshot_path", None)
        held_connection = getattr(self._local, "connection", None)
        # A connection inherited through fork() belongs to the parent process; never reuse it.
        held_in_this_process = getattr(self._local, "pid", None) == os.getpid()
        if held_connection is not None and held_in_this_process and held_path == snapshot_path:
            return held_connection
        if held_connection is not None:
            if held_in_this_process:
                held_connection.close()
            self._local.connection = None
        if not snapshot_path.exists():
            raise ReadModelUnavailable(f"snapshot {snapshot_path} named by CURRENT does not exist")
        try:
            connection = duckdb.connect(str(snapshot_path), read_only=True)
            # `intervals` and `daily` are views over monthly Parquet files: keep their footers cached.
            connection.execute("SET parquet_metadata_cache = true")
            # Portal queries are point lookups on sorted tables: parallel scan tasks only add hand-offs
            # between DuckDB's threads and the server's request threads.
            connection.execute("SET threads = 1")
            self._attach_daily_base(connection)
        except duckdb.Error as error:
            raise ReadModelUnavailable(f"cannot open snapshot {snapshot_path}: {error}") from error
        self._local.connection = connection
        self._local.snapshot_path = snapshot_path
        self._local.pid = os.getpid()
        return connection

    def _attach_daily_base(self, connection: duckdb.DuckDBPyConnection) -> None:
        """Attach the supply-sorted daily base the snapshot names (meta `daily_base`) as `daily_base`, read-only.

        Connections to one snapshot file share a DuckDB instance, so another thread may have attached it already.
        Snapshots without one (older publishes, test factories) are read through their `daily` view instead."""
        try:
            rows = connection.execute("SELECT value FROM meta WHERE key = 'daily_base'").fetchall()
        except duckdb.CatalogException:
            return
        if not rows or not rows[0][0]:
            return
        base = (self.readmodel_dir / rows[0][0]).resolve()
        if not base.is_relative_to(self.readmodel_dir.resolve()):
            raise ReadModelUnavailable(f"snapshot names a daily base outside {self.readmodel_dir}: {rows[0][0]!r}")
        connection.execute("ATTACH IF NOT EXISTS ? AS daily_base (READ_ONLY)", [str(base)])

    def close_thread_connection(self) -> None:
        """Close this thread's connection, if any (the next query reopens one)."""
        connection = getattr(self._local, "connection", None)
        if connection is not None:
            connection.close()
        self._local.connection = None
        self._local.snapshot_path = None
