"""The initial load as real Dagster runs: master data, then every daily partition in one backfill run, then
bills, rollups and the first publish. Runs are recorded in the Dagster instance, so the UI shows them."""

from __future__ import annotations

import datetime as dt
from typing import Callable

import dagster as dg

from pipelines.definitions import all_assets
from pipelines.partitions import daily_partitions
from pipelines.resources import default_resources

STEPS: list[tuple[str, list[str], bool]] = [
    ("master data", ["customers", "supplies", "tariffs"], False),
    ("meter readings", ["interval_readings", "register_reads", "daily_consumption"], True),
    ("bills, rollups and publish", ["bills", "monthly_consumption", "read_model"], False),
]


def run_initial_load(
    instance: dg.DagsterInstance,
    first_day: dt.date,
    last_day: dt.date,
    report: Callable[[str], None] = print,
) -> list[str]:
    """Materialize every asset, the partitioned ones for local days first_day..last_day; return the run ids."""
    keys = daily_partitions.get_partition_keys()
    first_key, last_key = first_day.isoformat(), last_day.isoformat()
    if first_key not in keys or last_key not in keys:
        raise ValueError(f"days {first_key}..{last_key} are outside the partitions {keys[0]}..{keys[-1]}")
    run_ids = []
    for label, selection, partitioned in STEPS:
        tags = {"ami/load": "initial"}
        if partitioned:
            tags["dagster/asset_partition_range_start"] = first_key
            tags["dagster/asset_partition_range_end"] = last_key
        started = dt.datetime.now()
        result = dg.materialize(
            all_assets,
            instance=instance,
            resources=default_resources(),
            selection=selection,
            tags=tags,
            # Progress goes to the run's event log (the UI); the console only gets warnings.
            run_config={"loggers": {"console": {"config": {"log_level": "WARNING"}}}},
        )
        seconds = (dt.datetime.now() - started).total_seconds()
        report(f"  {label}: run {result.run_id[:8]} {'succeeded' if result.success else 'FAILED'} in {seconds:.1f} s")
        run_ids.append(result.run_id)
    return run_ids
