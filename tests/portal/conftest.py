"""Fixtures for the portal feature tests: an app over the demo snapshot with tariffs, and logged-in clients."""

from __future__ import annotations

import shutil

import pytest

from portal_kit import ANA, BRUNO, login, write_priced_snapshot
from tests.conftest import seed_data_dir
from webapp import create_app


@pytest.fixture(scope="session")
def priced_data_dir(tmp_path_factory):
    """Built once: a priced demo snapshot and two accounts (Argon2 hashing is slow)."""
    return seed_data_dir(tmp_path_factory.mktemp("priced"), write_priced_snapshot, (ANA, BRUNO))


@pytest.fixture
def portal_data_dir(priced_data_dir, tmp_path):
    target = tmp_path / "var"
    shutil.copytree(priced_data_dir, target)
    return target


@pytest.fixture
def portal_app(portal_data_dir):
    app = create_app({"TESTING": True, "AMI_DATA_DIR": portal_data_dir, "SECRET_KEY": "test-secret-key"})
    yield app
    app.extensions["read_model"].close()


@pytest.fixture
def ana(portal_app):
    return login(portal_app.test_client(), ANA)
