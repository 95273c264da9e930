"""warehouse.db and warehouse.schema: migrations, session time zone, documented columns, lock waiting."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time

import duckdb
import pytest

from warehouse.db import WarehouseLockTimeout, connect
from warehouse.schema import MIGRATIONS, SCHEMA_VERSION

EXPECTED_TABLES = {
    "schema_migrations", "customers", "supplies", "interval_readings", "interval_reading_versions",
    "register_reads", "register_read_versions", "bills", "bill_lines", "daily_consumption", "monthly_consumption",
    "publish_log", "tariffs",
}


def test_connect_creates_every_table_and_records_migrations_once(warehouse_path):
    first = connect(warehouse_path)
    tables = {row[0] for row in first.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
    first.close()
    second = connect(warehouse_path)
    versions = second.execute("SELECT version FROM schema_migrations ORDER BY version").fetchall()
    second.close()
    assert tables == EXPECTED_TABLES
    assert [row[0] for row in versions] == [migration.version for migration in MIGRATIONS]
    assert versions[-1][0] == SCHEMA_VERSION


def test_session_time_zone_is_utc(con):
    assert con.execute("SELECT current_setting('TimeZone')").fetchall()[0][0] == "UTC"


def test_every_table_and_column_is_documented(con):
    undocumented_tables = con.execute(
        "SELECT table_name FROM duckdb_tables() WHERE comment IS NULL OR comment = ''"
    ).fetchall()
    undocumented_columns = con.execute(
        "SELECT table_name, column_name FROM duckdb_columns() WHERE NOT internal AND (comment IS NULL OR comment = '')"
    ).fetchall()
    assert undocumented_tables == []
    assert undocumented_columns == []


def test_interval_readings_key_and_types(con):
    columns = dict(
        con.execute(
            "SELECT column_name, data_type FROM duckdb_columns() WHERE table_name = 'interval_readings'"
        ).fetchall()
    )
    assert columns["interval_end"] == "TIMESTAMP WITH TIME ZONE"
    assert columns["kwh"] == "DECIMAL(18,6)"
    # The key is kept unique by the loads (no index: see migration 4) and documented on the table.
    assert con.execute(
        "SELECT count(*) FROM duckdb_constraints() "
        "WHERE table_name = 'interval_readings' AND constraint_type = 'PRIMARY KEY'"
    ).fetchall()[0][0] == 0
    comment = con.execute("SELECT comment FROM duckdb_tables() WHERE table_name = 'interval_readings'").fetchall()
    assert "Key: supply_id, flow, interval_seconds, interval_end" in comment[0][0]


def test_read_only_connect_does_not_migrate(warehouse_path):
    duckdb.connect(str(warehouse_path)).close()
    read_only = connect(warehouse_path, read_only=True)
    tables = read_only.execute("SELECT count(*) FROM duckdb_tables()").fetchall()[0][0]
    read_only.close()
    assert tables == 0


def _hold_lock(path, seconds: float) -> subprocess.Popen:
    script = textwrap.dedent(
        f"""
        import sys, time, duckdb
        con = duckdb.connect({str(path)!r})
        print("holding", flush=True)
        time.sleep({seconds})
        con.close()
        """
    )
    holder = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "holding"
    return holder


def test_connect_waits_for_another_process_to_release_the_lock(warehouse_path):
    connect(warehouse_path).close()
    holder = _hold_lock(warehouse_path, 1.5)
    try:
        with pytest.raises(WarehouseLockTimeout):
            connect(warehouse_path, wait_seconds=0.3)
        started = time.monotonic()
        con = connect(warehouse_path, wait_seconds=20)
        waited = time.monotonic() - started
        assert con.execute("SELECT count(*) FROM schema_migrations").fetchall()[0][0] == len(MIGRATIONS)
        con.close()
    finally:
        holder.wait(timeout=20)
    assert waited > 0.2
