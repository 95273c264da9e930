"""Fixtures for the security tests: an app over the demo snapshot with two customers (Ana and Bruno)."""

from __future__ import annotations

import shutil

import pytest

from security_testkit import ANA, BRUNO, AuthActions, snapshot_factory
from tests.conftest import seed_data_dir
from webapp import create_app


@pytest.fixture(scope="session")
def security_seed(tmp_path_factory):
    return seed_data_dir(tmp_path_factory.mktemp("security-seed"), snapshot_factory.write_demo_snapshot, (ANA, BRUNO))


@pytest.fixture
def data_dir(security_seed, tmp_path):
    target = tmp_path / "var"
    shutil.copytree(security_seed, target)
    return target


@pytest.fixture
def make_app(data_dir):
    apps = []

    def factory(**config):
        app = create_app({"TESTING": True, "AMI_DATA_DIR": data_dir, "SECRET_KEY": "test-secret-key", **config})
        apps.append(app)
        return app

    yield factory
    for app in apps:
        app.extensions["read_model"].close()


@pytest.fixture
def app(make_app):
    return make_app()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def auth(client):
    return AuthActions(client)
