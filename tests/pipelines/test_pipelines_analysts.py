"""What analysts use: the example queries of docs/warehouse.md through `ami-portal sql -c` on a published snapshot,
the read-only SQL shell (safe while the warehouse is open for writing), and the Parquet export read by other
engines."""

from __future__ import annotations

import csv
import io
import os
import re
import subprocess
import sys

import dagster as dg
import duckdb
import pyarrow.dataset as ds
import pytest

from tests.conftest import ROOT, start_simulator

NOW = "2026-09-10T15:00:00+00:00"


@pytest.fixture(scope="module")
def loaded(tmp_path_factory):
    """A data directory loaded from the simulator (4 supplies, 2026-07-20 .. 2026-09-09) and published."""
    data_dir = tmp_path_factory.mktemp("data")
    service, backend = start_simulator(data_dir / "logs", seed=17, supplies=4, months=2, now=NOW)
    patch = pytest.MonkeyPatch()
    try:
        patch.setenv("AMI_DATA_DIR", str(data_dir))
        patch.setenv("AMI_BACKEND_URL", backend)
        patch.setenv("AMI_PARTITIONS_START", "2026-07-01")
        from pipelines import definitions
        from pipelines.resources import default_resources

        resources = default_resources()
        with dg.DagsterInstance.ephemeral() as instance:
            for selection, tags in (
                (["customers", "supplies"], {}),
                (["interval_readings", "register_reads", "daily_consumption"],
                 {"dagster/asset_partition_range_start": "2026-07-20",
                  "dagster/asset_partition_range_end": "2026-09-09"}),
                (["bills", "monthly_consumption", "read_model", "parquet_export"], {}),
            ):
                assert dg.materialize(definitions.all_assets, instance=instance, resources=resources,
                                      selection=selection, tags=tags).success
    finally:
        patch.undo()
        service.stop()
    return data_dir


def _sql(data_dir, statement):
    env = dict(os.environ, AMI_DATA_DIR=str(data_dir))
    return subprocess.run([sys.executable, "-m", "ami_portal.cli", "sql", "-c", statement], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=120)


def _rows(data_dir, statement):
    completed = _sql(data_dir, statement)
    assert completed.returncode == 0, completed.stderr
    return list(csv.DictReader(io.StringIO(completed.stdout)))


def _examples() -> dict[str, str]:
    text = (ROOT / "docs" / "warehouse.md").read_text(encoding="utf-8")
    return {name: body.strip() for name, body in re.findall(r"```sql\n-- example: (\w+)\n(.*?)```", text, re.S)}


def _warehouse(data_dir, sql):
    con = duckdb.connect(str(data_dir / "warehouse.duckdb"), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def test_docs_hold_the_four_example_queries():
    assert set(_examples()) == {"load_curve_by_comuna", "estimated_share_by_month", "top_consumers",
                                "bill_totals_by_tariff"}


def test_load_curve_by_comuna_has_every_local_hour(loaded):
    rows = _rows(loaded, _examples()["load_curve_by_comuna"])
    comunas = {row["comuna"] for row in rows}
    assert comunas
    for comuna in comunas:
        assert sorted(int(row["local_hour"]) for row in rows if row["comuna"] == comuna) == list(range(24))
    assert all(float(row["avg_kw"]) >= 0 for row in rows)


def test_estimated_share_by_month_counts_every_reading(loaded):
    rows = _rows(loaded, _examples()["estimated_share_by_month"])
    assert [row["month"] for row in rows] == ["2026-07", "2026-08", "2026-09"]
    assert all(0 <= float(row["estimated_share"]) <= 1 for row in rows)
    total = _warehouse(loaded, "SELECT count(*) FROM interval_readings WHERE kwh IS NOT NULL")[0][0]
    assert sum(int(row["readings"]) for row in rows) == total


def test_top_consumers_are_sorted_by_energy(loaded):
    rows = _rows(loaded, _examples()["top_consumers"])
    assert len(rows) == 4
    energies = [float(row["kwh"]) for row in rows]
    assert energies == sorted(energies, reverse=True) and energies[0] > 0


def test_bill_totals_by_tariff_add_up_to_the_bills(loaded):
    rows = _rows(loaded, _examples()["bill_totals_by_tariff"])
    assert rows
    assert sum(int(row["total_clp"]) for row in rows) == _warehouse(loaded, "SELECT sum(total_clp) FROM bills")[0][0]


def test_sql_shell_is_read_only_and_works_while_the_warehouse_is_held_for_writing(loaded):
    writer = duckdb.connect(str(loaded / "warehouse.duckdb"))  # as a running pipeline step would
    try:
        assert _rows(loaded, "SELECT count(*) AS n FROM supplies") == [{"n": "4"}]
        refused = _sql(loaded, "DELETE FROM supplies")
        assert refused.returncode == 1
        assert "error:" in refused.stderr and "Traceback" not in refused.stderr
    finally:
        writer.close()
    assert _rows(loaded, "SELECT count(*) AS n FROM supplies") == [{"n": "4"}]


def test_parquet_export_is_hive_partitioned_by_month_and_readable_by_other_engines(loaded):
    export = loaded / "export"
    assert sorted(path.name for path in (export / "interval_readings").iterdir()) == [
        "month=2026-07", "month=2026-08", "month=2026-09"]
    dataset = ds.dataset(export / "interval_readings", format="parquet", partitioning="hive")
    table = dataset.to_table(columns=["supply_id", "kwh", "month"])
    assert table.num_rows == _warehouse(loaded, "SELECT count(*) FROM interval_readings")[0][0]
    by_month = duckdb.sql(
        f"SELECT month, count(*) FROM read_parquet('{export}/daily_consumption/*/*.parquet', hive_partitioning=1) "
        "GROUP BY 1 ORDER BY 1").fetchall()
    assert [month for month, _ in by_month] == ["2026-07", "2026-08", "2026-09"]


def test_parquet_export_rewrites_only_the_months_that_changed(loaded, tmp_path):
    from warehouse.parquet_export import export_parquet

    import shutil

    copy = tmp_path / "warehouse.duckdb"
    shutil.copy(loaded / "warehouse.duckdb", copy)
    con = duckdb.connect(str(copy))
    try:
        target = tmp_path / "export"
        first = export_parquet(con, target)
        months = {path.parent.name: path.stat().st_mtime_ns for path in (target / "interval_readings").glob("*/*.parquet")}
        assert export_parquet(con, target).files_written == 2  # only customers and supplies, rewritten each time
        con.execute("UPDATE interval_readings SET kwh = kwh + 1 WHERE interval_end = "
                    "(SELECT max(interval_end) FROM interval_readings WHERE interval_end < '2026-08-15')")
        assert export_parquet(con, target).files_written == 3  # August's interval file, plus the two whole tables
        after = {path.parent.name: path.stat().st_mtime_ns for path in (target / "interval_readings").glob("*/*.parquet")}
        assert [month for month in months if months[month] != after[month]] == ["month=2026-08"]
        assert first.files_unchanged == 0
    finally:
        con.close()
