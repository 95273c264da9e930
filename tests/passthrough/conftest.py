"""Fixtures for the passthrough tests: one simulator process for the session (faults reset around every
test), a data directory matching it, and a fresh portal app (fresh breakers, fresh live store) per test."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

from tests.conftest import start_simulator

sys.path.insert(0, str(Path(__file__).resolve().parent))
from live_testkit import (  # noqa: E402
    SIMULATOR_MONTHS, SIMULATOR_SEED, SIMULATOR_SUPPLIES, LoggedIn, build_data_dir, clear_faults, set_headend,
    simulator_now,
)

# short timings so fault tests stay fast; the defaults are in webapp/passthrough/gateway.py
TEST_CONFIG = {
    "PASSTHROUGH_DEADLINE_S": 1.0,
    "PASSTHROUGH_BACKOFF_BASE_S": 0.02,
    "PASSTHROUGH_BACKOFF_CAP_S": 0.1,
    "PASSTHROUGH_BREAKER_FAILURES": 3,
    "PASSTHROUGH_BREAKER_RESET_S": 0.5,
}


@pytest.fixture(scope="session")
def simulator(tmp_path_factory):
    service, url = start_simulator(tmp_path_factory.mktemp("sim-logs"), seed=SIMULATOR_SEED,
                                   supplies=SIMULATOR_SUPPLIES, months=SIMULATOR_MONTHS, now=simulator_now())
    yield {"url": url, "log_path": service.log_path}
    service.stop()


@pytest.fixture(scope="session")
def seeded_live_dir(tmp_path_factory, simulator):
    data_dir = tmp_path_factory.mktemp("live-seed")
    world = build_data_dir(data_dir, simulator["url"])
    return data_dir, world


@pytest.fixture
def world(seeded_live_dir):
    return seeded_live_dir[1]


@pytest.fixture
def live_dir(seeded_live_dir, tmp_path):
    target = tmp_path / "var"
    shutil.copytree(seeded_live_dir[0], target)
    return target


@pytest.fixture(autouse=True)
def healthy_backends(request):
    """Every test starts with healthy backends and quick on-demand reads, and leaves them so."""
    if "simulator" not in request.fixturenames:
        yield
        return
    url = request.getfixturevalue("simulator")["url"]
    clear_faults(url)
    set_headend(url, 0.2, 0.4, 0.0)
    yield
    clear_faults(url)


@pytest.fixture
def make_app(live_dir, simulator):
    from webapp import create_app

    apps = []

    def make(**overrides):
        config = {"TESTING": True, "AMI_DATA_DIR": live_dir, "SECRET_KEY": "test-secret-key",
                  "AMI_BACKEND_URL": simulator["url"], **TEST_CONFIG, **overrides}
        app = create_app(config)
        apps.append(app)
        return app

    yield make
    for app in apps:
        app.extensions["passthrough"].close()
        app.extensions["read_model"].close()


@pytest.fixture
def app(make_app):
    return make_app()


@pytest.fixture
def customer(app, world):
    return LoggedIn(app.test_client(), world["email"])
