"""Where the pipelines read their configuration: environment variables with documented defaults.

The code location is loaded by the Dagster webserver, the daemon and every run worker, so configuration comes
from the environment (set by `make run` / `ami-portal run`) rather than from files passed on a command line.
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

SANTIAGO = "America/Santiago"
DEFAULT_PARTITIONS_START = "2025-01-01"


def data_dir() -> Path:
    """The data directory (`AMI_DATA_DIR`, default `./var`)."""
    return Path(os.environ.get("AMI_DATA_DIR", "var")).resolve()


def backend_url() -> str:
    """Base URL of the utility's backends (the simulator in development)."""
    port = os.environ.get("SIMULATOR_PORT", "8600")
    return os.environ.get("AMI_BACKEND_URL", f"http://127.0.0.1:{port}")


def partitions_start() -> str:
    """First local date of the daily partitions.

    Read from `AMI_PARTITIONS_START`, else from `<data dir>/partitions_start` (written once by the demo load so the
    partition set stays stable across days), else a fixed default.
    """
    value = os.environ.get("AMI_PARTITIONS_START")
    if not value:
        marker = data_dir() / "partitions_start"
        value = marker.read_text().strip() if marker.exists() else DEFAULT_PARTITIONS_START
    dt.date.fromisoformat(value)  # fail early, with the offending value in the traceback
    return value


def pull_cron() -> str:
    """Cron (America/Santiago) of the pull of recent meter data: `AMI_PULL_CRON`, default every 15 minutes."""
    return os.environ.get("AMI_PULL_CRON", "*/15 * * * *")


def reference_cron() -> str:
    """Cron (America/Santiago) of the refresh of customers, supplies, tariffs and bills: `AMI_REFERENCE_CRON`,
    default every hour at minute 5."""
    return os.environ.get("AMI_REFERENCE_CRON", "5 * * * *")


def lookback_days() -> int:
    """Days before today re-pulled by every scheduled run, for late and corrected data: `AMI_LOOKBACK_DAYS`,
    default 2."""
    value = int(os.environ.get("AMI_LOOKBACK_DAYS", "2"))
    if value < 0:
        raise ValueError(f"AMI_LOOKBACK_DAYS must be 0 or more, not {value}")
    return value


def inbox_sensor_seconds() -> int:
    """How often the inbox sensor looks for new files: `AMI_INBOX_SENSOR_SECONDS`, default 5."""
    return int(os.environ.get("AMI_INBOX_SENSOR_SECONDS", "5"))


def inbox_retry_seconds() -> int:
    """A file still in the inbox this long after its run was requested is requested again (its run failed
    before it could move the file): `AMI_INBOX_RETRY_SECONDS`, default 600."""
    return int(os.environ.get("AMI_INBOX_RETRY_SECONDS", "600"))
