"""warehouse.publish: snapshot tables and types of the read-model contract, CURRENT pointer, cleanup."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import textwrap
import time

import duckdb
import polars as pl
from warehouse_frames import BILL_LINES_SCHEMA, BILLS_SCHEMA, SUPPLY_A, SUPPLY_B, UTC, intervals_frame

from warehouse.loads import upsert_bills, upsert_interval_readings
from warehouse.publish import clean_old_snapshots, publish_read_model, read_current
from warehouse.rollups import rebuild_daily, rebuild_monthly

TZ = "TIMESTAMP WITH TIME ZONE"
CONTRACT_COLUMNS = {
    "meta": [("key", "VARCHAR"), ("value", "VARCHAR")],
    "customers": [
        ("customer_id", "VARCHAR"), ("client_number", "VARCHAR"), ("name", "VARCHAR"), ("rut", "VARCHAR"),
        ("email", "VARCHAR"),
    ],
    "supplies": [
        ("supply_id", "VARCHAR"), ("customer_id", "VARCHAR"), ("usage_point_mrid", "VARCHAR"),
        ("meter_mrid", "VARCHAR"), ("address", "VARCHAR"), ("comuna", "VARCHAR"), ("tariff", "VARCHAR"),
        ("status", "VARCHAR"), ("has_solar", "BOOLEAN"), ("data_from", TZ), ("data_until", TZ),
    ],
    "intervals": [
        ("supply_id", "VARCHAR"), ("flow", "VARCHAR"), ("interval_end", TZ), ("interval_seconds", "INTEGER"),
        ("kwh", "DOUBLE"), ("quality", "VARCHAR"),
    ],
    "daily": [
        ("supply_id", "VARCHAR"), ("flow", "VARCHAR"), ("local_date", "DATE"), ("kwh", "DOUBLE"),
        ("intervals", "INTEGER"), ("expected_intervals", "INTEGER"), ("quality", "VARCHAR"),
    ],
    "monthly": [
        ("supply_id", "VARCHAR"), ("flow", "VARCHAR"), ("month", "DATE"), ("kwh", "DOUBLE"), ("days", "INTEGER"),
        ("quality", "VARCHAR"),
    ],
    "bills": [
        ("bill_id", "VARCHAR"), ("supply_id", "VARCHAR"), ("period_start", "DATE"), ("period_end", "DATE"),
        ("issue_date", "DATE"), ("due_date", "DATE"), ("kwh", "DOUBLE"), ("register_start_kwh", "DOUBLE"),
        ("register_end_kwh", "DOUBLE"), ("received_kwh", "DOUBLE"), ("net_clp", "BIGINT"), ("iva_clp", "BIGINT"),
        ("total_clp", "BIGINT"), ("status", "VARCHAR"),
    ],
    "bill_lines": [
        ("bill_id", "VARCHAR"), ("line_no", "INTEGER"), ("code", "VARCHAR"), ("description", "VARCHAR"),
        ("quantity", "DOUBLE"), ("unit", "VARCHAR"), ("unit_price_clp", "DOUBLE"), ("amount_clp", "BIGINT"),
    ],
    "tariffs": [
        ("valid_from", "DATE"), ("valid_to", "DATE"), ("tariff", "VARCHAR"), ("fixed_clp_month", "BIGINT"),
        ("energy_clp_per_kwh", "DOUBLE"), ("injection_clp_per_kwh", "DOUBLE"),
    ],
    # the publisher's own: the months of `daily` newer than the attached base, and what each part file holds
    "daily_recent": [
        ("supply_id", "VARCHAR"), ("flow", "VARCHAR"), ("local_date", "DATE"), ("kwh", "DOUBLE"),
        ("intervals", "INTEGER"), ("expected_intervals", "INTEGER"), ("quality", "VARCHAR"), ("day", "INTEGER"),
    ],
    "published_parts": [
        ("table_name", "VARCHAR"), ("month", "DATE"), ("rows", "BIGINT"), ("fingerprint", "UBIGINT"),
        ("path", "VARCHAR"),
    ],
}

FIRST_END = dt.datetime(2026, 6, 1, 4, 15, tzinfo=UTC)

# Runs in another process, as the portal would: opens the snapshot named by CURRENT read-only.
READER_SCRIPT = textwrap.dedent(
    """
    import json, sys, pathlib, duckdb
    readmodel = pathlib.Path(sys.argv[1])
    snapshot = readmodel / (readmodel / "CURRENT").read_text().strip()
    con = duckdb.connect(str(snapshot), read_only=True)
    con.execute("SET TimeZone = 'UTC'")
    columns = {}
    for table, column, data_type in con.execute(
        "SELECT table_name, column_name, data_type FROM duckdb_columns() WHERE NOT internal "
        "ORDER BY table_name, column_index"
    ).fetchall():
        columns.setdefault(table, []).append([column, data_type])
    intervals = con.execute(
        "SELECT supply_id, flow, strftime(interval_end, '%Y-%m-%dT%H:%M:%SZ'), kwh, quality FROM intervals"
    ).fetchall()
    supplies = con.execute(
        "SELECT supply_id, strftime(data_from, '%Y-%m-%dT%H:%M:%SZ'), strftime(data_until, '%Y-%m-%dT%H:%M:%SZ') "
        "FROM supplies ORDER BY supply_id"
    ).fetchall()
    meta = dict(con.execute("SELECT key, value FROM meta").fetchall())
    print(json.dumps({"columns": columns, "intervals": intervals, "supplies": supplies, "meta": meta}))
    """
)


def _fill(con) -> None:
    rows = [
        (SUPPLY_B[1], FIRST_END + dt.timedelta(minutes=15), 0.25, "estimated", "received"),
        (SUPPLY_B[1], FIRST_END, 0.5, "actual", "delivered"),
        (SUPPLY_A[1], FIRST_END + dt.timedelta(minutes=15), None, "missing"),
        (SUPPLY_A[1], FIRST_END, 0.125, "actual"),
    ]
    upsert_interval_readings(con, intervals_frame(rows))
    bill_id = f"B{SUPPLY_A[0]}-202606"
    upsert_bills(
        con,
        pl.DataFrame(
            [(bill_id, SUPPLY_A[0], dt.date(2026, 5, 5), dt.date(2026, 6, 5), dt.date(2026, 6, 7),
              dt.date(2026, 6, 27), 182.345, 10234.0, 10416.345, 0.0, 34567, 6568, 41135, "unpaid")],
            schema=BILLS_SCHEMA,
            orient="row",
        ),
        pl.DataFrame(
            [(bill_id, 1, "FIXED", "Cargo fijo mensual", 1.0, "mes", 1050.0, 1050)],
            schema=BILL_LINES_SCHEMA,
            orient="row",
        ),
    )
    rebuild_daily(con, dt.date(2026, 6, 1), dt.date(2026, 6, 1))
    rebuild_monthly(con, dt.date(2026, 6, 1), dt.date(2026, 6, 1))


def test_snapshot_matches_the_contract_and_is_readable_while_the_warehouse_is_open(loaded_con, tmp_path):
    _fill(loaded_con)
    readmodel = tmp_path / "readmodel"
    result = publish_read_model(loaded_con, readmodel)

    reader = subprocess.run(
        [sys.executable, "-c", READER_SCRIPT, str(readmodel)], capture_output=True, text=True, timeout=60
    )
    assert reader.returncode == 0, reader.stderr
    seen = json.loads(reader.stdout)
    assert seen["columns"] == {table: [list(col) for col in cols] for table, cols in CONTRACT_COLUMNS.items()}
    assert seen["intervals"] == [
        [SUPPLY_A[0], "delivered", "2026-06-01T04:15:00Z", 0.125, "actual"],
        [SUPPLY_A[0], "delivered", "2026-06-01T04:30:00Z", None, "missing"],
        [SUPPLY_B[0], "delivered", "2026-06-01T04:15:00Z", 0.5, "actual"],
        [SUPPLY_B[0], "received", "2026-06-01T04:30:00Z", 0.25, "estimated"],
    ]
    assert seen["supplies"] == [
        [SUPPLY_A[0], "2026-06-01T04:00:00Z", "2026-06-01T04:30:00Z"],
        [SUPPLY_B[0], "2026-06-01T04:00:00Z", "2026-06-01T04:30:00Z"],
    ]
    assert seen["meta"]["schema_version"] == "1"
    assert dt.datetime.fromisoformat(seen["meta"]["published_at"]) == result.published_at
    assert result.row_counts == {
        "customers": 2, "supplies": 2, "daily": 3, "monthly": 3, "bills": 1, "bill_lines": 1, "tariffs": 0,
        "intervals": 4,
    }
    # The warehouse connection is still usable after the publish.
    logged = loaded_con.execute("SELECT snapshot_path, row_counts FROM publish_log").fetchall()
    assert logged == [(f"snapshots/{result.path.name}", json.dumps(result.row_counts, sort_keys=True))]


def test_each_publish_writes_a_new_file_and_replaces_current(loaded_con, tmp_path):
    readmodel = tmp_path / "readmodel"
    assert read_current(readmodel) is None
    first = publish_read_model(loaded_con, readmodel)
    assert read_current(readmodel) == f"snapshots/{first.path.name}"
    holder = duckdb.connect(str(first.path), read_only=True)  # a reader still on the old snapshot
    _fill(loaded_con)
    second = publish_read_model(loaded_con, readmodel)
    assert second.path != first.path
    assert second.path.name.startswith("rm-") and second.path.name.endswith("Z.duckdb")
    assert read_current(readmodel) == f"snapshots/{second.path.name}"
    assert holder.execute("SELECT count(*) FROM intervals").fetchall() == [(0,)]
    holder.close()
    assert sorted(path.name for path in readmodel.iterdir()) == ["CURRENT", "parts", "snapshots"]
    assert sorted(path.name for path in (readmodel / "snapshots").iterdir()) == sorted(
        [first.path.name, second.path.name]
    )


def test_cleanup_keeps_three_newest_and_any_recent_snapshot(tmp_path):
    readmodel = tmp_path / "readmodel"
    snapshots = readmodel / "snapshots"
    snapshots.mkdir(parents=True)
    now = time.time()
    ages_by_name = {
        "rm-20260101T000000000001Z.duckdb": 3600,
        "rm-20260101T000000000002Z.duckdb": 3600,
        "rm-20260101T000000000003Z.duckdb": 60,  # outside the newest three but recent: a reader may hold it
        "rm-20260101T000000000004Z.duckdb": 3600,
        "rm-20260101T000000000005Z.duckdb": 3600,
        "rm-20260101T000000000006Z.duckdb": 3600,
    }
    for name, age in ages_by_name.items():
        path = snapshots / name
        path.write_bytes(b"x")
        os.utime(path, (now - age, now - age))
    (readmodel / "CURRENT").write_text("snapshots/rm-20260101T000000000006Z.duckdb\n")

    deleted = clean_old_snapshots(readmodel, now=now)

    assert sorted(path.name for path in deleted) == [
        "rm-20260101T000000000001Z.duckdb", "rm-20260101T000000000002Z.duckdb",
    ]
    assert sorted(path.name for path in snapshots.iterdir()) == [
        "rm-20260101T000000000003Z.duckdb", "rm-20260101T000000000004Z.duckdb",
        "rm-20260101T000000000005Z.duckdb", "rm-20260101T000000000006Z.duckdb",
    ]


def test_publish_cleans_old_snapshots(loaded_con, tmp_path):
    readmodel = tmp_path / "readmodel"
    old = time.time() - 3600
    for index in range(4):
        published = publish_read_model(loaded_con, readmodel)
        os.utime(published.path, (old, old))
    latest = publish_read_model(loaded_con, readmodel)
    remaining = sorted(path.name for path in (readmodel / "snapshots").iterdir())
    assert len(remaining) == 3
    assert remaining[-1] == latest.path.name
