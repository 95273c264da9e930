"""Pipeline benchmarks: scale of a backfill through Dagster's multiprocess executor, publish cost after a one-day
increment against a full rebuild, and freshness of a reading pushed to the inbox until the portal's JSON API
serves it (Dagster daemon + inbox sensor + gunicorn, all real processes).

Sizes (environment): BENCH_SUPPLIES (default 40) x BENCH_MONTHS (default 13) for the scale run, which keeps the
default run under ~3 minutes on a shared 2-core machine; 10,000 x 13 is the target size and runs with
BENCH_SUPPLIES=10000 BENCH_SCALE_ONLY=1 (72 minutes and a 15 GB peak here); BENCH_SCALE_ONLY=1 runs the scale run
alone. It prints wall time,
readings/s, per-step times, the peak resident memory of the largest pipeline process, and an extrapolation to
10,000 supplies (labelled, not measured). BENCH_PUSHES (default 5) inbox pushes for freshness.
BENCH_PUBLISH_SUPPLIES (default 500) sizes a synthetic warehouse for the publish-cost comparison at scale.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NOW = "2026-09-10T15:00:00+00:00"
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
DELIVERED_15MIN = "0.0.2.4.1.1.12.0.0.0.0.0.0.0.0.3.72.0"


class _PeakMemory:
    """Samples, every `interval` seconds, the peak resident memory (VmHWM, a high-water mark kept by the kernel,
    so short spikes are not missed) of this process and of every process descending from it: the run's step
    processes whatever started them (spawn or a forkserver). `labels` names known pids (the simulator)."""

    def __init__(self, labels: dict[int, str], interval: float = 0.5):
        import threading

        self.labels = labels
        self.interval = interval
        self.peaks: dict[int, tuple[int, str]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="peak-memory", daemon=True)

    def __enter__(self) -> "_PeakMemory":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def _sample(self) -> None:
        parents: dict[int, int] = {}
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    parents[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
                except (OSError, IndexError, ValueError):
                    continue
        family, frontier = {os.getpid()}, [os.getpid()]
        while frontier:
            parent = frontier.pop()
            children = [pid for pid, ppid in parents.items() if ppid == parent and pid not in family]
            family.update(children)
            frontier.extend(children)
        for pid in family:
            try:
                status = Path(f"/proc/{pid}/status").read_text()
                argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            hwm_kb = next((int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM:")), 0)
            command = b" ".join(argv).decode(errors="replace")
            label = self.labels.get(pid) or (
                "run coordinator" if pid == os.getpid() else "fork server" if "forkserver import main" in command
                else "step process" if "multiprocess" in command or "forkserver" in command else command[:60])
            if hwm_kb > self.peaks.get(pid, (0, ""))[0]:
                self.peaks[pid] = (hwm_kb, label)

    def largest(self, exclude: set[int] = frozenset()) -> tuple[float, str]:
        """(MB, label) of the process with the highest peak, leaving out `exclude`."""
        kb, label = max((peak for pid, peak in self.peaks.items() if pid not in exclude), default=(0, "-"))
        return kb / 1024, label

    def relabel(self, labels: dict[int, str]) -> None:
        """Name processes known only after the fact (a step's pid from the run's event log)."""
        for pid, name in labels.items():
            if pid in self.peaks:
                self.peaks[pid] = (self.peaks[pid][0], name)


def _step_seconds(instance, run_id: str, step_pids: dict[int, str] | None = None) -> dict[str, float]:
    """Wall seconds of each step of a run, from its event log (start to success or failure); fills `step_pids`
    with the process id that ran each step."""
    started, seconds = {}, {}
    for record in instance.all_logs(run_id):
        event = record.dagster_event
        if event is None or event.step_key is None:
            continue
        if event.event_type_value == "STEP_START":
            started[event.step_key] = record.timestamp
            if step_pids is not None and event.pid is not None:
                step_pids[event.pid] = f"step {event.step_key}"
        elif event.event_type_value in ("STEP_SUCCESS", "STEP_FAILURE") and event.step_key in started:
            seconds[event.step_key] = record.timestamp - started[event.step_key]
    return seconds


TARGET_SUPPLIES = 10_000


def _scale(data_dir: Path, simulator_pid: int, supplies: int, months: int) -> None:
    import dagster as dg

    from pipelines.jobs import partition_range_tags

    first_day = dt.date(2026, 9, 10) - dt.timedelta(days=round(months * 30.44)) + dt.timedelta(days=2)
    last_day = dt.date(2026, 9, 9)
    with dg.DagsterInstance.get() as instance:
        from pipelines.definitions import all_assets
        from pipelines.resources import default_resources

        assert dg.materialize(all_assets, instance=instance, resources=default_resources(),
                              selection=["customers", "supplies"], run_config=QUIET).success
        with _PeakMemory({simulator_pid: "simulator"}) as memory:
            started = time.monotonic()
            # The job definition is reconstructed in each step's own process: the job's multiprocess executor
            # (pipelines.jobs.STEP_EXECUTOR), as in scheduled runs.
            result = dg.execute_job(
                dg.reconstructable(_job), instance=instance,
                tags=partition_range_tags(first_day, last_day), run_config=QUIET,
            )
            seconds = time.monotonic() - started
        assert result.success, "scale run failed"
        step_pids: dict[int, str] = {}
        steps = _step_seconds(instance, result.run_id, step_pids)
        memory.relabel(step_pids)
        # A range run records one materialization per partition, each with the run's totals: take one.
        readings = max(
            (int(event.materialization.metadata["dagster/row_count"].value)
             for event in result.get_asset_materialization_events()
             if event.asset_key == dg.AssetKey("interval_readings")),
            default=0,
        )
    warehouse_bytes = (data_dir / "warehouse.duckdb").stat().st_size
    pipeline_mb, pipeline_process = memory.largest(exclude={simulator_pid})
    simulator_mb, _ = memory.largest(exclude=set(memory.peaks) - {simulator_pid})
    by_step = {pid: memory.peaks[pid] for pid in step_pids if pid in memory.peaks}
    print(f"scale: {supplies:,} supplies x {months} months ({first_day}..{last_day}), {readings:,} interval readings, "
          f"multiprocess executor (2 step processes at a time, forked from a preloaded server)")
    print(f"scale: wall time {seconds:.1f} s (pull, load, rollups, checks, publish, export), "
          f"{readings / seconds:,.0f} readings/s, peak memory {pipeline_mb:,.0f} MB (largest pipeline process: "
          f"{pipeline_process}); simulator {simulator_mb:,.0f} MB; warehouse file {warehouse_bytes / 2**20:,.0f} MB")
    step_total = sum(steps.values())
    print("scale: steps " + ", ".join(f"{name} {value:.1f} s" for name, value in steps.items())
          + f"; run overhead outside steps {seconds - step_total:.1f} s")
    print("scale: peak memory by step " + ", ".join(
        f"{label.removeprefix('step ')} {kb / 1024:,.0f} MB" for kb, label in by_step.values()))
    if supplies < TARGET_SUPPLIES and readings:
        # Part of each step is per partition (Dagster events for 395 days), not per reading, so this leans high;
        # memory of the DuckDB steps at that size is not extrapolated.
        factor = TARGET_SUPPLIES / supplies
        print(f"scale: EXTRAPOLATION, not a measurement, to {TARGET_SUPPLIES:,} supplies x {months} months: "
              f"~{readings * factor / 1e6:,.0f} M readings; whole step times x{factor:,.0f} plus the same overhead: "
              f"~{(step_total * factor + seconds - step_total) / 3600:.1f} h on this machine if every step stays "
              f"linear in readings; warehouse file "
              f"~{warehouse_bytes * factor / 2**30:,.0f} GB")


def _job():
    from pipelines.definitions import defs

    return defs.resolve_job_def("recent_meter_data_job")


def _publish_cost(data_dir: Path) -> None:
    import dagster as dg

    from pipelines.definitions import all_assets
    from pipelines.jobs import partition_range_tags
    from pipelines.resources import default_resources
    from warehouse.db import connect
    from warehouse.publish import publish_read_model

    con = connect(data_dir / "warehouse.duckdb")
    try:
        full_dir = Path(tempfile.mkdtemp(prefix="bench-full-"))
        full = publish_read_model(con, full_dir)
        shutil.rmtree(full_dir)
    finally:
        con.close()
    # One-day increment: re-pull the last day (the lookback of a scheduled run does this), then publish.
    with dg.DagsterInstance.get() as instance:
        day = dt.date(2026, 9, 9)
        assert dg.materialize(all_assets, instance=instance, resources=default_resources(),
                              selection=["interval_readings", "register_reads", "daily_consumption"],
                              tags=partition_range_tags(day, day), run_config=QUIET).success
    con = connect(data_dir / "warehouse.duckdb")
    try:
        # the day really changed, as a load changes it: the new value stamped with its load instant
        con.execute("UPDATE interval_readings SET kwh = kwh + 0.001, loaded_at = now() WHERE interval_end = "
                    "(SELECT max(interval_end) FROM interval_readings)")
        incremental = publish_read_model(con, data_dir / "readmodel")
    finally:
        con.close()
    print(f"publish: full rebuild {full.seconds:.2f} s ({full.parts_written} month files, "
          f"{full.row_counts['intervals']:,} intervals); after a one-day increment {incremental.seconds:.2f} s "
          f"({'incremental' if incremental.incremental else 'full scan'}: {incremental.parts_written} written, "
          f"{incremental.parts_reused} reused, {incremental.daily_recent_months} recent daily months): "
          f"{full.seconds / max(incremental.seconds, 1e-9):.1f}x faster")


def _publish_scale(supplies: int) -> None:
    """Publish cost on a synthetic warehouse (no simulator, so it reaches sizes the pull cannot here): 13 months
    of 15-minute delivered readings for `supplies` supplies, loaded a month at a time as loads would (each with
    its own `loaded_at`); full rebuild vs after appending one day vs after a correction in a closed month."""
    from warehouse import rollups
    from warehouse.db import connect
    from warehouse.publish import publish_read_model

    work = Path(tempfile.mkdtemp(prefix="bench-publish-"))
    try:
        con = connect(work / "warehouse.duckdb")
        con.execute("SET enable_progress_bar = false")
        first_end = dt.datetime(2025, 8, 1, 4, 15, tzinfo=dt.timezone.utc)
        days = 395
        con.execute(
            "INSERT INTO supplies SELECT (30000000 + i)::VARCHAR, 'up-' || i, 'm-' || i, 'C' || lpad(i::VARCHAR, 6, '0'), "
            "'Calle 1', 'Santiago', 'BT1', 'active', false, now() FROM range(1, ? + 1) t(i)", [supplies])
        insert = (
            "INSERT INTO interval_readings SELECT (30000000 + i)::VARCHAR, 'up-' || i, 'delivered', 'rt', "
            "?::TIMESTAMPTZ + to_minutes(15 * k), 900, (0.05 + (hash(i, k) % 400) / 1000.0)::DECIMAL(18, 6), "
            "'actual', '1.0.0', 'bench', now(), NULL FROM range(?, ?) s(k), range(1, ? + 1) t(i)"
        )
        for first_day in range(0, days, 30):
            con.execute(insert, [first_end, 96 * first_day, 96 * min(first_day + 30, days), supplies])
        rows = con.execute("SELECT count(*) FROM interval_readings").fetchall()[0][0]
        rollups.rebuild_daily(con, dt.date(2025, 8, 1), dt.date(2026, 8, 30))  # the 395 local days loaded
        full = publish_read_model(con, work / "readmodel")
        # One more day arrives (the running month changes), then publish again.
        con.execute(insert, [first_end, 96 * days, 96 * (days + 1), supplies])
        rollups.rebuild_daily(con, dt.date(2026, 8, 31), dt.date(2026, 8, 31))
        incremental = publish_read_model(con, work / "readmodel")
        # A correction of one interval in a closed month, stamped as a load stamps it.
        con.execute("UPDATE interval_readings SET kwh = kwh + 1, quality = 'edited', loaded_at = now() "
                    "WHERE supply_id = '30000001' AND interval_end = TIMESTAMPTZ '2025-10-15 12:00:00+00'")
        rollups.rebuild_daily(con, dt.date(2025, 10, 15), dt.date(2025, 10, 15))
        corrected = publish_read_model(con, work / "readmodel")
        con.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"publish at {supplies} supplies x 13 months ({rows:,} intervals, synthetic): full rebuild "
          f"{full.seconds:.1f} s ({full.parts_written} month files + daily base); after a one-day increment "
          f"{incremental.seconds:.1f} s ({incremental.parts_written} written, {incremental.parts_reused} reused): "
          f"{full.seconds / max(incremental.seconds, 1e-9):.1f}x faster; after a correction in a closed month "
          f"{corrected.seconds:.1f} s ({corrected.parts_written} written, {corrected.daily_recent_months} daily "
          f"months beside the base)")


def _freshness(data_dir: Path, pushes: int) -> None:
    import csv

    import dagster as dg  # noqa: F401 - fail early if missing

    from ami_portal.run import DAGSTER_YAML
    from cim_ingest.writer import IntervalBlockOut, MeterReadingOut, ReplyHeader, iter_meter_readings_response
    from tests.conftest import VENV_BIN, Service, login, start_portal

    (data_dir / "dagster" / "dagster.yaml").write_text(DAGSTER_YAML)
    for sub in ("inbox", "processed", "quarantine"):
        (data_dir / sub).mkdir(exist_ok=True)
    env = dict(os.environ, AMI_INBOX_SENSOR_SECONDS="2", AMI_PULL_CRON="0 3 1 1 *")
    subprocess.run([sys.executable, "-m", "ami_portal.cli", "users", "create-demo"], env=env, cwd=ROOT, check=True,
                   capture_output=True)
    with open(data_dir / "demo-accounts.csv", newline="", encoding="utf-8") as handle:
        account = next(csv.DictReader(handle))
    supply_id = account["supply_ids"].split(";")[0]
    import duckdb

    snapshot = data_dir / "readmodel" / (data_dir / "readmodel" / "CURRENT").read_text().strip()
    with duckdb.connect(str(snapshot), read_only=True) as con:
        usage_point, meter = con.execute(
            "SELECT usage_point_mrid, meter_mrid FROM supplies WHERE supply_id = ?", [supply_id]).fetchall()[0]
    daemon = Service("dagster-daemon", [str(VENV_BIN / "dagster-daemon"), "run", "-w", str(ROOT / "workspace.yaml")],
                     env, data_dir / "logs")
    portal, url = start_portal(data_dir, data_dir / "logs")
    latencies = []
    try:
        client = login(url, account["email"], account["password"])
        time.sleep(15)  # let the daemon load the code location and start the sensor
        for index in range(pushes):
            interval_end = dt.datetime(2026, 9, 9, 12, 0, tzinfo=dt.timezone.utc) + dt.timedelta(minutes=15 * index)
            value = f"{5 + index}.{index + 1:03d}"
            header = ReplyHeader(noun="MeterReadings", correlation_id=f"bench-{index}", source="BENCH",
                                 message_id=f"bench-{index}-{time.time_ns()}", timestamp=dt.datetime.now(dt.timezone.utc))
            block = IntervalBlockOut(DELIVERED_15MIN, ends=[interval_end], values=[value])
            staging = data_dir / f".push-{index}.xml"
            with open(staging, "wb") as handle:
                for chunk in iter_meter_readings_response(header, [MeterReadingOut(usage_point, meter, [block])]):
                    handle.write(chunk)
            pushed = time.monotonic()
            os.replace(staging, data_dir / "inbox" / f"push-{index}.xml")
            expected_end = interval_end.astimezone(dt.timezone.utc)
            while time.monotonic() - pushed < 180:
                body = client.get(f"/api/v1/supplies/{supply_id}/consumption",
                                  params={"granularity": "15min", "from": "2026-09-09", "to": "2026-09-10"}).json()
                seen = [p for p in body["points"]
                        if dt.datetime.fromisoformat(p["end"]).astimezone(dt.timezone.utc) == expected_end]
                if seen and seen[0]["kwh"] is not None and abs(seen[0]["kwh"] - float(value)) < 1e-6:
                    latencies.append(time.monotonic() - pushed)
                    break
                time.sleep(0.25)
            else:
                latencies.append(float("inf"))
    finally:
        portal.stop()
        daemon.stop()
    finite = [value for value in latencies if value != float("inf")]
    print(f"freshness: {len(finite)}/{pushes} pushes visible in the JSON API; median "
          f"{statistics.median(latencies):.1f} s, worst {max(latencies):.1f} s (target 60 s)")


def main() -> None:
    supplies = int(os.environ.get("BENCH_SUPPLIES", "40"))
    months = int(os.environ.get("BENCH_MONTHS", "13"))
    pushes = int(os.environ.get("BENCH_PUSHES", "5"))
    work = Path(tempfile.mkdtemp(prefix="bench-pipelines-"))
    data_dir = work / "data"
    (data_dir / "dagster").mkdir(parents=True)
    from tests.conftest import start_simulator

    simulator, backend = start_simulator(work / "logs", seed=42, supplies=supplies, months=months, now=NOW)
    first_partition = (dt.date(2026, 9, 10) - dt.timedelta(days=round(months * 30.44) + 5)).isoformat()
    os.environ.update(AMI_DATA_DIR=str(data_dir), DAGSTER_HOME=str(data_dir / "dagster"), AMI_BACKEND_URL=backend,
                      AMI_PARTITIONS_START=first_partition)
    from ami_portal.run import DAGSTER_YAML

    (data_dir / "dagster" / "dagster.yaml").write_text(DAGSTER_YAML)
    scale_only = os.environ.get("BENCH_SCALE_ONLY") == "1"  # a big scale run without the other measurements
    try:
        _scale(data_dir, simulator.process.pid, supplies, months)
        if not scale_only:
            _publish_cost(data_dir)
            _freshness(data_dir, pushes)
    finally:
        simulator.stop()
        shutil.rmtree(work, ignore_errors=True)
    if not scale_only:
        _publish_scale(int(os.environ.get("BENCH_PUBLISH_SUPPLIES", "500")))


if __name__ == "__main__":
    main()
