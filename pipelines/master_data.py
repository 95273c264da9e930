"""Master data assets: customers and their supplies (usage points) from the customer information system."""


import dagster as dg

from pipelines.resources import BackendResource, WarehouseResource
from warehouse import loads


@dg.asset(
    group_name="master_data",
    kinds={"duckdb"},
    owners=["team:data-engineering"],
    pool="warehouse",
)
def customers(backend: BackendResource, warehouse: WarehouseResource) -> dg.MaterializeResult:
    """Customers (name, RUT, email, client number) from the CIS `get Customers` reply, upserted into the
    warehouse table `customers`."""
    frame = backend.client().get_customers()
    with warehouse.connect() as con:
        loads.upsert_customers(con, frame)
    return dg.MaterializeResult(
        metadata={"dagster/row_count": frame.height, "preview": dg.MetadataValue.md(_preview(frame))}
    )


@dg.asset(
    deps=[customers],
    group_name="master_data",
    kinds={"duckdb"},
    owners=["team:data-engineering"],
    pool="warehouse",
)
def supplies(backend: BackendResource, warehouse: WarehouseResource) -> dg.MaterializeResult:
    """Supplies: supply id, usage point and meter mRIDs, address, comuna, tariff and status, from the CIS
    `get UsagePoints` reply, upserted into the warehouse table `supplies`. Interval readings are keyed to
    supplies through the usage point mRID."""
    frame = backend.client().get_supplies()
    with warehouse.connect() as con:
        loads.upsert_supplies(con, frame)
    solar = int(frame["has_solar"].sum()) if frame.height else 0
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": frame.height,
            "solar_supplies": solar,
            "preview": dg.MetadataValue.md(_preview(frame)),
        }
    )


def _preview(frame, rows: int = 5) -> str:
    """A small markdown table of the first rows, for the asset's page in the UI."""
    head = frame.head(rows)
    header = "| " + " | ".join(head.columns) + " |"
    rule = "|" + "---|" * len(head.columns)
    body = ["| " + " | ".join(str(value) for value in row) + " |" for row in head.iter_rows()]
    return "\n".join([header, rule, *body])
