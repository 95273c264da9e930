"""Customers, supplies and bills documents into the contract frames, with exact dtypes."""

from __future__ import annotations

import datetime as dt

import polars as pl
import pytest

from cim_ingest.documents import (
    BILL_LINES_SCHEMA,
    BILLS_SCHEMA,
    CUSTOMERS_SCHEMA,
    SUPPLIES_SCHEMA,
    parse_bills,
    parse_customers,
    parse_supplies,
)
from cim_ingest.errors import InvalidValue, UnexpectedMessage
from cim_ingest.namespaces import PORTAL_DOCS_NS


def test_customers(data_file):
    frame = parse_customers(data_file("customers.xml"))
    assert dict(frame.schema) == CUSTOMERS_SCHEMA
    assert frame.rows() == [
        ("C000001", "10000001", "María González Rojas", "12.345.678-5", "maria.gonzalez@correo.example"),
        ("C000002", "10000002", "José Ñancupil Muñoz", "9.876.543-K", None),
    ]


def test_supplies(data_file):
    frame = parse_supplies(data_file("usage_points.xml"))
    assert dict(frame.schema) == SUPPLIES_SCHEMA
    assert frame.row(0, named=True) == {
        "supply_id": "30000001",
        "usage_point_mrid": "bbbbbbbb-0000-4000-8000-000000000001",
        "meter_mrid": "aaaaaaaa-0000-4000-8000-000000000001",
        "customer_id": "C000001",
        "address": "Av. Irarrázaval 1234, depto 56",
        "comuna": "Ñuñoa",
        "tariff": "BT1",
        "status": "active",
        "has_solar": False,
    }
    assert frame["has_solar"].to_list() == [False, True]


def test_bills_and_lines(data_file):
    bills, lines = parse_bills(data_file("bills.xml"))
    assert dict(bills.schema) == BILLS_SCHEMA
    assert dict(lines.schema) == BILL_LINES_SCHEMA
    first = bills.row(0, named=True)
    assert first == {
        "bill_id": "B30000001-202602",
        "supply_id": "30000001",
        "period_start": dt.date(2026, 1, 5),
        "period_end": dt.date(2026, 2, 5),
        "issue_date": dt.date(2026, 2, 7),
        "due_date": dt.date(2026, 2, 27),
        "kwh": 182.345,
        "register_start_kwh": 10234.0,
        "register_end_kwh": 10416.345,
        "received_kwh": 0.0,
        "net_clp": 33015,
        "iva_clp": 6273,
        "total_clp": 39288,
        "status": "paid",
    }
    assert bills["status"].to_list() == ["paid", "unpaid"]
    assert lines.height == 5
    solar_lines = lines.filter(pl.col("bill_id") == "B30000002-202602")
    assert solar_lines["line_no"].to_list() == [1, 2, 3]
    assert solar_lines["code"].to_list() == ["FIXED", "ENERGY", "INJECTION"]
    assert solar_lines["description"].to_list()[2] == "Descuento por energía inyectada"
    assert solar_lines["amount_clp"].to_list() == [1050, 26295, -7098]
    # The document's own arithmetic holds after parsing: net = sum of lines, total = net + IVA.
    sums = lines.group_by("bill_id").agg(pl.col("amount_clp").sum()).sort("bill_id")
    assert sums["amount_clp"].to_list() == bills.sort("bill_id")["net_clp"].to_list()
    assert (bills["net_clp"] + bills["iva_clp"]).to_list() == bills["total_clp"].to_list()


def test_fractional_pesos_are_rejected(data_file):
    with pytest.raises(InvalidValue, match=r"Bill #1 \(B30000001-202602\): netCLP '33015.5' is not a whole number"):
        parse_bills(data_file("bills_fractional_pesos.xml"))


def _bare(noun: str, body: str) -> str:
    return f'<{noun} xmlns="{PORTAL_DOCS_NS}">{body}</{noun}>'


def test_bare_documents_and_empty_documents():
    customers = parse_customers(_bare("Customers", "<Customer><mRID>C000009</mRID></Customer>"))
    assert customers["customer_id"].to_list() == ["C000009"]
    empty_bills, empty_lines = parse_bills(_bare("Bills", ""))
    assert dict(empty_bills.schema) == BILLS_SCHEMA and empty_bills.height == 0
    assert dict(empty_lines.schema) == BILL_LINES_SCHEMA and empty_lines.height == 0


@pytest.mark.parametrize(
    "body, words",
    [
        ("<UsagePoint><supplyId>30000001</supplyId><customerMRID>C1</customerMRID></UsagePoint>", "mRID is missing"),
        (
            "<UsagePoint><mRID>u</mRID><supplyId>1</supplyId><customerMRID>C1</customerMRID><hasSolar>yes</hasSolar>"
            "</UsagePoint>",
            "'yes' is not true or false",
        ),
    ],
)
def test_bad_supplies_are_rejected(body, words):
    with pytest.raises(InvalidValue, match=words):
        parse_supplies(_bare("UsagePoints", body))


def test_impossible_bill_date_is_rejected():
    bill = (
        "<Bill><mRID>B1</mRID><supplyId>1</supplyId><periodStart>2026-02-30</periodStart>"
        "<periodEnd>2026-03-05</periodEnd></Bill>"
    )
    with pytest.raises(InvalidValue, match="periodStart '2026-02-30' is not a date"):
        parse_bills(_bare("Bills", bill))


def test_document_in_wrong_namespace_is_unexpected():
    with pytest.raises(UnexpectedMessage, match="urn:ami-portal:cim:2026"):
        parse_customers('<Customers xmlns="urn:other"><Customer><mRID>C1</mRID></Customer></Customers>')


def test_reply_for_another_noun_is_unexpected(data_file):
    with pytest.raises(UnexpectedMessage, match="Customers"):
        parse_customers(data_file("usage_points.xml"))
