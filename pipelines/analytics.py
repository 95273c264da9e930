"""The analysts' Parquet export: the warehouse as monthly Hive-partitioned Parquet under `<data dir>/export`."""

import dagster as dg

from pipelines.billing import bills
from pipelines.master_data import customers, supplies
from pipelines.meter_data import daily_consumption, monthly_consumption
from pipelines.resources import WarehouseResource
from warehouse.parquet_export import export_parquet


@dg.asset(
    deps=[customers, supplies, "interval_readings", daily_consumption, monthly_consumption, bills],
    group_name="analytics",
    kinds={"parquet", "duckdb"},
    owners=["team:data-engineering"],
    pool="warehouse",
)
def parquet_export(warehouse: WarehouseResource) -> dg.MaterializeResult:
    """Interval readings, daily and monthly consumption and bills as one Parquet file per local month
    (`<table>/month=YYYY-MM/data.parquet`, Hive-style), customers and supplies as one file each, readable by
    Spark, Trino, DuckDB or Polars. Only months whose rows changed are rewritten."""
    export_dir = warehouse.warehouse_path.parent / "export"
    with warehouse.connect() as con:
        result = export_parquet(con, export_dir)
    return dg.MaterializeResult(
        metadata={
            "path": dg.MetadataValue.path(str(export_dir)),
            "files_written": result.files_written,
            "files_unchanged": result.files_unchanged,
            **{f"rows_{table}": count for table, count in result.rows.items()},
        }
    )
