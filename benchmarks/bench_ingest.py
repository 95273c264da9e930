"""Ingest throughput and memory: XML bytes to committed warehouse rows, against a bare `lxml.etree.parse` of the
same file in the same run.

A MeterReadings ResponseMessage of about `AMI_BENCH_INGEST_MB` MB (default 200; set 1024 for the 1 GB figure) is
written with `cim_ingest.writer` (15-minute delivered readings for many usage points). Then, in rounds
(`AMI_BENCH_INGEST_ROUNDS`, default 5), each step in a fresh process so peak RSS (`resource.getrusage`) belongs to
one step only:
- baseline: `lxml.etree.parse(path)` (the whole tree, nothing else);
- parse only: `cim_ingest.parallel_meter_readings` over the file (typed frames, nothing written), to show how the
  ingest's time splits between parsing and the warehouse;
- ingest: `pipelines.file_ingest.ingest_files` into a fresh copy of a warehouse that knows the usage points
  (pieces parsed on threads, spooled to Parquet, merged and rolled up in one transaction, commit, move to
  processed/).
The steps alternate within each round, so a slow spell of a noisy machine hits both sides; the ratio reported is
that of the medians (each round's own ratio is printed too). Printed: sizes, seconds, the ingest/parse ratio,
readings per second, peak RSS of each step, and the writer's own speed. `AMI_BENCH_SKIP_BARE=1` skips the
baseline (it holds the whole tree: several GB for 1 GB of XML).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

READINGS_PER_MB = 9_800  # ~107 bytes per 15-minute reading as the writer writes them
DAYS = 10


def _write_message(path: Path, target_mb: int) -> tuple[int, int, float]:
    from cim_ingest.writer import READING_TYPE_15MIN_DELIVERED, IntervalBlockOut, MeterReadingOut, ReplyHeader
    from cim_ingest.writer import iter_meter_readings_response

    per_point = DAYS * 96
    usage_points = max(1, target_mb * READINGS_PER_MB // per_point)
    start = int(dt.datetime(2026, 3, 1, 3, tzinfo=dt.timezone.utc).timestamp())
    ends = np.arange(start + 900, start + 900 * (per_point + 1), 900, dtype=np.int64)
    rng = np.random.default_rng(7)

    def readings():
        for index in range(usage_points):
            yield MeterReadingOut(
                f"00000000-0000-4000-8000-{index:012d}", f"10000000-0000-4000-8000-{index:012d}",
                [IntervalBlockOut(READING_TYPE_15MIN_DELIVERED, ends, values_wh=rng.integers(0, 900, per_point))],
            )

    header = ReplyHeader(noun="MeterReadings", correlation_id="bench", source="BENCH", message_id="bench-1",
                         timestamp=dt.datetime(2026, 3, 20, tzinfo=dt.timezone.utc))
    started = time.perf_counter()
    with open(path, "wb") as handle:
        for chunk in iter_meter_readings_response(header, readings()):
            handle.write(chunk)
    return usage_points, usage_points * per_point, time.perf_counter() - started


def _seed(data_dir: Path, usage_points: int) -> None:
    import polars as pl

    from warehouse import loads
    from warehouse.db import connect

    con = connect(data_dir / "warehouse.duckdb")
    try:
        loads.upsert_customers(con, pl.DataFrame({"customer_id": ["C000001"], "client_number": ["10000001"],
                                                  "name": ["Bench"], "rut": ["1-9"], "email": ["b@example.cl"]}))
        ids = range(usage_points)
        loads.upsert_supplies(con, pl.DataFrame({
            "supply_id": [f"{30000000 + i}" for i in ids],
            "usage_point_mrid": [f"00000000-0000-4000-8000-{i:012d}" for i in ids],
            "meter_mrid": [f"10000000-0000-4000-8000-{i:012d}" for i in ids],
            "customer_id": ["C000001"] * usage_points, "address": ["-"] * usage_points,
            "comuna": ["Santiago"] * usage_points, "tariff": ["BT1"] * usage_points,
            "status": ["active"] * usage_points, "has_solar": [False] * usage_points,
        }))
    finally:
        con.close()


_BARE = """
import json, resource, sys, time
from lxml import etree
started = time.perf_counter()
tree = etree.parse(sys.argv[1])
seconds = time.perf_counter() - started
print(json.dumps({"seconds": seconds, "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""

_PARSE_ONLY = """
import json, sys, time
from pathlib import Path
from cim_ingest.parallel_meter_readings import iter_meter_readings_batches
started = time.perf_counter()
readings = sum(batch.intervals.height for batch in iter_meter_readings_batches(Path(sys.argv[1])))
print(json.dumps({"seconds": time.perf_counter() - started, "readings": readings}))
"""

_INGEST = """
import json, resource, sys, time
from pathlib import Path
from pipelines.file_ingest import ingest_files

started = time.perf_counter()
[outcome] = ingest_files([Path(sys.argv[1])], Path(sys.argv[2]))
seconds = time.perf_counter() - started
assert outcome.status == "processed", outcome.reason
print(json.dumps({"seconds": seconds, "readings": outcome.readings,
                  "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def _measure(code: str, *args: str) -> dict:
    root = Path(__file__).resolve().parent.parent
    result = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, cwd=root)
    if result.returncode != 0:
        raise RuntimeError(result.stderr[-2000:])
    return json.loads(result.stdout.strip().splitlines()[-1])


def _ingest_once(path: Path, seeded: Path, work: Path) -> dict:
    """One ingest of the message into a fresh copy of the seeded warehouse (the ingest moves its file away)."""
    data_dir = work / "data"
    shutil.rmtree(data_dir, ignore_errors=True)
    shutil.copytree(seeded, data_dir)
    inbox = work / "inbox" / path.name
    os.link(path, inbox)  # the ingest moves its input to processed/; the message itself stays for the next round
    try:
        return _measure(_INGEST, str(inbox), str(data_dir))
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)
        inbox.unlink(missing_ok=True)


def main() -> None:
    from cim_ingest.parallel_meter_readings import WORKERS

    target_mb = int(os.environ.get("AMI_BENCH_INGEST_MB", "200"))
    rounds = max(1, int(os.environ.get("AMI_BENCH_INGEST_ROUNDS", "5")))
    skip_bare = os.environ.get("AMI_BENCH_SKIP_BARE") == "1"
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}")
    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as tmp:
        work = Path(tmp)
        path = work / "message" / "big.xml"
        path.parent.mkdir()
        (work / "inbox").mkdir()
        usage_points, readings, write_seconds = _write_message(path, target_mb)
        size_mb = path.stat().st_size / 1e6
        print(f"message: {size_mb:,.0f} MB, {readings:,} readings, {usage_points:,} usage points x {DAYS} days")
        print(f"writer: {write_seconds:.1f} s, {readings / write_seconds:,.0f} readings/s")
        seeded = work / "seeded"
        _seed(seeded, usage_points)
        bare_runs, parse_runs, ingest_runs = [], [], []
        for number in range(1, rounds + 1):
            bare = None if skip_bare else _measure(_BARE, str(path))
            parse_only = _measure(_PARSE_ONLY, str(path))
            ingest = _ingest_once(path, seeded, work)
            assert ingest["readings"] == readings, ingest
            parts = [f"parse only {parse_only['seconds']:.2f} s",
                     f"ingest {ingest['seconds']:.2f} s (peak RSS {ingest['rss_mb']:,.0f} MB)"]
            if bare is not None:
                bare_runs.append(bare)
                parts.insert(0, f"bare parse {bare['seconds']:.2f} s (peak RSS {bare['rss_mb']:,.0f} MB)")
                parts[-1] += f"; ratio {ingest['seconds'] / bare['seconds']:.2f}x"
            print(f"round {number}: " + ", ".join(parts), flush=True)
            parse_runs.append(parse_only)
            ingest_runs.append(ingest)
        ingest_s = statistics.median(run["seconds"] for run in ingest_runs)
        parse_s = statistics.median(run["seconds"] for run in parse_runs)
        rss = max(run["rss_mb"] for run in ingest_runs)
        print(f"parse only (pieces on {WORKERS} threads, no warehouse), median: {parse_s:.2f} s")
        print(f"ingest to committed rows, median: {ingest_s:.2f} s, {readings:,} readings; peak RSS {rss:,.0f} MB "
              f"(the ingest process, parse threads included; highest of {rounds} rounds)")
        print(f"ingest throughput: {readings / ingest_s:,.0f} readings/s, {size_mb / ingest_s:.1f} MB/s")
        if bare_runs:
            bare_s = statistics.median(run["seconds"] for run in bare_runs)
            bare_rss = max(run["rss_mb"] for run in bare_runs)
            print(f"bare lxml.etree.parse, median: {bare_s:.2f} s, peak RSS {bare_rss:,.0f} MB")
            print(f"ratio parse only / bare parse: {parse_s / bare_s:.2f}x")
            print(f"ratio ingest / bare parse (medians of {rounds} rounds): {ingest_s / bare_s:.2f}x (goal <= 1.5x); "
                  f"memory ingest / bare parse: {rss / bare_rss:.2f}x")


if __name__ == "__main__":
    main()
