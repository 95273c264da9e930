"""Fixtures for the portal feature tests: an app over the demo snapshot with tariffs, and logged-in clients."""

from __future__ import annotations

import shutil

import pytest

from portal_kit import ANA, BRUNO, login, write_priced_snapshot
from webapp import create_app
from webapp.accounts import AccountStore


@pytest.fixture(scope="session")
def priced_data_dir(tmp_path_factory):
    """Built once: a priced demo snapshot and two accounts (Argon2 hashing is slow)."""
    data_dir = tmp_path_factory.mktemp("priced")
    write_priced_snapshot(data_dir / "readmodel")
    store = AccountStore(data_dir / "accounts.sqlite")
    store.initialize()
    for account in (ANA, BRUNO):
        store.create_user(account["email"], account["password"], account["customer_id"])
    return data_dir


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
