"""Fixtures for the portal tests: an app over a demo snapshot, two customers' accounts, and a login helper."""

from __future__ import annotations

import shutil

import pytest

from portal_testkit import ANA, BRUNO, AuthActions, snapshot_factory
from tests.conftest import seed_data_dir
from webapp import create_app


@pytest.fixture(scope="session")
def seeded_data_dir(tmp_path_factory):
    """A data directory with a published snapshot and two accounts, built once (Argon2 hashing is slow)."""
    return seed_data_dir(tmp_path_factory.mktemp("seed"), snapshot_factory.write_demo_snapshot, (ANA, BRUNO))


@pytest.fixture
def data_dir(seeded_data_dir, tmp_path):
    target = tmp_path / "var"
    shutil.copytree(seeded_data_dir, target)
    return target


@pytest.fixture
def app(data_dir):
    app = create_app({"TESTING": True, "AMI_DATA_DIR": data_dir, "SECRET_KEY": "test-secret-key"})
    yield app
    app.extensions["read_model"].close()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def auth(client):
    return AuthActions(client)


@pytest.fixture
def logged_in(auth):
    response = auth.login()
    assert response.status_code == 302
    return auth.client
