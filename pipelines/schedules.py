"""Schedules (America/Santiago).

- The pull of recent meter data: every `AMI_PULL_CRON` (default every 15 minutes), one run over today's partition
  and the `AMI_LOOKBACK_DAYS` (default 2) days before it, so late and corrected readings are picked up without
  manual work. The run rebuilds the rollups, runs the checks and publishes.
- The refresh of reference data: every `AMI_REFERENCE_CRON` (default hourly at minute 5), customers, supplies,
  tariffs and bills, then a publish."""

from __future__ import annotations

import datetime as dt

import dagster as dg

from pipelines import settings
from pipelines.jobs import partition_range_tags, recent_meter_data_job, reference_data_job
from pipelines.partitions import daily_partitions
from pipelines.settings import SANTIAGO


def lookback_window(local_today: dt.date, lookback_days: int, first_partition: dt.date) -> tuple[dt.date, dt.date]:
    """First and last local day one scheduled run pulls."""
    return max(first_partition, local_today - dt.timedelta(days=lookback_days)), local_today


@dg.schedule(
    cron_schedule=settings.pull_cron(),
    job=recent_meter_data_job,
    execution_timezone=SANTIAGO,
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Pull today's and the lookback days' meter readings, rebuild rollups, check and publish.",
)
def recent_meter_data_schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest | dg.SkipReason:
    scheduled = context.scheduled_execution_time
    from zoneinfo import ZoneInfo

    local_today = scheduled.astimezone(ZoneInfo(SANTIAGO)).date()
    keys = daily_partitions.get_partition_keys(current_time=scheduled)
    if not keys:
        return dg.SkipReason("No daily partition exists yet.")
    last_key = min(local_today.isoformat(), keys[-1])
    first_day, last_day = lookback_window(
        dt.date.fromisoformat(last_key), settings.lookback_days(), dt.date.fromisoformat(keys[0])
    )
    return dg.RunRequest(
        run_key=f"recent:{scheduled.isoformat()}",
        tags={**partition_range_tags(first_day, last_day), "ami/trigger": "schedule"},
    )


@dg.schedule(
    cron_schedule=settings.reference_cron(),
    job=reference_data_job,
    execution_timezone=SANTIAGO,
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Refresh customers, supplies, tariffs and bills from the backends, then publish.",
)
def reference_data_schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
    return dg.RunRequest(
        run_key=f"reference:{context.scheduled_execution_time.isoformat()}", tags={"ami/trigger": "schedule"}
    )
