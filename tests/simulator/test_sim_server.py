"""The simulator's HTTP endpoints through Flask's test client: CIM replies, faults and the JSON ground truth."""

from __future__ import annotations

import datetime as dt

import pytest
from lxml import etree

from cim_ingest.namespaces import GET_METER_READINGS_NS, MESSAGE_NS, METER_READINGS_NS, PORTAL_DOCS_NS
from simulator.model import SimulationConfig
from simulator.server import create_app

NOW = dt.datetime(2026, 10, 20, 15, 0, tzinfo=dt.timezone.utc)
NS = {"m": MESSAGE_NS, "mr": METER_READINGS_NS, "p": PORTAL_DOCS_NS}


@pytest.fixture(scope="module")
def client():
    return create_app(SimulationConfig(seed=7, supplies=12, months=8, now=NOW)).test_client()


@pytest.fixture(scope="module")
def supplies(client):
    return client.get("/truth/supplies").get_json()


def request_xml(noun: str, start: str | None = None, end: str | None = None, mrids=(), options=None,
                correlation_id: str = "corr-1", namespace: str = MESSAGE_NS) -> bytes:
    parts = [f'<RequestMessage xmlns="{namespace}"><Header><Verb>get</Verb><Noun>{noun}</Noun>'
             f"<Timestamp>2026-10-20T15:00:00Z</Timestamp><Source>AMI-PORTAL</Source>"
             f"<MessageID>msg-1</MessageID><CorrelationID>{correlation_id}</CorrelationID></Header><Request>"]
    if start:
        parts.append(f"<StartTime>{start}</StartTime>")
    if end:
        parts.append(f"<EndTime>{end}</EndTime>")
    for name, value in (options or {}).items():
        parts.append(f"<Option><name>{name}</name><value>{value}</value></Option>")
    if mrids:
        parts.append(f'<GetMeterReadings xmlns="{GET_METER_READINGS_NS}">')
        parts.extend(f"<UsagePoint><mRID>{mrid}</mRID></UsagePoint>" for mrid in mrids)
        parts.append("</GetMeterReadings>")
    parts.append("</Request></RequestMessage>")
    return "".join(parts).encode()


def assert_fault(response, status: int, code: str) -> etree._Element:
    assert response.status_code == status
    assert b"Traceback" not in response.data
    root = etree.fromstring(response.data)
    assert root.tag == f"{{{MESSAGE_NS}}}FaultMessage"
    assert root.findtext("m:Reply/m:Result", namespaces=NS) == "FAILED"
    assert root.findtext("m:Reply/m:Error/m:code", namespaces=NS) == code
    return root


def test_healthz(client):
    response = client.get("/healthz")
    assert response.status_code == 200 and response.text == "ok"


def test_meter_readings_for_a_day_match_the_truth(client, supplies):
    supply = supplies[0]
    response = client.post("/cim/mdm", data=request_xml(
        "MeterReadings", "2026-06-15T04:00:00Z", "2026-06-16T04:00:00Z", [supply["usage_point_mrid"]]))
    assert response.status_code == 200 and response.is_streamed
    root = etree.fromstring(response.data)
    assert root.tag == f"{{{MESSAGE_NS}}}ResponseMessage"
    assert root.findtext("m:Header/m:Verb", namespaces=NS) == "reply"
    assert root.findtext("m:Header/m:CorrelationID", namespaces=NS) == "corr-1"
    assert root.findtext("m:Reply/m:Result", namespaces=NS) == "OK"
    (reading,) = root.findall("m:Payload/mr:MeterReadings/mr:MeterReading", NS)
    assert [etree.QName(child).localname for child in reading] == ["IntervalBlocks", "Meter", "Readings", "UsagePoint"]
    assert reading.findtext("mr:UsagePoint/mr:mRID", namespaces=NS) == supply["usage_point_mrid"]
    assert reading.findtext("mr:Meter/mr:mRID", namespaces=NS) == supply["meter_mrid"]
    block = reading.find("mr:IntervalBlocks", NS)
    assert block.find("mr:ReadingType", NS).get("ref") == "0.0.2.4.1.1.12.0.0.0.0.0.0.0.0.3.72.0"
    stamps = [element.text for element in block.iterfind("mr:IntervalReadings/mr:timeStamp", NS)]
    values = [element.text for element in block.iterfind("mr:IntervalReadings/mr:value", NS)]
    assert len(stamps) == 96
    assert stamps[0] == "2026-06-15T00:15:00-04:00" and stamps[-1] == "2026-06-16T00:00:00-04:00"
    truth = client.get("/truth/daily", query_string={
        "supply_id": supply["supply_id"], "from": "2026-06-15", "to": "2026-06-16"}).get_json()
    assert sum(round(float(value) * 1000) for value in values) == truth["days"][0]["wh"]
    registers = reading.findall("mr:Readings", NS)
    assert [r.findtext("mr:timeStamp", namespaces=NS) for r in registers] == ["2026-06-16T00:00:00-04:00"]


def test_clock_change_days_have_100_and_92_readings(client, supplies):
    mrid = supplies[1]["usage_point_mrid"]
    # 4 April: -03:00 until the clock goes back at 24:00; 6 September begins at 01:00 -03:00 (the jump).
    for start, end, expected, offsets in (("2026-04-04T03:00:00Z", "2026-04-05T04:00:00Z", 100, {"-03:00", "-04:00"}),
                                          ("2026-09-06T04:00:00Z", "2026-09-07T03:00:00Z", 92, {"-03:00"})):
        root = etree.fromstring(client.post("/cim/mdm", data=request_xml("MeterReadings", start, end, [mrid])).data)
        stamps = [e.text for e in root.iterfind(".//mr:IntervalBlocks/mr:IntervalReadings/mr:timeStamp", NS)]
        assert len(stamps) == expected
        instants = [dt.datetime.fromisoformat(stamp) for stamp in stamps]
        assert all(later - earlier == dt.timedelta(minutes=15) for earlier, later in zip(instants, instants[1:]))
        assert {stamp[-6:] for stamp in stamps} == offsets
        assert stamps[-1] == end.replace("T03:00:00Z", "T00:00:00-03:00").replace("T04:00:00Z", "T00:00:00-04:00")


def test_solar_supply_has_received_block_and_registers(client, supplies):
    solar = next(supply for supply in supplies if supply["has_solar"])
    root = etree.fromstring(client.post("/cim/mdm", data=request_xml(
        "MeterReadings", "2026-03-01T03:00:00Z", "2026-03-03T03:00:00Z", [solar["usage_point_mrid"]])).data)
    types = [e.get("ref") for e in root.iterfind(".//mr:IntervalBlocks/mr:ReadingType", NS)]
    assert types == ["0.0.2.4.1.1.12.0.0.0.0.0.0.0.0.3.72.0", "0.0.2.4.19.1.12.0.0.0.0.0.0.0.0.3.72.0"]
    register_types = sorted(e.get("ref") for e in root.iterfind(".//mr:Readings/mr:ReadingType", NS))
    assert register_types == ["0.0.0.1.1.1.12.0.0.0.0.0.0.0.0.3.72.0"] * 2 + [
        "0.0.0.1.19.1.12.0.0.0.0.0.0.0.0.3.72.0"] * 2
    received = root.findall(".//mr:IntervalBlocks", NS)[1]
    exported = sum(float(e.text) for e in received.iterfind("mr:IntervalReadings/mr:value", NS))
    truth = client.get("/truth/daily", query_string={"supply_id": solar["supply_id"], "from": "2026-03-01",
                                                     "to": "2026-03-03", "flow": "received"}).get_json()
    assert round(exported * 1000) == sum(day["wh"] for day in truth["days"]) > 0


def test_unknown_usage_point_among_known_is_partial(client, supplies):
    response = client.post("/cim/mdm", data=request_xml(
        "MeterReadings", "2026-06-15T04:00:00Z", "2026-06-15T05:00:00Z",
        [supplies[2]["usage_point_mrid"], "no-such-point", supplies[3]["usage_point_mrid"]],
        namespace="http://www.iec.ch/TC57/2011/schema/message"))
    assert response.status_code == 200
    root = etree.fromstring(response.data)
    assert root.findtext("m:Reply/m:Result", namespaces=NS) == "PARTIAL"
    (error,) = root.findall("m:Reply/m:Error", NS)
    assert error.findtext("m:level", namespaces=NS) == "WARNING"
    assert error.findtext("m:details", namespaces=NS) == "no-such-point"
    assert len(root.findall(".//mr:MeterReading", NS)) == 2
    assert len(root.findall(".//mr:IntervalReadings", NS)) == 2 * 4


@pytest.mark.parametrize(("body", "code"), [
    (b"", "EMPTY_REQUEST"),
    (b"<RequestMessage><Header>", "MALFORMED_XML"),
    (b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]><RequestMessage>&x;'
     b"</RequestMessage>", "UNSAFE_XML"),
    (b"<ResponseMessage/>", "UNEXPECTED_MESSAGE"),
    (request_xml("EndDeviceEvents", "2026-06-15T04:00:00Z", "2026-06-16T04:00:00Z", ["x"]), "UNKNOWN_NOUN"),
    (request_xml("MeterReadings", None, "2026-06-16T04:00:00Z", ["x"]), "MISSING_TIME"),
    (request_xml("MeterReadings", "2026-06-15T04:00:00", "2026-06-16T04:00:00Z", ["x"]), "INVALID_TIME"),
    (request_xml("MeterReadings", "2026-06-16T04:00:00Z", "2026-06-15T04:00:00Z", ["x"]), "INVALID_WINDOW"),
    (request_xml("MeterReadings", "2026-03-01T03:00:00Z", "2026-05-03T04:00:00Z", ["x"]), "WINDOW_TOO_LONG"),
    (request_xml("MeterReadings", "2026-06-15T04:00:00Z", "2026-06-16T04:00:00Z"), "NO_USAGE_POINT"),
    (request_xml("MeterReadings", "2026-06-15T04:00:00Z", "2026-06-16T04:00:00Z", ["x", "y"]), "UNKNOWN_USAGE_POINT"),
])
def test_bad_requests_get_a_fault_message(client, body, code):
    assert_fault(client.post("/cim/mdm", data=body), 400, code)


def test_fault_copies_the_correlation_id(client):
    root = assert_fault(client.post("/cim/mdm", data=request_xml("MeterReadings", correlation_id="abc")), 400,
                        "MISSING_TIME")
    assert root.findtext("m:Header/m:CorrelationID", namespaces=NS) == "abc"


def test_headend_poll_of_an_unknown_read_is_a_fault(client, supplies):
    # on-demand reads are covered in tests/passthrough/test_passthrough_simulator.py
    assert_fault(client.post("/cim/headend", data=request_xml("MeterReadings", options={"ReadRequestID": "nope"})),
                 404, "UNKNOWN_READ_REQUEST")


def test_cis_customers_and_usage_points(client, supplies):
    customers_truth = client.get("/truth/customers").get_json()
    root = etree.fromstring(client.post("/cim/cis", data=request_xml("Customers")).data)
    assert root.findtext("m:Header/m:Noun", namespaces=NS) == "Customers"
    customers = root.findall("m:Payload/p:Customers/p:Customer", NS)
    assert [c.findtext("p:name", namespaces=NS) for c in customers] == [c["name"] for c in customers_truth]
    assert [c.findtext("p:rut", namespaces=NS) for c in customers] == [c["rut"] for c in customers_truth]
    assert sorted(s for c in customers_truth for s in c["supply_ids"]) == [s["supply_id"] for s in supplies]

    root = etree.fromstring(client.post("/cim/cis", data=request_xml("UsagePoints")).data)
    points = root.findall("m:Payload/p:UsagePoints/p:UsagePoint", NS)
    assert [p.findtext("p:supplyId", namespaces=NS) for p in points] == [s["supply_id"] for s in supplies]
    assert [p.findtext("p:hasSolar", namespaces=NS) == "true" for p in points] == [s["has_solar"] for s in supplies]
    assert_fault(client.post("/cim/cis", data=request_xml("Bills")), 400, "UNKNOWN_NOUN")


def test_billing_all_bills_or_one_supply(client, supplies):
    supply_id = supplies[4]["supply_id"]
    root = etree.fromstring(client.post("/cim/billing", data=request_xml("Bills", options={
        "supply_id": supply_id})).data)
    bills = root.findall("m:Payload/p:Bills/p:Bill", NS)
    truth = client.get("/truth/bills", query_string={"supply_id": supply_id}).get_json()
    assert [b.findtext("p:mRID", namespaces=NS) for b in bills] == [bill["bill_id"] for bill in truth]
    assert len(truth) >= 6
    first = bills[0]
    assert first.findtext("p:kWh", namespaces=NS) == f"{truth[0]['billed_wh'] / 1000:.3f}"
    assert int(first.findtext("p:totalCLP", namespaces=NS)) == truth[0]["total_clp"]
    assert [line.findtext("p:code", namespaces=NS) for line in first.findall("p:Line", NS)][:2] == ["FIXED", "ENERGY"]
    everything = etree.fromstring(client.post("/cim/billing", data=request_xml("Bills")).data)
    assert len(everything.findall(".//p:Bill", NS)) == len(client.get("/truth/bills").get_json()) > len(bills)
    assert_fault(client.post("/cim/billing", data=request_xml("Bills", options={"supply_id": "99999999"})), 400,
                 "UNKNOWN_SUPPLY")


def test_truth_intervals_add_up_to_truth_daily(client, supplies):
    supply_id = supplies[5]["supply_id"]
    query = {"supply_id": supply_id, "from": "2026-04-03", "to": "2026-04-06"}
    points = client.get("/truth/intervals", query_string=query).get_json()["points"]
    days = client.get("/truth/daily", query_string=query).get_json()["days"]
    assert [day["intervals"] for day in days] == [96, 100, 96]
    assert sum(point["wh"] for point in points) == sum(day["wh"] for day in days)
    assert points[0]["interval_end"] == "2026-04-03T00:15:00-03:00"
    assert points[-1]["interval_end"] == "2026-04-06T00:00:00-04:00"


def test_truth_config_and_query_errors(client):
    config = client.get("/truth/config").get_json()
    assert config["history_start"] == "2026-02-20T00:00:00-03:00"
    assert (config["seed"], config["supplies"], config["months"]) == (7, 12, 8)
    assert dt.datetime.fromisoformat(config["now"]) == NOW
    assert client.get("/truth/daily", query_string={"supply_id": "99999999", "from": "2026-01-01",
                                                    "to": "2026-01-02"}).status_code == 404
    assert client.get("/truth/daily", query_string={"supply_id": "30000001", "from": "enero"}).status_code == 400
    assert client.get("/truth/intervals", query_string={"supply_id": "30000001", "from": "2026-03-01",
                                                        "to": "2026-03-02", "flow": "net"}).status_code == 400
