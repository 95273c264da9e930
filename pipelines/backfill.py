"""Backfill of any range of local days from the command line (`ami-portal backfill --from D --to D`).

The range is cut into chunks of `chunk_days` days; each chunk is one Dagster run over its partition range (the
meter-data assets have a single-run backfill policy), recorded in the instance so the UI shows it, and progress is
reported after each chunk. A final run rebuilds the monthly rollup of the touched months and publishes once. A
backfill launched from the Dagster UI (Materialize, choose partitions) runs the same assets; the next scheduled
pull (at most 15 minutes later) publishes it, or materialize `monthly_consumption` and `read_model` by hand.
"""

from __future__ import annotations

import datetime as dt
import os
import socket
import time
from typing import Callable

import dagster as dg

from pipelines.jobs import partition_range_tags
from pipelines.partitions import daily_partitions

MASTER_DATA = ["customers", "supplies"]
PARTITIONED = ["interval_readings", "register_reads", "daily_consumption"]
FINAL = ["monthly_consumption", "read_model"]
_QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


def chunks(first_day: dt.date, last_day: dt.date, chunk_days: int) -> list[tuple[dt.date, dt.date]]:
    """Consecutive (first, last) day ranges of at most `chunk_days` days covering first..last."""
    if last_day < first_day:
        raise ValueError(f"--to {last_day} is before --from {first_day}")
    if chunk_days < 1:
        raise ValueError("chunk_days must be at least 1")
    ranges, cursor = [], first_day
    while cursor <= last_day:
        end = min(cursor + dt.timedelta(days=chunk_days - 1), last_day)
        ranges.append((cursor, end))
        cursor = end + dt.timedelta(days=1)
    return ranges


def _process_tags() -> dict[str, str]:
    """Tags naming the process that runs in-process runs, so a later command can tell a dead run from a live one."""
    return {"ami/pid": str(os.getpid()), "ami/host": socket.gethostname()}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def recover_orphaned_runs(instance: dg.DagsterInstance, report: Callable[[str], None] = print) -> list[str]:
    """Mark as failed the runs a command of this host started in process and that died without ending (killed),
    and free the concurrency slots they held: otherwise the next run would wait forever for the `warehouse`
    pool. Returns the run ids recovered."""
    recovered = []
    unfinished = [dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.CANCELING]
    for run in instance.get_runs(filters=dg.RunsFilter(statuses=unfinished)):
        pid, host = run.tags.get("ami/pid"), run.tags.get("ami/host")
        if pid is None or host != socket.gethostname() or int(pid) == os.getpid() or _alive(int(pid)):
            continue
        instance.report_run_failed(run, f"Process {pid} that ran it is gone (killed); marked failed on restart.")
        instance.event_log_storage.free_concurrency_slots_for_run(run.run_id)
        report(f"run {run.run_id[:8]} was left unfinished by process {pid}, which is gone: marked failed")
        recovered.append(run.run_id)
    return recovered


def _has_supplies(resources: dict) -> bool:
    with resources["warehouse"].connect() as con:
        return con.execute("SELECT count(*) FROM supplies").fetchall()[0][0] > 0


def run_backfill(
    instance: dg.DagsterInstance,
    first_day: dt.date,
    last_day: dt.date,
    resources: dict,
    chunk_days: int = 7,
    report: Callable[[str], None] = print,
    publish: bool = True,
) -> bool:
    """Materialize the meter data of first..last chunk by chunk, then the monthly rollup and the publish; return
    True when every run succeeded. Stops at the first failed chunk (re-running the command is safe: loads are
    idempotent)."""
    from pipelines.definitions import all_assets

    keys = daily_partitions.get_partition_keys()
    if first_day.isoformat() not in keys or last_day.isoformat() not in keys:
        raise ValueError(f"days {first_day}..{last_day} are outside the partitions {keys[0]}..{keys[-1]}")
    plan = chunks(first_day, last_day, chunk_days)
    started = time.monotonic()
    recover_orphaned_runs(instance, report)
    if not _has_supplies(resources):
        result = dg.materialize(all_assets, instance=instance, resources=resources, selection=MASTER_DATA,
                                tags={"ami/trigger": "backfill", **_process_tags()}, run_config=_QUIET, raise_on_error=False)
        report(f"master data (no supplies yet): run {result.run_id[:8]} {'ok' if result.success else 'FAILED'}")
        if not result.success:
            return False
    total_days = (last_day - first_day).days + 1
    done_days = 0
    readings = 0
    for index, (chunk_first, chunk_last) in enumerate(plan, 1):
        chunk_started = time.monotonic()
        result = dg.materialize(
            all_assets, instance=instance, resources=resources, selection=PARTITIONED,
            tags={**partition_range_tags(chunk_first, chunk_last), "ami/trigger": "backfill", **_process_tags()},
            run_config=_QUIET, raise_on_error=False,
        )
        seconds = time.monotonic() - chunk_started
        # A range run records one materialization per partition, each carrying the run's totals: take one.
        chunk_readings = max(
            (int(event.materialization.metadata["dagster/row_count"].value)
             for event in result.get_asset_materialization_events()
             if event.asset_key == dg.AssetKey("interval_readings")
             and "dagster/row_count" in event.materialization.metadata),
            default=0,
        )
        readings += chunk_readings
        done_days += (chunk_last - chunk_first).days + 1
        elapsed = time.monotonic() - started
        eta = elapsed / done_days * (total_days - done_days)
        report(
            f"[{index}/{len(plan)}] {chunk_first}..{chunk_last}: run {result.run_id[:8]} "
            f"{'ok' if result.success else 'FAILED'} in {seconds:.1f} s, {chunk_readings:,} interval readings "
            f"({chunk_readings / max(seconds, 1e-9):,.0f}/s); {done_days}/{total_days} days, "
            f"elapsed {elapsed:.0f} s, about {eta:.0f} s left"
        )
        if not result.success:
            report(f"Backfill stopped: see run {result.run_id} in the Dagster UI; re-run the same command to resume.")
            return False
    if publish:
        result = dg.materialize(all_assets, instance=instance, resources=resources, selection=FINAL,
                                tags={"ami/trigger": "backfill", **_process_tags()}, run_config=_QUIET, raise_on_error=False)
        report(f"monthly rollup and publish: run {result.run_id[:8]} {'ok' if result.success else 'FAILED'}")
        if not result.success:
            return False
    report(f"Backfill of {total_days} days done in {time.monotonic() - started:.0f} s, {readings:,} interval readings.")
    return True
