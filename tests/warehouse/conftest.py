"""Fixtures for the warehouse tests: a fresh tmp_path warehouse, empty or holding the master data."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest
from warehouse_frames import customers_frame, supplies_frame

from warehouse.db import connect
from warehouse.loads import upsert_customers, upsert_supplies


@pytest.fixture
def warehouse_path(tmp_path) -> Path:
    return tmp_path / "warehouse.duckdb"


@pytest.fixture
def con(warehouse_path) -> Iterator[duckdb.DuckDBPyConnection]:
    connection = connect(warehouse_path, wait_seconds=5)
    yield connection
    connection.close()


@pytest.fixture
def loaded_con(con) -> duckdb.DuckDBPyConnection:
    """A warehouse holding the two customers and the two supplies."""
    upsert_customers(con, customers_frame())
    upsert_supplies(con, supplies_frame())
    return con
