"""Fixtures for the read-model tests: a demo snapshot written with plain DuckDB DDL."""

import pytest

from readmodel import ReadModel
from snapshot_factory import write_demo_snapshot


@pytest.fixture(scope="session")
def demo_readmodel_dir(tmp_path_factory):
    readmodel_dir = tmp_path_factory.mktemp("readmodel")
    write_demo_snapshot(readmodel_dir)
    return readmodel_dir


@pytest.fixture
def read_model(demo_readmodel_dir):
    model = ReadModel(demo_readmodel_dir)
    yield model
    model.close()
