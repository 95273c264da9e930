"""`ami-portal run` (what `make run` calls): start the simulator, the Dagster webserver and daemon, load the demo
data through real Dagster runs on first start, create the demo accounts, serve the portal, and stop everything
on Ctrl-C. A second start on the same data directory reuses what is there."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from ami_portal.processes import ProcessGroup, wait_for_http
from ami_portal.settings import Settings

DAGSTER_YAML = """\
# Dagster instance for this data directory (written by ami-portal run).
telemetry:
  enabled: false
concurrency:
  pools:
    # The DuckDB warehouse has one writer at a time; steps in the "warehouse" pool queue for it.
    default_limit: 1
  runs:
    max_concurrent_runs: 2
# A run whose process died (killed, OOM) is marked failed and its warehouse slot freed, so runs never queue forever.
run_monitoring:
  enabled: true
  free_slots_after_run_end_seconds: 30
"""


def _bin(name: str) -> str:
    """A console script of this environment (gunicorn, dagster-webserver, ...)."""
    candidate = Path(sys.executable).parent / name
    return str(candidate) if candidate.exists() else name


def prepare_data_dir(settings: Settings) -> None:
    for sub in ("inbox", "processed", "quarantine", "logs", "readmodel"):
        (settings.data_dir / sub).mkdir(parents=True, exist_ok=True)
    settings.dagster_home.mkdir(parents=True, exist_ok=True)
    dagster_yaml = settings.dagster_home / "dagster.yaml"
    if not dagster_yaml.exists():
        dagster_yaml.write_text(DAGSTER_YAML)


def _simulator_config(settings: Settings) -> dict:
    import urllib.request

    with urllib.request.urlopen(f"{settings.backend_url}/truth/config", timeout=10) as response:
        return json.load(response)


def run(settings: Settings) -> int:
    started = float(os.environ.get("AMI_RUN_STARTED", time.time()))
    prepare_data_dir(settings)
    env = settings.child_env()
    group = ProcessGroup(settings.data_dir / "logs")
    stop_requested = False

    def _on_signal(signum, _frame):
        nonlocal stop_requested
        stop_requested = True
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _on_signal)
    try:
        print(f"Data directory: {settings.data_dir}")
        group.start(
            "simulator",
            [
                sys.executable, "-m", "ami_portal.cli", "simulator",
                "--port", str(settings.simulator_port),
                "--seed", str(settings.seed),
                "--supplies", str(settings.demo_supplies),
                "--months", str(settings.demo_months),
            ],
            env,
        )
        wait_for_http(f"{settings.backend_url}/healthz", 60, group)
        print(f"Simulator (backends) at {settings.backend_url}")

        marker = settings.data_dir / "partitions_start"
        sim = _simulator_config(settings)
        history_start = dt.date.fromisoformat(sim["history_start"][:10])
        if not marker.exists():
            marker.write_text(history_start.isoformat() + "\n")

        # Create the instance's storage once, before the webserver and the daemon race to create it.
        subprocess.run(
            [sys.executable, "-c", "import dagster; dagster.DagsterInstance.get().get_runs(limit=1)"],
            env=env,
            check=True,
        )
        workspace = str(Path(__file__).resolve().parent.parent / "workspace.yaml")
        group.start(
            "dagster-webserver",
            [_bin("dagster-webserver"), "-w", workspace, "-h", "127.0.0.1", "-p", str(settings.dagster_port)],
            env,
        )
        group.start("dagster-daemon", [_bin("dagster-daemon"), "run", "-w", workspace], env)

        loaded = settings.data_dir / "demo-load.json"
        if loaded.exists():
            print("Demo data already loaded; reusing it.")
        else:
            print(f"Loading {settings.demo_supplies} supplies x {settings.demo_months} months through Dagster ...")
            today = dt.datetime.fromisoformat(sim["now"]).astimezone(dt.timezone.utc)
            first_day = max(history_start, dt.date.fromisoformat(marker.read_text().strip()))
            last_day = _santiago_date(today)
            subprocess.run(
                [sys.executable, "-m", "ami_portal.cli", "load", "--first-day", first_day.isoformat(),
                 "--last-day", last_day.isoformat()],
                env=env,
                check=True,
            )
            loaded.write_text(
                json.dumps(
                    {
                        "supplies": settings.demo_supplies,
                        "months": settings.demo_months,
                        "seed": settings.seed,
                        "first_day": first_day.isoformat(),
                        "last_day": last_day.isoformat(),
                        "loaded_at": dt.datetime.now(dt.timezone.utc).isoformat(),
                    },
                    indent=2,
                )
            )

        subprocess.run([sys.executable, "-m", "ami_portal.cli", "users", "create-demo"], env=env, check=True)

        group.start(
            "portal",
            [_bin("gunicorn"), "-c", str(Path(__file__).resolve().parent.parent / "webapp" / "gunicorn.conf.py"),
             "webapp.wsgi:app"],
            env,
        )
        wait_for_http(f"http://127.0.0.1:{settings.portal_port}/readyz", 90, group)
        wait_for_http(f"http://127.0.0.1:{settings.dagster_port}/server_info", 180, group)
        elapsed = time.time() - started
        _print_banner(settings, elapsed)
        while True:
            time.sleep(1)
            group.check_alive()
    except KeyboardInterrupt:
        print("\nStopping ...")
        return 0
    except (RuntimeError, TimeoutError, subprocess.CalledProcessError) as error:
        print(f"ami-portal run failed: {error}", file=sys.stderr)
        print(f"Logs are in {group.log_dir}", file=sys.stderr)
        return 1
    finally:
        group.stop()
        if stop_requested:
            print("Stopped.")


def _santiago_date(instant: dt.datetime) -> dt.date:
    from zoneinfo import ZoneInfo

    return instant.astimezone(ZoneInfo("America/Santiago")).date()


def _print_banner(settings: Settings, elapsed: float) -> None:
    import csv

    with open(settings.demo_accounts_csv, newline="", encoding="utf-8") as handle:
        accounts = list(csv.DictReader(handle))
    print()
    print(f"Portal ready in {elapsed:.0f} s")
    print(f"  Portal     http://127.0.0.1:{settings.portal_port}/")
    print(f"  Dagster UI http://127.0.0.1:{settings.dagster_port}/")
    print(f"  Backends   {settings.backend_url}")
    print(f"  Demo logins ({len(accounts)} accounts, all in {settings.demo_accounts_csv}):")
    for row in accounts[:5]:
        print(f"    {row['email']}  {row['password']}  supplies {row['supply_ids']}")
    print("Press Ctrl-C to stop.")
