"""The code location's entry point: every asset and resource, loaded by `workspace.yaml`."""

from __future__ import annotations

import dagster as dg

from pipelines.analytics import parquet_export
from pipelines.billing import bills
from pipelines.jobs import inbox_job, recent_meter_data_job, reference_data_job
from pipelines.master_data import customers, supplies
from pipelines.meter_data import daily_consumption, meter_readings, monthly_consumption
from pipelines.resources import default_resources
from pipelines.schedules import recent_meter_data_schedule, reference_data_schedule
from pipelines.sensors import inbox_sensor
from pipelines.serving import read_model
from pipelines.tariffs import tariffs

all_assets = [customers, supplies, meter_readings, daily_consumption, monthly_consumption, bills, read_model]
all_assets.append(tariffs)
all_assets.append(parquet_export)

defs = dg.Definitions(
    assets=all_assets,
    jobs=[recent_meter_data_job, inbox_job, reference_data_job],
    schedules=[recent_meter_data_schedule, reference_data_schedule],
    sensors=[inbox_sensor],
    resources=default_resources(),
)
