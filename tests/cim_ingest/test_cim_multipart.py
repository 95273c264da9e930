"""Multi-part replies against the real simulator: with SIMULATOR_PART_SIZE the MDM answers in parts
(Header/Property part/partCount) and BackendClient follows them to the end under one CorrelationID."""

from __future__ import annotations

import datetime as dt

import polars as pl
import pytest

from cim_ingest.client import BackendClient
from tests.conftest import start_simulator

NOW = "2026-03-10T12:00:00-03:00"
UNKNOWN = "00000000-0000-4000-8000-00000000dead"


def fetch(url: str, usage_points: list[str]):
    client = BackendClient(url, timeout=30, retries=0)
    start = dt.datetime(2026, 3, 1, 3, tzinfo=dt.timezone.utc)
    return client.get_meter_readings(usage_points, start, start + dt.timedelta(days=2))


@pytest.fixture
def simulators(tmp_path, monkeypatch):
    whole, whole_url = start_simulator(tmp_path / "whole", seed=11, supplies=5, months=1, now=NOW)
    monkeypatch.setenv("SIMULATOR_PART_SIZE", "2")
    parts, parts_url = start_simulator(tmp_path / "parts", seed=11, supplies=5, months=1, now=NOW)
    try:
        yield whole_url, parts_url
    finally:
        whole.stop()
        parts.stop()


def test_multi_part_reply_is_followed_to_the_end_and_equals_the_single_reply(simulators):
    whole_url, parts_url = simulators
    usage_points = BackendClient(whole_url).get_supplies()["usage_point_mrid"].to_list()
    assert len(usage_points) == 5
    single = fetch(whole_url, [*usage_points, UNKNOWN])
    multi = fetch(parts_url, [*usage_points, UNKNOWN])
    # Five known usage points in parts of two: three reply messages, each with its own MessageID.
    assert multi.intervals["source_message_id"].n_unique() == 3
    assert single.intervals["source_message_id"].n_unique() == 1
    key = ["usage_point_mrid", "flow", "interval_end"]
    columns = ["usage_point_mrid", "flow", "interval_end", "kwh", "quality"]
    assert multi.intervals.select(columns).sort(key).equals(single.intervals.select(columns).sort(key))
    assert multi.registers.height == single.registers.height > 0
    assert set(multi.intervals["usage_point_mrid"]) == set(usage_points)
    # The unknown usage point's warning survives the combination.
    assert multi.header.result == "PARTIAL"
    assert [error.details for error in multi.header.errors] == [UNKNOWN]
    assert multi.header.property("partCount") == "3"


def test_a_single_part_request_is_not_split(simulators):
    _, parts_url = simulators
    usage_points = BackendClient(parts_url).get_supplies()["usage_point_mrid"].to_list()[:2]
    batch = fetch(parts_url, usage_points)
    assert batch.header.property("partCount") is None
    assert batch.intervals["source_message_id"].n_unique() == 1
    assert batch.intervals.filter(pl.col("usage_point_mrid").is_in(usage_points)).height == batch.intervals.height
