"""Publish under concurrent reads: while materializations pull, check and publish new snapshots, several threads
hit the portal's JSON API (gunicorn, real processes) and not one request fails; the portal picks up each new
publish without a restart."""

from __future__ import annotations

import csv
import datetime as dt
import os
import subprocess
import sys
import threading

import dagster as dg

from tests.conftest import ROOT, login, start_portal, start_simulator

NOW = "2026-09-10T15:00:00+00:00"
THREADS = 4


def test_json_api_serves_without_a_single_failure_during_materializations(tmp_path, monkeypatch):
    logs = tmp_path / "logs"
    data_dir = tmp_path / "data"
    simulator, backend = start_simulator(logs, seed=21, supplies=4, months=1, now=NOW)
    portal = None
    try:
        monkeypatch.setenv("AMI_DATA_DIR", str(data_dir))
        monkeypatch.setenv("AMI_BACKEND_URL", backend)
        monkeypatch.setenv("AMI_PARTITIONS_START", "2026-08-01")
        from pipelines import definitions
        from pipelines.jobs import partition_range_tags
        from pipelines.resources import default_resources

        defs = dg.Definitions(assets=definitions.all_assets, jobs=definitions.defs.jobs,
                              resources=default_resources())
        job = defs.resolve_job_def("recent_meter_data_job")

        def materialize(first: str, last: str) -> None:
            result = job.execute_in_process(
                instance=instance,
                tags=partition_range_tags(dt.date.fromisoformat(first), dt.date.fromisoformat(last)),
            )
            assert result.success

        with dg.DagsterInstance.ephemeral() as instance:
            assert dg.materialize(definitions.all_assets, instance=instance, resources=defs.resources,
                                  selection=["customers", "supplies"]).success
            materialize("2026-08-20", "2026-08-31")
            env = dict(os.environ, AMI_DATA_DIR=str(data_dir))
            subprocess.run([sys.executable, "-m", "ami_portal.cli", "users", "create-demo"], env=env, cwd=ROOT,
                           check=True, capture_output=True)
            with open(data_dir / "demo-accounts.csv", newline="", encoding="utf-8") as handle:
                accounts = list(csv.DictReader(handle))
            portal, url = start_portal(data_dir, logs, workers=2)

            stop = threading.Event()
            outcomes: list[tuple[str, int | str]] = []
            as_of_seen: set[str] = set()
            lock = threading.Lock()

            def hammer(account: dict) -> None:
                client = login(url, account["email"], account["password"])
                supply_id = account["supply_ids"].split(";")[0]
                paths = [
                    ("/api/v1/supplies", {}),
                    (f"/api/v1/supplies/{supply_id}/consumption",
                     {"granularity": "15min", "from": "2026-08-30", "to": "2026-09-02"}),
                    (f"/api/v1/supplies/{supply_id}/consumption",
                     {"granularity": "day", "from": "2026-08-01", "to": "2026-09-10"}),
                ]
                index = 0
                try:
                    while not stop.is_set():
                        path, params = paths[index % len(paths)]
                        index += 1
                        try:
                            response = client.get(path, params=params)
                            status: int | str = response.status_code
                            if status == 200 and "as_of" in response.text and "consumption" in path:
                                with lock:
                                    as_of_seen.add(response.json()["as_of"])
                        except Exception as error:  # noqa: BLE001 - any transport failure counts as a failed request
                            status = f"{type(error).__name__}: {error}"
                        with lock:
                            outcomes.append((path, status))
                finally:
                    client.close()

            threads = [threading.Thread(target=hammer, args=(accounts[i % len(accounts)],)) for i in range(THREADS)]
            for thread in threads:
                thread.start()
            try:
                # Each run pulls, rebuilds, checks and publishes a new snapshot while the threads read.
                for first, last in (("2026-09-01", "2026-09-03"), ("2026-09-04", "2026-09-06"),
                                    ("2026-09-07", "2026-09-09"), ("2026-08-28", "2026-09-09")):
                    materialize(first, last)
            finally:
                stop.set()
                for thread in threads:
                    thread.join(60)

        failed = [outcome for outcome in outcomes if outcome[1] != 200]
        assert len(outcomes) > 50
        assert failed == []
        assert len(as_of_seen) >= 2  # new publishes were served without restarting the portal
    finally:
        if portal is not None:
            portal.stop()
        simulator.stop()
