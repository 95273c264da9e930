"""Jobs: the scheduled pull of recent meter data (with rollups, checks and publish in the same run) and the
inbox job that ingests pushed files and publishes them."""


import datetime as dt
from pathlib import Path

import dagster as dg

from pipelines import checks
from pipelines.partitions import daily_partitions
from pipelines.resources import WarehouseResource
from warehouse import rollups
from warehouse.publish import publish_read_model

RECENT_SELECTION = [
    "interval_readings", "register_reads", "daily_consumption", "monthly_consumption", "read_model", "parquet_export",
]

# Each step in its own process (two at a time), forked from a server that has already imported the code
# location: a step starts in about a second instead of re-importing Dagster, Polars and DuckDB. Another machine
# changes only this executor (dagster-k8s, dagster-celery; see docs/architecture.md).
STEP_EXECUTOR = dg.multiprocess_executor.configured(
    {"max_concurrent": 2, "start_method": {"forkserver": {"preload_modules": ["pipelines.definitions"]}}},
    name="forkserver_multiprocess",
)

# Partitioned meter data plus the monthly rollup and the publish: one run pulls a partition range (the lookback
# window, or a backfill's chunk), and a failed blocking check of daily_consumption stops the publish.
recent_meter_data_job = dg.define_asset_job(
    "recent_meter_data_job",
    selection=RECENT_SELECTION,
    description="Pull meter readings for a range of local days, rebuild the rollups, check them and publish.",
    executor_def=STEP_EXECUTOR,
)


class InboxFilesConfig(dg.Config):
    """The inbox files one run ingests (absolute paths), in the order they arrived."""

    paths: list[str]


@dg.op(pool="warehouse", tags={"ami/source": "inbox"})
def ingest_inbox_files(
    context: dg.OpExecutionContext, config: InboxFilesConfig, warehouse: WarehouseResource
):
    """Ingest the files through the same code as `ami-portal ingest` (each moved to processed/ or quarantine/),
    rebuild the monthly rollup of the touched months, run the blocking checks on the touched days, then publish."""
    from pipelines.file_ingest import ingest_files

    paths = [Path(path) for path in config.paths if Path(path).exists()]
    outcomes = ingest_files(paths, Path(warehouse.data_dir))
    processed = [outcome for outcome in outcomes if outcome.status == "processed"]
    for outcome in outcomes:
        if outcome.status != "processed":
            context.log.warning("Quarantined %s: %s", outcome.path.name, outcome.reason)
    days = sorted({day for outcome in processed for day in outcome.changed_local_dates})
    metadata = {
        "files": len(outcomes),
        "processed": len(processed),
        "quarantined": len(outcomes) - len(processed),
        "readings": sum(outcome.readings for outcome in processed),
        "changed_days": ", ".join(day.isoformat() for day in days) or "(none)",
    }
    if not days:
        return dg.Output(None, metadata={**metadata, "published": False})
    with warehouse.connect() as con:
        rollups.rebuild_monthly(con, days[0], days[-1])
        outcomes_by_rule = checks.evaluate_daily(con, days[0], days[-1])
        failed = checks.blocking_failures(outcomes_by_rule)
        if failed:
            context.log.error(
                "Blocking checks failed on %s..%s: %s. The data is in the warehouse but NOT published; see "
                "docs/operations.md.", days[0], days[-1], "; ".join(outcomes_by_rule[name].summary for name in failed)
            )
            return dg.Output(None, metadata={**metadata, "published": False, "blocking_failures": ", ".join(failed)})
        result = publish_read_model(con, warehouse.readmodel_dir)
    partition_keys = set(daily_partitions.get_partition_keys())
    for day in days:
        if day.isoformat() in partition_keys:
            context.log_event(dg.AssetMaterialization(
                asset_key="interval_readings", partition=day.isoformat(), metadata={"source": "inbox"}))
    context.log_event(dg.AssetMaterialization(
        asset_key="read_model",
        metadata={"snapshot": str(result.path), "seconds": result.seconds, "parts_written": result.parts_written},
    ))
    return dg.Output(None, metadata={**metadata, "published": True, "publish_seconds": round(result.seconds, 3)})


@dg.job(description="Ingest files pushed to the inbox (chosen by the inbox sensor), then publish.")
def inbox_job() -> None:
    ingest_inbox_files()


def partition_range_tags(first_day: dt.date, last_day: dt.date) -> dict[str, str]:
    """Run tags that make one run cover the daily partitions first..last (single-run backfill policy)."""
    return {
        "dagster/asset_partition_range_start": first_day.isoformat(),
        "dagster/asset_partition_range_end": last_day.isoformat(),
    }


# Reference data changes rarely but must reach the portal without anyone materializing it by hand: a new customer
# or supply, a new bill, a new tariff. One run refreshes all of it and publishes.
REFERENCE_SELECTION = ["customers", "supplies", "tariffs", "bills", "read_model"]
reference_data_job = dg.define_asset_job(
    "reference_data_job",
    selection=REFERENCE_SELECTION,
    description="Refresh customers, supplies, tariffs and bills from the backends, then publish.",
)
