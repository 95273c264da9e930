"""A backfill killed with SIGKILL in the middle of a partition range, then re-run, leaves the warehouse identical
to an uninterrupted run (DuckDB replays its WAL; every load is an idempotent upsert, every rollup a
delete-then-insert of its days in one transaction)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import duckdb

from tests.conftest import ROOT, start_simulator

NOW = "2026-09-10T15:00:00+00:00"
RANGE = ("2026-08-28", "2026-09-08")
TABLES = {
    "interval_readings": "SELECT supply_id, flow, interval_seconds, interval_end, kwh, quality, quality_codes "
                         "FROM interval_readings ORDER BY ALL",
    "register_reads": "SELECT supply_id, flow, read_at, kwh, quality FROM register_reads ORDER BY ALL",
    "daily_consumption": "SELECT * FROM daily_consumption ORDER BY ALL",
    "monthly_consumption": "SELECT * FROM monthly_consumption ORDER BY ALL",
    "interval_reading_versions": "SELECT count(*) FROM interval_reading_versions",
    "customers": "SELECT customer_id, name FROM customers ORDER BY ALL",
    "supplies": "SELECT supply_id, usage_point_mrid FROM supplies ORDER BY ALL",
}


def _backfill(env, output, **popen):
    with open(output, "wb") as handle:
        return subprocess.Popen(
            [sys.executable, "-m", "ami_portal.cli", "backfill", "--from", RANGE[0], "--to", RANGE[1],
             "--chunk-days", "30"],
            env=env, cwd=ROOT, stdout=handle, stderr=subprocess.STDOUT, **popen,
        )


def _env(data_dir, backend):
    return dict(
        os.environ, AMI_DATA_DIR=str(data_dir), DAGSTER_HOME=str(data_dir / "dagster"), AMI_BACKEND_URL=backend,
        AMI_PARTITIONS_START="2026-08-01",
        # Many small requests, each committed on its own: the kill lands between commits of one partition range.
        AMI_FETCH_DAYS="1", AMI_FETCH_USAGE_POINTS="1",
    )


def _dump(data_dir):
    con = duckdb.connect(str(data_dir / "warehouse.duckdb"), read_only=True)
    try:
        return {table: con.execute(sql).fetchall() for table, sql in TABLES.items()}
    finally:
        con.close()


def _mdm_calls(log_path) -> int:
    try:
        return log_path.read_text(errors="replace").count("service=mdm")
    except FileNotFoundError:
        return 0


def test_sigkill_mid_partition_then_rerun_equals_uninterrupted_run(tmp_path):
    logs = tmp_path / "logs"
    service, backend = start_simulator(logs, seed=13, supplies=2, months=1, now=NOW)
    try:
        reference = tmp_path / "reference"
        done = _backfill(_env(reference, backend), tmp_path / "reference.log")
        assert done.wait(300) == 0, (tmp_path / "reference.log").read_text()[-3000:]
        expected = _dump(reference)
        assert len(expected["interval_readings"]) > 2 * 11 * 96

        killed_dir = tmp_path / "killed"
        calls_before = _mdm_calls(service.log_path)
        victim = _backfill(_env(killed_dir, backend), tmp_path / "killed.log", start_new_session=True)
        deadline = time.monotonic() + 120
        # One request per supply and day (12 days x 2 supplies): kill after a third of them were served.
        while _mdm_calls(service.log_path) - calls_before < 8 and time.monotonic() < deadline:
            assert victim.poll() is None, (tmp_path / "killed.log").read_text()[-3000:]
            time.sleep(0.05)
        os.killpg(victim.pid, signal.SIGKILL)
        victim.wait(30)
        assert victim.returncode == -signal.SIGKILL

        partial = _dump(killed_dir)
        assert 0 < len(partial["interval_readings"]) < len(expected["interval_readings"])

        rerun = _backfill(_env(killed_dir, backend), tmp_path / "rerun.log")
        assert rerun.wait(300) == 0, (tmp_path / "rerun.log").read_text()[-3000:]
        # The killed run held the warehouse pool's slot; the re-run marked it failed and freed it.
        assert "which is gone: marked failed" in (tmp_path / "rerun.log").read_text()
        assert _dump(killed_dir) == expected
    finally:
        for process in (locals().get("done"), locals().get("victim"), locals().get("rerun")):
            if process is not None and process.poll() is None:
                process.kill()
                process.wait()
        service.stop()
