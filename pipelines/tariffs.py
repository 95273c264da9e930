"""Tariff asset: the regulated price schedule from the billing system, used to show pesos next to kWh."""

import dagster as dg

from pipelines.resources import BackendResource, WarehouseResource
from warehouse.tariffs import upsert_tariffs


@dg.asset(
    group_name="billing",
    kinds={"duckdb"},
    owners=["team:data-engineering"],
    pool="warehouse",
)
def tariffs(backend: BackendResource, warehouse: WarehouseResource) -> dg.MaterializeResult:
    """The tariff schedule (fixed charge, energy and injection prices per validity window) from the billing
    system's `get Tariffs` reply, upserted into the warehouse table `tariffs` keyed by (tariff, valid_from)."""
    frame = backend.client().get_tariffs()
    with warehouse.connect() as con:
        written = upsert_tariffs(con, frame)
    metadata: dict = {"dagster/row_count": written}
    if frame.height:
        metadata["first_valid_from"] = str(frame["valid_from"].min())
        metadata["last_valid_from"] = str(frame["valid_from"].max())
    return dg.MaterializeResult(metadata=metadata)
