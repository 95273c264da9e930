"""The one daily partitions definition: local days in America/Santiago, today's partial day included."""

from __future__ import annotations

import dagster as dg

from pipelines.settings import SANTIAGO, partitions_start

daily_partitions = dg.DailyPartitionsDefinition(
    start_date=partitions_start(),
    timezone=SANTIAGO,
    # Include today's partition: intervals of the current day are loaded as they arrive.
    end_offset=1,
)
