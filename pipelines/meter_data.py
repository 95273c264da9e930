"""Meter data assets: 15-minute interval readings and daily register reads, by local day, from the MDM.

One run may cover many daily partitions (a backfill runs as a single run); the window is fetched in chunks of
at most `AMI_FETCH_DAYS` days and `AMI_FETCH_USAGE_POINTS` usage points per request, so no reply grows without
bound. The next request is fetched and parsed in a background thread while the current reply is loaded, so the
backend, the parser and DuckDB (which releases the GIL) work at the same time; at most two replies are in memory.
"""


import datetime as dt
import os
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Callable, ContextManager

import dagster as dg
import duckdb

from cim_ingest.client import BackendClient
from cim_ingest.meter_readings import MeterReadingsBatch
from pipelines import checks
from pipelines.master_data import supplies
from pipelines.partitions import daily_partitions
from pipelines.resources import BackendResource, WarehouseResource
from warehouse import loads, queries, rollups


def _chunks(start: dt.datetime, end: dt.datetime, days: int):
    step = dt.timedelta(days=days)
    cursor = start
    while cursor < end:
        upper = min(cursor + step, end)
        yield cursor, upper
        cursor = upper


def _requests(
    usage_points: list[str], start: dt.datetime, end: dt.datetime, chunk_days: int, batch_size: int
) -> list[tuple[list[str], dt.datetime, dt.datetime]]:
    """(usage points, start, end) of each `get MeterReadings` request covering the window, in load order."""
    return [
        (usage_points[offset : offset + batch_size], chunk_start, chunk_end)
        for chunk_start, chunk_end in _chunks(start, end, chunk_days)
        for offset in range(0, len(usage_points), batch_size)
    ]


def pull_meter_readings(
    client: BackendClient,
    connect: Callable[[], ContextManager[duckdb.DuckDBPyConnection]],
    usage_points: list[str],
    start: dt.datetime,
    end: dt.datetime,
    *,
    chunk_days: int,
    batch_size: int,
    fetch_ahead: bool = True,
    on_chunk: Callable[[dt.datetime], None] = lambda chunk_end: None,
) -> tuple[dict[str, list[int]], set[str]]:
    """Fetch the window's readings request by request and upsert each reply; return the [inserted, updated,
    unchanged] counts of "intervals" and "registers" and the usage points the warehouse does not know.

    With `fetch_ahead` the next request is fetched and parsed in a background thread while the current reply is
    loaded (at most two replies in memory)."""
    totals = {"intervals": [0, 0, 0], "registers": [0, 0, 0]}
    unknown: set[str] = set()
    requests = _requests(usage_points, start, end, chunk_days, batch_size)
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="fetch") as fetcher:
        def fetch(index: int) -> Future[MeterReadingsBatch]:
            return fetcher.submit(client.get_meter_readings, *requests[index])

        ahead = fetch(0) if requests and fetch_ahead else None
        for index, (mrids, chunk_start, chunk_end) in enumerate(requests):
            batch = ahead.result() if ahead is not None else client.get_meter_readings(mrids, chunk_start, chunk_end)
            ahead = fetch(index + 1) if fetch_ahead and index + 1 < len(requests) else None
            try:
                with connect() as con:
                    # The reply's Header/Timestamp orders it against pushed files: the newest message wins.
                    message_at = batch.header.timestamp
                    interval_result = loads.upsert_interval_readings(con, batch.intervals, message_at=message_at)
                    register_result = loads.upsert_register_reads(con, batch.registers, message_at=message_at)
            except BaseException:
                if ahead is not None:
                    ahead.cancel()
                raise
            del batch
            for key, result in (("intervals", interval_result), ("registers", register_result)):
                totals[key][0] += result.inserted
                totals[key][1] += result.updated
                totals[key][2] += result.unchanged
                unknown.update(result.unknown_usage_points)
            if index + 1 == len(requests) or requests[index + 1][2] != chunk_end:
                on_chunk(chunk_end)
    return totals, unknown


@dg.multi_asset(
    specs=[
        dg.AssetSpec(
            "interval_readings",
            deps=[supplies],
            description=(
                "15-minute energy readings (kWh delivered to and received from each supply) keyed by the END of "
                "each interval, as IEC 61968-9 sends them. One partition is one local day in America/Santiago "
                "(92, 96 or 100 quarter-hours). Loaded idempotently: the same reading again changes nothing."
            ),
            group_name="meter_data",
            kinds={"duckdb"},
            owners=["team:data-engineering"],
            partitions_def=daily_partitions,
        ),
        dg.AssetSpec(
            "register_reads",
            deps=[supplies],
            description=(
                "Daily cumulative register reads (kWh delivered and received) at local midnight, the basis of "
                "billing; the register difference over a bill period equals the billed kWh."
            ),
            group_name="meter_data",
            kinds={"duckdb"},
            owners=["team:data-engineering"],
            partitions_def=daily_partitions,
        ),
    ],
    backfill_policy=dg.BackfillPolicy.single_run(),
    pool="warehouse",
)
def meter_readings(context: dg.AssetExecutionContext, backend: BackendResource, warehouse: WarehouseResource):
    """Pull `get MeterReadings` replies for every supply over the partition window and upsert them."""
    window = context.partition_time_window
    start, end = window.start.astimezone(dt.timezone.utc), window.end.astimezone(dt.timezone.utc)
    chunk_days = int(os.environ.get("AMI_FETCH_DAYS", "31"))
    batch_size = int(os.environ.get("AMI_FETCH_USAGE_POINTS", "200"))
    client = backend.client()
    with warehouse.connect() as con:
        usage_points = queries.supply_usage_points(con)["usage_point_mrid"].to_list()
    totals, unknown = pull_meter_readings(
        client, warehouse.connect, usage_points, start, end, chunk_days=chunk_days, batch_size=batch_size,
        on_chunk=lambda chunk_end: context.log.info("Loaded meter readings up to %s", chunk_end.isoformat()),
    )
    if unknown:
        context.log.warning("Readings for %d unknown usage points were not loaded: %s", len(unknown), sorted(unknown)[:20])
    window_meta = {
        "window_start": window.start.isoformat(),
        "window_end": window.end.isoformat(),
        "supplies": len(usage_points),
        "unknown_usage_points": len(unknown),
    }
    for key, asset_key in (("intervals", "interval_readings"), ("registers", "register_reads")):
        inserted, updated, unchanged = totals[key]
        yield dg.MaterializeResult(
            asset_key=asset_key,
            metadata={
                **window_meta,
                "dagster/row_count": inserted + updated + unchanged,
                "inserted": inserted,
                "updated": updated,
                "unchanged": unchanged,
            },
        )


@dg.asset(
    deps=["interval_readings"],
    partitions_def=daily_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
    group_name="rollups",
    kinds={"duckdb"},
    owners=["team:data-engineering"],
    pool="warehouse",
    check_specs=checks.specs("daily_consumption", checks.DAILY_CHECKS),
)
def daily_consumption(context: dg.AssetExecutionContext, warehouse: WarehouseResource) -> dg.MaterializeResult:
    """Energy per supply, flow and local day (America/Santiago), with the number of intervals received against
    the number expected that day (96; 100 or 92 on clock-change days) and the day's worst quality. Rebuilt by
    delete-then-insert of the partition's days in one transaction.

    Its checks judge the interval readings of the same days; the blocking ones (overlaps, implausible values)
    stop the monthly rollup and the publish of the run, so bad data never reaches customers."""
    window = context.partition_time_window
    first_day = window.start.date()
    last_day = (window.end - dt.timedelta(hours=12)).date()
    with warehouse.connect() as con:
        rows = rollups.rebuild_daily(con, first_day, last_day)
        outcomes = checks.evaluate_daily(con, first_day, last_day)
        preview = con.sql(
            "SELECT supply_id, flow, local_date, CAST(kwh AS DOUBLE) AS kwh, intervals, expected_intervals, quality "
            "FROM daily_consumption WHERE local_date BETWEEN ? AND ? ORDER BY local_date DESC, supply_id, flow "
            "LIMIT 5",
            params=[first_day, last_day],
        ).pl()
    failed = checks.blocking_failures(outcomes)
    if failed:
        context.log.error("Blocking checks failed for %s..%s: %s; the publish of this run will not happen",
                          first_day, last_day, ", ".join(failed))
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": rows,
            "first_day": first_day.isoformat(),
            "last_day": last_day.isoformat(),
            "preview": dg.MetadataValue.md(checks.markdown(preview.to_dicts())),
        },
        check_results=checks.daily_results("daily_consumption", outcomes),
    )


@dg.asset(
    deps=[daily_consumption],
    group_name="rollups",
    kinds={"duckdb"},
    owners=["team:data-engineering"],
    pool="warehouse",
)
def monthly_consumption(warehouse: WarehouseResource) -> dg.MaterializeResult:
    """Energy per supply, flow and calendar month (local), rebuilt from `daily_consumption`."""
    with warehouse.connect() as con:
        span = queries.daily_consumption_span(con)
        if span is None:
            return dg.MaterializeResult(metadata={"dagster/row_count": 0})
        first_day, last_day = span
        rows = rollups.rebuild_monthly(con, first_day.replace(day=1), last_day.replace(day=1))
    return dg.MaterializeResult(
        metadata={"dagster/row_count": rows, "first_month": str(first_day)[:7], "last_month": str(last_day)[:7]}
    )
