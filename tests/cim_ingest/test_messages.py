"""IEC 61968-100 envelopes: the requests we build (checked by parsing them back, as the simulator does) and
the headers we read from every kind of envelope."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
from lxml import etree

from cim_ingest.errors import InvalidValue, UnexpectedMessage
from cim_ingest.messages import (
    build_get_meter_readings,
    build_get_request,
    parse_envelope_header,
    parse_get_request,
)
from cim_ingest.namespaces import GET_METER_READINGS_NS, MESSAGE_NS, MESSAGE_NS_2021, MESSAGE_NS_WWW

UTC = dt.timezone.utc
SANTIAGO = dt.timezone(dt.timedelta(hours=-3))


def test_get_meter_readings_request_round_trips():
    start = dt.datetime(2026, 10, 31, 0, 0, tzinfo=SANTIAGO)
    end = dt.datetime(2026, 11, 1, 3, 0, tzinfo=UTC)
    body = build_get_meter_readings(["up-1", "up-2"], start, end, message_id="m-1", correlation_id="c-1")
    request = parse_get_request(body)
    assert request.header.verb == "get"
    assert request.header.noun == "MeterReadings"
    assert request.header.message_id == "m-1"
    assert request.header.correlation_id == "c-1"
    assert request.header.source == "AMI-PORTAL"
    assert request.header.namespace == MESSAGE_NS
    assert request.start == dt.datetime(2026, 10, 31, 3, 0, tzinfo=UTC)
    assert request.end == end
    assert request.usage_point_mrids == ("up-1", "up-2")


def test_get_meter_readings_request_shape():
    body = build_get_meter_readings(
        ["up-1"], dt.datetime(2026, 1, 1, 3, tzinfo=UTC), dt.datetime(2026, 1, 2, 3, tzinfo=UTC)
    )
    assert body.startswith(b"<?xml")
    root = etree.fromstring(body)
    namespaces = {"m": MESSAGE_NS, "g": GET_METER_READINGS_NS}
    assert root.tag == f"{{{MESSAGE_NS}}}RequestMessage"
    assert root.findtext("m:Request/m:StartTime", namespaces=namespaces) == "2026-01-01T03:00:00Z"
    assert root.findtext("m:Request/m:EndTime", namespaces=namespaces) == "2026-01-02T03:00:00Z"
    assert root.findtext("m:Request/g:GetMeterReadings/g:UsagePoint/g:mRID", namespaces=namespaces) == "up-1"
    header_order = [etree.QName(child).localname for child in root.find("m:Header", namespaces)]
    assert header_order == ["Verb", "Noun", "Timestamp", "Source", "MessageID", "CorrelationID"]
    uuid.UUID(root.findtext("m:Header/m:MessageID", namespaces=namespaces))
    assert root.findtext("m:Header/m:Timestamp", namespaces=namespaces).endswith("Z")


def test_each_request_gets_fresh_ids():
    window = (dt.datetime(2026, 1, 1, tzinfo=UTC), dt.datetime(2026, 1, 2, tzinfo=UTC))
    first = parse_get_request(build_get_meter_readings(["up"], *window)).header
    second = parse_get_request(build_get_meter_readings(["up"], *window)).header
    assert first.message_id != second.message_id
    assert first.correlation_id != second.correlation_id


@pytest.mark.parametrize(
    "mrids, start, end, words",
    [
        ([], dt.datetime(2026, 1, 1, tzinfo=UTC), dt.datetime(2026, 1, 2, tzinfo=UTC), "at least one"),
        (["up"], dt.datetime(2026, 1, 2, tzinfo=UTC), dt.datetime(2026, 1, 1, tzinfo=UTC), "not before"),
        (["up"], dt.datetime(2026, 1, 1), dt.datetime(2026, 1, 2, tzinfo=UTC), "no time zone"),
    ],
)
def test_bad_meter_readings_requests_are_refused(mrids, start, end, words):
    with pytest.raises(InvalidValue, match=words):
        build_get_meter_readings(mrids, start, end)


@pytest.mark.parametrize("noun", ["Customers", "UsagePoints", "Bills"])
def test_get_requests_for_documents(noun):
    request = parse_get_request(build_get_request(noun, correlation_id="c-9"))
    assert request.header.noun == noun
    assert request.header.correlation_id == "c-9"
    assert request.options == {}


def test_get_bills_carries_the_supply_option():
    request = parse_get_request(build_get_request("Bills", {"supply_id": "30000001"}))
    assert request.options == {"supply_id": "30000001"}


def test_unknown_noun_is_refused():
    with pytest.raises(InvalidValue, match="MeterReadings"):
        build_get_request("MeterReadings")


@pytest.mark.parametrize(
    "name, kind, namespace, result",
    [
        ("response_ok.xml", "Response", MESSAGE_NS, "OK"),
        ("response_partial_www_ns.xml", "Response", MESSAGE_NS_WWW, "PARTIAL"),
        ("event_changed_2021_reordered.xml", "Event", MESSAGE_NS_2021, None),
        ("fault.xml", "Fault", MESSAGE_NS, "FAILED"),
        ("response_failed.xml", "Response", MESSAGE_NS, "FAILED"),
        ("request_message.xml", "Request", MESSAGE_NS, None),
    ],
)
def test_envelope_headers(data_file, name, kind, namespace, result):
    header = parse_envelope_header(data_file(name))
    assert (header.kind, header.namespace, header.result) == (kind, namespace, result)


def test_envelope_header_fields(data_file):
    header = parse_envelope_header(data_file("event_changed_2021_reordered.xml"))
    assert header.verb == "changed"
    assert header.noun == "MeterReadings"
    assert header.message_id == "event-1"
    assert header.correlation_id is None
    assert header.source == "SIM-HEADEND"
    assert header.timestamp == dt.datetime(2026, 1, 2, 18, 0, tzinfo=UTC)


def test_envelope_header_of_fault_lists_errors(data_file):
    header = parse_envelope_header(data_file("fault.xml"))
    assert [(error.code, error.level, error.reason, error.details) for error in header.errors] == [
        ("1.3", "FATAL", "Unknown noun", "Noun Foo is not served")
    ]


def test_non_envelope_root_is_unexpected(data_file):
    with pytest.raises(UnexpectedMessage, match="not an IEC 61968-100 envelope"):
        parse_envelope_header(data_file("bare_wh.xml"))


def test_envelope_in_unknown_namespace_is_unexpected(data_file):
    with pytest.raises(UnexpectedMessage, match="namespace"):
        parse_envelope_header(data_file("unknown_namespace.xml"))


def test_header_timestamp_without_offset_is_invalid():
    message = (
        f'<ResponseMessage xmlns="{MESSAGE_NS}"><Header><Timestamp>2026-01-01T00:00:00</Timestamp></Header>'
        "</ResponseMessage>"
    )
    with pytest.raises(InvalidValue, match="no UTC offset"):
        parse_envelope_header(message)
