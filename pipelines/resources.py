"""Dagster resources: the backend client and the warehouse location, configured from the environment."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import dagster as dg
import duckdb

from cim_ingest.client import BackendClient
from pipelines import settings
from warehouse.db import connect


class BackendResource(dg.ConfigurableResource):
    """The utility's backend services (MDM, billing, CIS) reached over IEC 61968-100 messages."""

    base_url: str
    timeout_seconds: float = 60.0

    def client(self) -> BackendClient:
        return BackendClient(self.base_url, timeout=self.timeout_seconds)


class WarehouseResource(dg.ConfigurableResource):
    """The DuckDB warehouse file (written only by pipelines) and the read-model directory it publishes to."""

    data_dir: str

    @property
    def warehouse_path(self) -> Path:
        return Path(self.data_dir) / "warehouse.duckdb"

    @property
    def readmodel_dir(self) -> Path:
        return Path(self.data_dir) / "readmodel"

    @contextmanager
    def connect(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """Open the warehouse read-write for one step, waiting while another step holds the file."""
        Path(self.data_dir).mkdir(parents=True, exist_ok=True)
        con = connect(self.warehouse_path)
        try:
            yield con
        finally:
            con.close()


def default_resources() -> dict[str, dg.ConfigurableResource]:
    return {
        "backend": BackendResource(base_url=settings.backend_url()),
        "warehouse": WarehouseResource(data_dir=str(settings.data_dir())),
    }
