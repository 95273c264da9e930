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
