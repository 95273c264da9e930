"""`ami-portal backfill --from --to`: a real process against the simulator, chunked Dagster runs recorded in the
instance, progress printed per chunk, and a publish at the end."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys

import dagster as dg
import duckdb
import pytest

from pipelines.backfill import chunks
from tests.conftest import ROOT, start_simulator

NOW = "2026-09-10T15:00:00+00:00"


def test_chunks_cover_the_range_without_gaps():
    assert chunks(dt.date(2026, 9, 1), dt.date(2026, 9, 10), 4) == [
        (dt.date(2026, 9, 1), dt.date(2026, 9, 4)),
        (dt.date(2026, 9, 5), dt.date(2026, 9, 8)),
        (dt.date(2026, 9, 9), dt.date(2026, 9, 10)),
    ]
    with pytest.raises(ValueError):
        chunks(dt.date(2026, 9, 2), dt.date(2026, 9, 1), 4)


def test_backfill_command_loads_the_range_with_progress_and_publishes(tmp_path, monkeypatch):
    service, url = start_simulator(tmp_path / "logs", seed=9, supplies=2, months=1, now=NOW)
    try:
        env = dict(os.environ, AMI_DATA_DIR=str(tmp_path / "data"), AMI_BACKEND_URL=url,
                   AMI_PARTITIONS_START="2026-08-15", DAGSTER_HOME=str(tmp_path / "data" / "dagster"))
        completed = subprocess.run(
            [sys.executable, "-m", "ami_portal.cli", "backfill", "--from", "2026-09-01", "--to", "2026-09-05",
             "--chunk-days", "2"],
            env=env, cwd=ROOT, capture_output=True, text=True, timeout=300,
        )
    finally:
        service.stop()
    assert completed.returncode == 0, completed.stderr[-3000:]
    lines = completed.stdout.splitlines()
    progress = [line for line in lines if line.startswith("[")]
    assert [line.split()[0] for line in progress] == ["[1/3]", "[2/3]", "[3/3]"]
    assert "2026-09-05..2026-09-05" in progress[-1] and "5/5 days" in progress[-1]
    assert any("publish" in line and "ok" in line for line in lines)

    data = tmp_path / "data"
    con = duckdb.connect(str(data / "warehouse.duckdb"), read_only=True)
    try:
        days = con.execute("SELECT DISTINCT local_date FROM daily_consumption ORDER BY 1").fetchall()
        loaded = con.execute("SELECT count(*) FROM interval_readings").fetchall()[0][0]
    finally:
        con.close()
    assert [str(day) for (day,) in days] == [f"2026-09-0{n}" for n in range(1, 6)]
    assert (data / "readmodel" / "CURRENT").exists()
    assert f"{loaded:,} interval readings." in lines[-1]  # the progress counts what was loaded, once
    monkeypatch.setenv("DAGSTER_HOME", str(data / "dagster"))
    with dg.DagsterInstance.get() as instance:
        runs = instance.get_runs()
    assert sum(run.tags.get("ami/trigger") == "backfill" for run in runs) == 5  # master data, 3 chunks, publish
