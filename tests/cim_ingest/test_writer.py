"""cim_ingest.writer: well-formed, escaped, exact and fast IEC 61968-100 / 61968-9 output."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import numpy as np
import pytest
from lxml import etree

from cim_ingest.namespaces import MESSAGE_NS, METER_READINGS_NS, PORTAL_DOCS_NS
from cim_ingest.writer import (
    READING_TYPE_15MIN_DELIVERED,
    READING_TYPE_REGISTER_DELIVERED,
    BillLineOut,
    BillOut,
    CustomerOut,
    IntervalBlockOut,
    MeterReadingOut,
    RegisterReadOut,
    ReplyError,
    ReplyHeader,
    UsagePointOut,
    decimal_text,
    iter_bills_response,
    iter_customers_response,
    iter_fault_message,
    iter_meter_readings_response,
    iter_usage_points_response,
    kwh_text,
    local_timestamps,
    to_bytes,
)

UTC = dt.timezone.utc
NS = {"m": MESSAGE_NS, "mr": METER_READINGS_NS, "p": PORTAL_DOCS_NS}
HEADER = ReplyHeader(noun="MeterReadings", correlation_id="corr <&> 1", source="SIM-MDM", message_id="msg-1",
                     timestamp=dt.datetime(2026, 11, 26, 12, 0, 5, 123, tzinfo=UTC))


def parse(chunks) -> etree._Element:
    return etree.fromstring(to_bytes(chunks))


def epochs_from(start: dt.datetime, count: int) -> np.ndarray:
    return int(start.timestamp()) + 900 * np.arange(1, count + 1, dtype=np.int64)


def test_meter_readings_response_shape_and_exact_values():
    ends = epochs_from(dt.datetime(2026, 1, 1, 3, 0, tzinfo=UTC), 3)
    reading = MeterReadingOut(
        usage_point_mrid="up-1", meter_mrid="meter-1",
        interval_blocks=[IntervalBlockOut(READING_TYPE_15MIN_DELIVERED, ends, values_wh=np.array([123, 0, 100001]),
                                          qualities=[(), ("3.8.0",), ("3.7.0", "1.4.9")])],
        registers=[RegisterReadOut(READING_TYPE_REGISTER_DELIVERED, dt.datetime(2026, 1, 2, 3, tzinfo=UTC),
                                   value_wh=12345678)],
    )
    root = parse(iter_meter_readings_response(HEADER, [reading]))
    assert root.tag == f"{{{MESSAGE_NS}}}ResponseMessage"
    assert root.findtext("m:Header/m:CorrelationID", namespaces=NS) == "corr <&> 1"
    assert root.findtext("m:Header/m:Timestamp", namespaces=NS) == "2026-11-26T12:00:05Z"
    assert root.findtext("m:Reply/m:Result", namespaces=NS) == "OK"
    (meter_reading,) = root.findall("m:Payload/mr:MeterReadings/mr:MeterReading", NS)
    assert [etree.QName(child).localname for child in meter_reading] == [
        "IntervalBlocks", "Meter", "Readings", "UsagePoint"]
    readings = meter_reading.findall("mr:IntervalBlocks/mr:IntervalReadings", NS)
    assert [r.findtext("mr:timeStamp", namespaces=NS) for r in readings] == [
        "2026-01-01T00:15:00-03:00", "2026-01-01T00:30:00-03:00", "2026-01-01T00:45:00-03:00"]
    assert [r.findtext("mr:value", namespaces=NS) for r in readings] == ["0.123", "0.000", "100.001"]
    assert [[q.get("ref") for q in r.iterfind("mr:ReadingQualities/mr:ReadingQualityType", NS)]
            for r in readings] == [[], ["3.8.0"], ["3.7.0", "1.4.9"]]
    block = meter_reading.find("mr:IntervalBlocks", NS)
    assert etree.QName(block[-1]).localname == "ReadingType"
    assert block[-1].get("ref") == READING_TYPE_15MIN_DELIVERED
    register = meter_reading.find("mr:Readings", NS)
    assert register.findtext("mr:timeStamp", namespaces=NS) == "2026-01-02T00:00:00-03:00"
    assert register.findtext("mr:value", namespaces=NS) == "12345.678"


def test_datetimes_and_epochs_give_the_same_local_timestamps_across_clock_changes():
    # 4 April 2026: 24:00 -03:00 becomes 23:00 -04:00; 6 September: 00:00 -04:00 becomes 01:00 -03:00.
    autumn = [dt.datetime(2026, 4, 5, 2, 45, tzinfo=UTC) + dt.timedelta(minutes=15 * k) for k in range(3)]
    spring = [dt.datetime(2026, 9, 6, 3, 45, tzinfo=UTC) + dt.timedelta(minutes=15 * k) for k in range(3)]
    assert local_timestamps([int(t.timestamp()) for t in autumn]) == [
        "2026-04-04T23:45:00-03:00", "2026-04-04T23:00:00-04:00", "2026-04-04T23:15:00-04:00"]
    assert local_timestamps([int(t.timestamp()) for t in spring]) == [
        "2026-09-05T23:45:00-04:00", "2026-09-06T01:00:00-03:00", "2026-09-06T01:15:00-03:00"]
    block = IntervalBlockOut(READING_TYPE_15MIN_DELIVERED, autumn + spring, values_wh=[1] * 6)
    root = parse(iter_meter_readings_response(HEADER, [MeterReadingOut("u", "m", [block])]))
    stamps = [e.text for e in root.iterfind(".//mr:timeStamp", NS)]
    assert [dt.datetime.fromisoformat(s) for s in stamps] == autumn + spring
    with pytest.raises(ValueError):
        list(iter_meter_readings_response(HEADER, [MeterReadingOut("u", "m", [IntervalBlockOut(
            READING_TYPE_15MIN_DELIVERED, [dt.datetime(2026, 1, 1)], values_wh=[1])])]))


def test_explicit_values_and_missing_values():
    ends = epochs_from(dt.datetime(2026, 6, 1, 4, tzinfo=UTC), 4)
    block = IntervalBlockOut(READING_TYPE_15MIN_DELIVERED, ends, values=[Decimal("0.250"), 1e-05, None, "2.5"],
                             qualities=[(), (), ("2.5.259",), ()])
    root = parse(iter_meter_readings_response(HEADER, [MeterReadingOut("u", "m", [block])]))
    readings = root.findall(".//mr:IntervalReadings", NS)
    assert [r.findtext("mr:value", namespaces=NS) for r in readings] == ["0.250", "0.00001", None, "2.5"]
    assert readings[2].find("mr:ReadingQualities/mr:ReadingQualityType", NS).get("ref") == "2.5.259"


def test_number_text_helpers():
    assert [kwh_text(v) for v in (0, 5, 1000, 182345, -5, -1500)] == [
        "0.000", "0.005", "1.000", "182.345", "-0.005", "-1.500"]
    assert decimal_text(1050.0) == "1050.0" and decimal_text(Decimal("175.30")) == "175.30"
    assert decimal_text(3) == "3" and decimal_text(2.5e-7) == "0.00000025"
    with pytest.raises(ValueError):
        decimal_text(float("nan"))


def test_text_is_escaped_and_forbidden_characters_dropped():
    customer = CustomerOut("C000001", "10000001", 'Ana <Pérez> & "Hijos"\x01', "12.345.678-5", "a&b@correo.example")
    root = parse(iter_customers_response(
        ReplyHeader("Customers", "c", "SIM-CIS"), [customer],
        result="PARTIAL", errors=[ReplyError("W1", "WARNING", "x < y & z", "</Error>")]))
    (element,) = root.findall("m:Payload/p:Customers/p:Customer", NS)
    assert element.findtext("p:name", namespaces=NS) == 'Ana <Pérez> & "Hijos"'
    assert element.findtext("p:email", namespaces=NS) == "a&b@correo.example"
    assert root.findtext("m:Reply/m:Result", namespaces=NS) == "PARTIAL"
    assert root.findtext("m:Reply/m:Error/m:reason", namespaces=NS) == "x < y & z"
    assert root.findtext("m:Reply/m:Error/m:details", namespaces=NS) == "</Error>"
    reading = MeterReadingOut('up"<&', "m&", [])
    root = parse(iter_meter_readings_response(HEADER, [reading]))
    assert root.findtext(".//mr:UsagePoint/mr:mRID", namespaces=NS) == 'up"<&'


def test_usage_points_document():
    points = [
        UsagePointOut("uuid-1", "30000001", "meter-1", "C000001", "Av. Irarrázaval 1234, depto 56", "Ñuñoa", "BT1",
                      "active", False),
        UsagePointOut("uuid-2", "30000002", "meter-2", "C000001", "Los Leones 10", "Providencia", "BT1", "active",
                      True),
    ]
    root = parse(iter_usage_points_response(ReplyHeader("UsagePoints", "c", "SIM-CIS"), points))
    elements = root.findall("m:Payload/p:UsagePoints/p:UsagePoint", NS)
    assert [[etree.QName(child).localname for child in e] for e in elements][0] == [
        "mRID", "supplyId", "meterMRID", "customerMRID", "address", "comuna", "tariff", "status", "hasSolar"]
    assert [e.findtext("p:hasSolar", namespaces=NS) for e in elements] == ["false", "true"]
    assert elements[0].findtext("p:comuna", namespaces=NS) == "Ñuñoa"


def test_bills_document():
    bill = BillOut(
        bill_id="B30000001-202602", supply_id="30000001", period_start=dt.date(2026, 1, 5),
        period_end=dt.date(2026, 2, 5), issue_date=dt.date(2026, 2, 7), due_date=dt.date(2026, 2, 27),
        billed_wh=182345, register_start_wh=10234000, register_end_wh=10416345, received_wh=0,
        net_clp=33015, iva_clp=6273, total_clp=39288, status="paid",
        lines=[BillLineOut(1, "FIXED", "Cargo fijo mensual", Decimal(1), "mes", Decimal("1050.0"), 1050),
               BillLineOut(2, "ENERGY", "Cargo por energía", Decimal("182.345"), "kWh", Decimal("175.3"), 31965)],
    )
    root = parse(iter_bills_response(ReplyHeader("Bills", "c", "SIM-BILLING"), [bill]))
    (element,) = root.findall("m:Payload/p:Bills/p:Bill", NS)
    expected = {"mRID": "B30000001-202602", "periodStart": "2026-01-05", "periodEnd": "2026-02-05",
                "issueDate": "2026-02-07", "dueDate": "2026-02-27", "kWh": "182.345",
                "registerStartKWh": "10234.000", "registerEndKWh": "10416.345", "receivedKWh": "0.000",
                "netCLP": "33015", "ivaCLP": "6273", "totalCLP": "39288", "status": "paid"}
    assert {name: element.findtext(f"p:{name}", namespaces=NS) for name in expected} == expected
    lines = element.findall("p:Line", NS)
    assert [line.findtext("p:description", namespaces=NS) for line in lines] == [
        "Cargo fijo mensual", "Cargo por energía"]
    assert lines[1].findtext("p:quantity", namespaces=NS) == "182.345"
    assert lines[1].findtext("p:unitPriceCLP", namespaces=NS) == "175.3"


def test_fault_message():
    root = parse(iter_fault_message(ReplyHeader("MeterReadings", "corr-9", "SIM-MDM"),
                                    [ReplyError("WINDOW_TOO_LONG", "FATAL", "Too long.")]))
    assert root.tag == f"{{{MESSAGE_NS}}}FaultMessage"
    assert root.findtext("m:Reply/m:Result", namespaces=NS) == "FAILED"
    assert root.findtext("m:Reply/m:Error/m:level", namespaces=NS) == "FATAL"
    assert root.find("m:Reply/m:Error/m:details", NS) is None
    assert root.find("m:Payload", NS) is None


def test_big_reply_is_streamed_in_chunks_and_meter_readings_are_consumed_lazily():
    produced = []

    def readings():
        for index in range(3):
            produced.append(index)
            ends = epochs_from(dt.datetime(2026, 3, 1, 3, tzinfo=UTC), 20_000)
            yield MeterReadingOut(f"up-{index}", f"m-{index}",
                                  [IntervalBlockOut(READING_TYPE_15MIN_DELIVERED, ends, values_wh=np.arange(20_000))])

    chunks = iter_meter_readings_response(HEADER, readings())
    first = next(chunks)
    assert produced == [] and first.startswith(b"<?xml")
    rest = list(chunks)
    assert produced == [0, 1, 2] and len(rest) > 6
    assert max(len(chunk) for chunk in rest) < 2_000_000
    root = etree.fromstring(first + b"".join(rest))
    assert len(root.findall(".//mr:IntervalReadings", NS)) == 60_000


def test_writes_a_large_reply_completely():
    """Writer speed is measured by benchmarks/bench_ingest.py (never asserted here); this checks the output."""
    count = 400_000
    ends = epochs_from(dt.datetime(2026, 1, 1, 3, tzinfo=UTC), count)
    values = np.random.default_rng(0).integers(0, 3000, count)
    blocks = [MeterReadingOut(f"up-{i}", f"m-{i}", [IntervalBlockOut(
        READING_TYPE_15MIN_DELIVERED, ends[i:i + 40_000], values_wh=values[i:i + 40_000])])
        for i in range(0, count, 40_000)]
    data = b"".join(iter_meter_readings_response(HEADER, blocks))
    assert len(data) > count * 90
    assert data.count(b"<IntervalReadings>") == count
