"""Parse the portal's master-data and bill documents (namespace `urn:ami-portal:cim:2026`, inside a normal
IEC 61968-100 ResponseMessage Payload, or bare) into the Polars frames of the contract in docs/architecture.md.

Element names, with the frame column each lands in (* = required; a missing optional element gives null):

Customers/Customer:
    mRID* -> customer_id, clientNumber -> client_number, name -> name, rut -> rut, email -> email
UsagePoints/UsagePoint:
    mRID* -> usage_point_mrid, supplyId* -> supply_id, meterMRID -> meter_mrid, customerMRID* -> customer_id,
    address -> address, comuna -> comuna, tariff -> tariff, status -> status, hasSolar -> has_solar
    (xs:boolean: true/false/1/0)
Bills/Bill:
    mRID* -> bill_id, supplyId* -> supply_id, periodStart* -> period_start, periodEnd* -> period_end
    (exclusive), issueDate -> issue_date, dueDate -> due_date (dates YYYY-MM-DD, local), kWh -> kwh,
    registerStartKWh -> register_start_kwh, registerEndKWh -> register_end_kwh, receivedKWh -> received_kwh,
    netCLP -> net_clp, ivaCLP -> iva_clp, totalCLP -> total_clp (integer pesos), status -> status
    (paid|unpaid), and zero or more
    Line: lineNo* -> line_no, code -> code, description -> description, quantity -> quantity, unit -> unit,
    unitPriceCLP -> unit_price_clp (decimal), amountCLP -> amount_clp (integer pesos, negative for credits)

Bad numbers, dates or booleans raise InvalidValue naming the record; the whole document is rejected."""

from __future__ import annotations

import datetime as dt
import math
import re

import polars as pl
from lxml import etree

from cim_ingest.errors import InvalidValue
from cim_ingest.messages import EnvelopeHeader, EnvelopeReader
from cim_ingest.namespaces import PORTAL_DOCS_NS
from cim_ingest.xml_safety import XmlSource, local_name

CUSTOMERS_SCHEMA = {
    "customer_id": pl.Utf8,
    "client_number": pl.Utf8,
    "name": pl.Utf8,
    "rut": pl.Utf8,
    "email": pl.Utf8,
}
SUPPLIES_SCHEMA = {
    "supply_id": pl.Utf8,
    "usage_point_mrid": pl.Utf8,
    "meter_mrid": pl.Utf8,
    "customer_id": pl.Utf8,
    "address": pl.Utf8,
    "comuna": pl.Utf8,
    "tariff": pl.Utf8,
    "status": pl.Utf8,
    "has_solar": pl.Boolean,
}
BILLS_SCHEMA = {
    "bill_id": pl.Utf8,
    "supply_id": pl.Utf8,
    "period_start": pl.Date,
    "period_end": pl.Date,
    "issue_date": pl.Date,
    "due_date": pl.Date,
    "kwh": pl.Float64,
    "register_start_kwh": pl.Float64,
    "register_end_kwh": pl.Float64,
    "received_kwh": pl.Float64,
    "net_clp": pl.Int64,
    "iva_clp": pl.Int64,
    "total_clp": pl.Int64,
    "status": pl.Utf8,
}
BILL_LINES_SCHEMA = {
    "bill_id": pl.Utf8,
    "line_no": pl.Int32,
    "code": pl.Utf8,
    "description": pl.Utf8,
    "quantity": pl.Float64,
    "unit": pl.Utf8,
    "unit_price_clp": pl.Float64,
    "amount_clp": pl.Int64,
}

_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_INTEGER = re.compile(r"^[+-]?\d+$")
_BOOLEANS = {"true": True, "1": True, "false": False, "0": False}


def _fields(element: etree._Element) -> dict[str, str]:
    """Local name -> stripped text of the direct children; empty elements count as absent."""
    fields: dict[str, str] = {}
    for child in element:
        name = local_name(child.tag)
        text = (child.text or "").strip()
        if name and text and name not in fields:
            fields[name] = text
    return fields


class _Record:
    """Typed access to one record's fields, with errors that say which record and field was wrong."""

    def __init__(self, kind: str, element: etree._Element, position: int):
        self.kind = kind
        self.fields = _fields(element)
        self.label = f"{kind} #{position}" + (f" ({self.fields['mRID']})" if "mRID" in self.fields else "")

    def _fail(self, name: str, problem: str) -> InvalidValue:
        return InvalidValue(f"{self.label}: {name} {problem}; the document was rejected.")

    def text(self, name: str, required: bool = False) -> str | None:
        value = self.fields.get(name)
        if value is None and required:
            raise self._fail(name, "is missing or empty")
        return value

    def date(self, name: str, required: bool = False) -> dt.date | None:
        value = self.text(name, required)
        if value is None:
            return None
        try:
            if not _DATE.match(value):
                raise ValueError
            return dt.date.fromisoformat(value)
        except ValueError:
            raise self._fail(name, f"{value!r} is not a date YYYY-MM-DD") from None

    def decimal(self, name: str, required: bool = False) -> float | None:
        value = self.text(name, required)
        if value is None:
            return None
        try:
            number = float(value)
        except ValueError:
            raise self._fail(name, f"{value!r} is not a decimal number") from None
        if not math.isfinite(number):
            raise self._fail(name, f"{value!r} is not a finite number")
        return number

    def integer(self, name: str, required: bool = False) -> int | None:
        value = self.text(name, required)
        if value is None:
            return None
        if not _INTEGER.match(value):
            raise self._fail(name, f"{value!r} is not a whole number (amounts are integer pesos)")
        return int(value)

    def boolean(self, name: str) -> bool | None:
        value = self.text(name)
        if value is None:
            return None
        if value.lower() not in _BOOLEANS:
            raise self._fail(name, f"{value!r} is not true or false")
        return _BOOLEANS[value.lower()]


def _records(source: XmlSource, noun: str, record_name: str) -> tuple[EnvelopeHeader, list[tuple[_Record, list]]]:
    """Every `record_name` of the `noun` document, with the records of its `Line` children (bills only)."""
    records: list[tuple[_Record, list]] = []
    reader = EnvelopeReader(source, noun, {PORTAL_DOCS_NS}, (record_name,))
    for position, (_name, element) in enumerate(reader, start=1):
        lines = [
            _Record("Line", child, line_position)
            for line_position, child in enumerate(
                (child for child in element if local_name(child.tag) == "Line"), start=1
            )
        ]
        records.append((_Record(record_name, element, position), lines))
        element.clear()
        while element.getprevious() is not None and element.getprevious().tag == element.tag:
            element.getparent().remove(element.getprevious())
    assert reader.header is not None
    return reader.header, records


def parse_customers(source: XmlSource) -> pl.DataFrame:
    """A `Customers` reply or document -> the customers frame."""
    _header, records = _records(source, "Customers", "Customer")
    rows = [
        {
            "customer_id": record.text("mRID", required=True),
            "client_number": record.text("clientNumber"),
            "name": record.text("name"),
            "rut": record.text("rut"),
            "email": record.text("email"),
        }
        for record, _lines in records
    ]
    return pl.DataFrame(rows, schema=CUSTOMERS_SCHEMA) if rows else pl.DataFrame(schema=CUSTOMERS_SCHEMA)


def parse_supplies(source: XmlSource) -> pl.DataFrame:
    """A `UsagePoints` reply or document -> the supplies frame."""
    _header, records = _records(source, "UsagePoints", "UsagePoint")
    rows = [
        {
            "supply_id": record.text("supplyId", required=True),
            "usage_point_mrid": record.text("mRID", required=True),
            "meter_mrid": record.text("meterMRID"),
            "customer_id": record.text("customerMRID", required=True),
            "address": record.text("address"),
            "comuna": record.text("comuna"),
            "tariff": record.text("tariff"),
            "status": record.text("status"),
            "has_solar": record.boolean("hasSolar"),
        }
        for record, _lines in records
    ]
    return pl.DataFrame(rows, schema=SUPPLIES_SCHEMA) if rows else pl.DataFrame(schema=SUPPLIES_SCHEMA)


def parse_bills(source: XmlSource) -> tuple[pl.DataFrame, pl.DataFrame]:
    """A `Bills` reply or document -> (bills frame, bill_lines frame)."""
    _header, records = _records(source, "Bills", "Bill")
    bills: list[dict] = []
    lines: list[dict] = []
    for record, line_records in records:
        bill_id = record.text("mRID", required=True)
        bills.append(
            {
                "bill_id": bill_id,
                "supply_id": record.text("supplyId", required=True),
                "period_start": record.date("periodStart", required=True),
                "period_end": record.date("periodEnd", required=True),
                "issue_date": record.date("issueDate"),
                "due_date": record.date("dueDate"),
                "kwh": record.decimal("kWh"),
                "register_start_kwh": record.decimal("registerStartKWh"),
                "register_end_kwh": record.decimal("registerEndKWh"),
                "received_kwh": record.decimal("receivedKWh"),
                "net_clp": record.integer("netCLP"),
                "iva_clp": record.integer("ivaCLP"),
                "total_clp": record.integer("totalCLP"),
                "status": record.text("status"),
            }
        )
        for line in line_records:
            line.label = f"{record.label} {line.label}"
            lines.append(
                {
                    "bill_id": bill_id,
                    "line_no": line.integer("lineNo", required=True),
                    "code": line.text("code"),
                    "description": line.text("description"),
                    "quantity": line.decimal("quantity"),
                    "unit": line.text("unit"),
                    "unit_price_clp": line.decimal("unitPriceCLP"),
                    "amount_clp": line.integer("amountCLP"),
                }
            )
    bill_frame = pl.DataFrame(bills, schema=BILLS_SCHEMA) if bills else pl.DataFrame(schema=BILLS_SCHEMA)
    line_frame = pl.DataFrame(lines, schema=BILL_LINES_SCHEMA) if lines else pl.DataFrame(schema=BILL_LINES_SCHEMA)
    return bill_frame, line_frame
