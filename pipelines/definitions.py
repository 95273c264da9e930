"""The code location's entry point: every asset and resource, loaded by `workspace.yaml`."""

from __future__ import annotations

import dagster as dg

from pipelines.billing import bills
from pipelines.master_data import customers, supplies
from pipelines.meter_data import daily_consumption, meter_readings, monthly_consumption
from pipelines.resources import default_resources
from pipelines.serving import read_model

all_assets = [customers, supplies, meter_readings, daily_consumption, monthly_consumption, bills, read_model]

defs = dg.Definitions(assets=all_assets, resources=default_resources())
