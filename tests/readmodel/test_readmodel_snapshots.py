"""Snapshot handling: unavailable before the first publish, switching on publish without restart, per-thread
connections, and the master-data and bill queries."""

import threading
from datetime import date

import duckdb
import pytest

from readmodel import ReadModel, ReadModelUnavailable
from snapshot_factory import (
    OTHER_CUSTOMER_SUPPLY,
    PLAIN_SUPPLY,
    SOLAR_SUPPLY,
    demo_world,
    write_demo_snapshot,
    write_snapshot,
)


def test_no_snapshot_yet_is_unavailable_and_unhealthy(tmp_path):
    model = ReadModel(tmp_path / "readmodel")
    assert model.healthy() is False
    with pytest.raises(ReadModelUnavailable):
        model.supplies_for_customer("C000001")


def test_a_publish_is_picked_up_without_restart_while_a_connection_is_open(tmp_path):
    readmodel_dir = tmp_path / "readmodel"
    first_path = write_demo_snapshot(readmodel_dir, published_at="2026-09-10T12:00:00+00:00")
    model = ReadModel(readmodel_dir, recheck_seconds=0)
    assert model.as_of() == "2026-09-10T12:00:00+00:00"
    assert model.supply(PLAIN_SUPPLY)["comuna"] == "Ñuñoa"

    world = demo_world()
    for supply in world["supplies"]:
        if supply["supply_id"] == PLAIN_SUPPLY:
            supply["comuna"] = "Providencia"
    second_path = write_snapshot(readmodel_dir, published_at="2026-09-10T12:05:00+00:00", **world)

    assert second_path != first_path
    assert model.as_of() == "2026-09-10T12:05:00+00:00"
    assert model.supply(PLAIN_SUPPLY)["comuna"] == "Providencia"
    assert model.snapshot_path() == second_path.resolve()
    # the old snapshot's connection was closed: this process can open the file read-write again
    duckdb.connect(str(first_path)).close()
    model.close()


def test_the_pointer_is_rechecked_at_most_once_per_interval(tmp_path):
    readmodel_dir = tmp_path / "readmodel"
    write_demo_snapshot(readmodel_dir, published_at="2026-09-10T12:00:00+00:00")
    model = ReadModel(readmodel_dir, recheck_seconds=3600)
    assert model.as_of() == "2026-09-10T12:00:00+00:00"
    write_demo_snapshot(readmodel_dir, published_at="2026-09-10T12:05:00+00:00")
    assert model.as_of() == "2026-09-10T12:00:00+00:00"
    model.close()


def test_each_thread_gets_its_own_connection(demo_readmodel_dir):
    model = ReadModel(demo_readmodel_dir)
    connections, errors = [], []

    def work():
        try:
            for _ in range(20):
                model.consumption(SOLAR_SUPPLY, "hour", date(2026, 4, 3), date(2026, 4, 6), "net")
            connections.append(id(model._connections.connection()))
            model.close()
        except Exception as error:  # surfaced by the assertion below
            errors.append(error)

    threads = [threading.Thread(target=work) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(connections) == 6


def test_supplies_customers_and_health(read_model):
    assert read_model.healthy() is True
    supplies = read_model.supplies_for_customer("C000001")
    assert [supply["supply_id"] for supply in supplies] == [SOLAR_SUPPLY, PLAIN_SUPPLY]
    assert supplies[0]["has_solar"] is True and supplies[1]["has_solar"] is False
    supply = read_model.supply(OTHER_CUSTOMER_SUPPLY)
    assert supply["customer_id"] == "C000002"
    assert supply["data_from"] == "2026-03-25T00:00:00-03:00"
    assert supply["data_until"] == "2026-09-10T00:00:00-03:00"
    assert read_model.supply("99999999") is None
    assert read_model.customer("C000002")["name"] == "Bruno Soto"
    assert read_model.customer("C999999") is None
    assert [customer["customer_id"] for customer in read_model.customers()] == ["C000001", "C000002"]


def test_bills_newest_first_and_bill_detail_only_for_its_supply(read_model):
    bills = read_model.bills(SOLAR_SUPPLY)
    assert [bill["bill_id"] for bill in bills] == ["B30000001-202603", "B30000001-202602"]
    assert bills[0]["total_clp"] == 35700 and isinstance(bills[0]["total_clp"], int)
    assert bills[0]["period_end"] == "2026-04-01"
    detail = read_model.bill(SOLAR_SUPPLY, "B30000001-202603")
    assert [line["code"] for line in detail["lines"]] == ["CF", "EN"]
    assert detail["lines"][1]["amount_clp"] == 28800
    assert read_model.bill(PLAIN_SUPPLY, "B30000001-202603") is None
    assert read_model.bill(SOLAR_SUPPLY, "B30000003-202603") is None
    assert read_model.bills(PLAIN_SUPPLY) == []
