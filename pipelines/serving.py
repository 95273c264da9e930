"""The published read model: the immutable snapshot the portal reads."""


import dagster as dg

from pipelines.billing import bills
from pipelines.master_data import customers, supplies
from pipelines.meter_data import daily_consumption, monthly_consumption
from pipelines.resources import WarehouseResource
from warehouse.publish import publish_read_model


@dg.asset(
    deps=[customers, supplies, "interval_readings", daily_consumption, monthly_consumption, bills],
    group_name="serving",
    kinds={"duckdb"},
    owners=["team:data-engineering"],
    pool="warehouse",
)
def read_model(warehouse: WarehouseResource) -> dg.MaterializeResult:
    """A new read-model snapshot (customers, supplies, intervals, daily and monthly consumption, bills) written
    as its own DuckDB file and switched in atomically; the portal picks it up without restart and never opens
    the warehouse itself."""
    with warehouse.connect() as con:
        result = publish_read_model(con, warehouse.readmodel_dir)
    metadata = {f"rows_{table}": count for table, count in result.row_counts.items()}
    metadata.update({"snapshot": str(result.path), "published_at": str(result.published_at), "seconds": result.seconds})
    return dg.MaterializeResult(metadata=metadata)
