"""Billing assets: monthly bills with their line items from the billing system."""


import dagster as dg

from pipelines import checks
from pipelines.master_data import supplies
from pipelines.resources import BackendResource, WarehouseResource
from warehouse import loads, queries


@dg.asset(
    deps=[supplies],
    group_name="billing",
    kinds={"duckdb"},
    owners=["team:data-engineering"],
    pool="warehouse",
    check_specs=checks.specs("bills", checks.BILL_CHECKS),
)
def bills(backend: BackendResource, warehouse: WarehouseResource) -> dg.MaterializeResult:
    """Bills (period, billed kWh, register reads, net, IVA and total in CLP, status, due date) and their line
    items, from the billing system's `get Bills` reply, upserted into `bills` and `bill_lines`."""
    bill_frame, line_frame = backend.client().get_bills()
    with warehouse.connect() as con:
        loads.upsert_bills(con, bill_frame, line_frame)
        reconciliation = queries.check_bill_reconciliation(con)
    metadata = {"dagster/row_count": bill_frame.height, "bill_lines": line_frame.height}
    if bill_frame.height:
        metadata["total_clp"] = int(bill_frame["total_clp"].sum())
        metadata["unpaid"] = int((bill_frame["status"] == "unpaid").sum())
    name, blocking, _ = checks.BILL_CHECKS[0]
    return dg.MaterializeResult(
        metadata=metadata, check_results=[checks.to_result("bills", name, blocking, reconciliation)]
    )
