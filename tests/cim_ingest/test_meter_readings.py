"""MeterReadings parsing: contract frames, envelopes in all accepted namespaces, replies, element order,
daylight-saving days, units, and rejection of bad content (whole message, nothing half returned)."""

from __future__ import annotations

import datetime as dt
import io

import polars as pl
import pytest

from cim_ingest.errors import BackendReplyError, InvalidValue, UnexpectedMessage, UnsupportedReadingType
from cim_ingest.meter_readings import INTERVAL_SCHEMA, REGISTER_SCHEMA, parse_meter_readings
from cim_ingest.namespaces import MESSAGE_NS, MESSAGE_NS_2021, MESSAGE_NS_WWW

UTC = dt.timezone.utc
UP1 = "bbbbbbbb-0000-4000-8000-000000000001"
UP2 = "bbbbbbbb-0000-4000-8000-000000000002"
METER1 = "aaaaaaaa-0000-4000-8000-000000000001"
DELIVERED_15 = "0.0.2.4.1.1.12.0.0.0.0.0.0.0.0.3.72.0"


def test_response_gives_contract_frames(data_file):
    batch = parse_meter_readings(data_file("response_ok.xml"))
    assert dict(batch.intervals.schema) == INTERVAL_SCHEMA
    assert dict(batch.registers.schema) == REGISTER_SCHEMA
    assert batch.header.kind == "Response"
    assert batch.header.result == "OK"
    assert batch.header.correlation_id == "22222222-2222-4222-8222-222222222222"

    first = batch.intervals.filter(pl.col("usage_point_mrid") == UP1, pl.col("flow") == "delivered")
    assert first["interval_end"].to_list() == [
        dt.datetime(2026, 1, 1, 3, 15, tzinfo=UTC),
        dt.datetime(2026, 1, 1, 3, 30, tzinfo=UTC),
        dt.datetime(2026, 1, 1, 3, 45, tzinfo=UTC),
        dt.datetime(2026, 1, 1, 4, 0, tzinfo=UTC),
    ]
    assert first["kwh"].to_list() == [0.123, 0.101, 0.2, None]
    assert first["quality"].to_list() == ["actual", "estimated", "edited", "missing"]
    assert first["quality_codes"].to_list() == ["", "3.8.0", "3.7.0;1.4.9", "2.5.259"]
    assert set(first["meter_mrid"]) == {METER1}
    assert set(first["interval_seconds"]) == {900}
    assert set(batch.intervals["source_message_id"]) == {"11111111-1111-4111-8111-111111111111"}

    received = batch.intervals.filter(pl.col("flow") == "received")
    assert received["kwh"].to_list() == [0.0, 0.05]
    assert received["reading_type"].to_list() == ["0.0.2.4.19.1.12.0.0.0.0.0.0.0.0.3.72.0"] * 2

    second = batch.intervals.filter(pl.col("usage_point_mrid") == UP2)
    assert second["meter_mrid"].to_list() == ["aaaaaaaa-0000-4000-8000-000000000002"]
    assert second["kwh"].to_list() == [0.3]

    registers = batch.registers.sort("flow")
    assert registers["flow"].to_list() == ["delivered", "received"]
    assert registers["kwh"].to_list() == [12345.678, 321.5]
    assert registers["read_at"].to_list() == [dt.datetime(2026, 1, 2, 3, 0, tzinfo=UTC)] * 2
    assert set(registers["usage_point_mrid"]) == {UP1}


def test_wh_with_multiplier_zero_lands_as_the_same_kwh(data_file):
    in_kwh = parse_meter_readings(data_file("response_ok.xml"))
    in_wh = parse_meter_readings(data_file("bare_wh.xml"))
    kwh_values = in_kwh.intervals.filter(pl.col("usage_point_mrid") == UP1, pl.col("flow") == "delivered")
    assert in_wh.intervals["kwh"].to_list() == kwh_values["kwh"].head(3).to_list()
    assert in_wh.intervals["interval_end"].to_list() == kwh_values["interval_end"].head(3).to_list()
    assert in_wh.registers["kwh"].to_list() == [12345.678]


def test_bare_document_has_a_document_header_and_no_message_id(data_file):
    batch = parse_meter_readings(data_file("bare_wh.xml"))
    assert batch.header.kind == "Document"
    assert set(batch.intervals["source_message_id"]) == {""}


@pytest.mark.parametrize(
    "name, namespace, kind",
    [
        ("response_ok.xml", MESSAGE_NS, "Response"),
        ("response_partial_www_ns.xml", MESSAGE_NS_WWW, "Response"),
        ("event_changed_2021_reordered.xml", MESSAGE_NS_2021, "Event"),
    ],
)
def test_all_three_message_namespaces_are_accepted(data_file, name, namespace, kind):
    batch = parse_meter_readings(data_file(name))
    assert batch.header.namespace == namespace
    assert batch.header.kind == kind
    assert batch.intervals.height > 0


def test_partial_reply_returns_the_batch_with_its_errors(data_file):
    batch = parse_meter_readings(data_file("response_partial_www_ns.xml"))
    assert batch.header.result == "PARTIAL"
    assert [(error.code, error.level, error.reason, error.details) for error in batch.header.errors] == [
        ("2.4", "WARNING", "No data for usage point", "cccccccc-0000-4000-8000-000000000009")
    ]
    assert batch.intervals.height == 7


def test_failed_reply_raises_with_the_errors(data_file):
    with pytest.raises(BackendReplyError) as caught:
        parse_meter_readings(data_file("response_failed.xml"))
    assert caught.value.result == "FAILED"
    assert caught.value.errors[0].reason == "MDM database unavailable"
    assert caught.value.errors[0].level == "FATAL"
    assert "MDM database unavailable" in str(caught.value)


def test_fault_message_raises(data_file):
    with pytest.raises(BackendReplyError) as caught:
        parse_meter_readings(data_file("fault.xml"))
    assert caught.value.errors[0].code == "1.3"


def test_element_order_inside_meter_reading_and_readings_may_vary(data_file):
    batch = parse_meter_readings(data_file("event_changed_2021_reordered.xml"))
    assert batch.header.verb == "changed"
    assert batch.header.message_id == "event-1"
    assert batch.intervals["interval_end"].to_list() == [
        dt.datetime(2026, 1, 1, 3, 30, tzinfo=UTC),
        dt.datetime(2026, 1, 1, 3, 45, tzinfo=UTC),
    ]
    assert batch.intervals["kwh"].to_list() == [0.101, 0.099]
    assert batch.intervals["quality"].to_list() == ["edited", "actual"]
    assert set(batch.intervals["usage_point_mrid"]) == {UP1}
    assert set(batch.intervals["meter_mrid"]) == {METER1}
    assert batch.registers["kwh"].to_list() == [12345.678]
    assert set(batch.registers["source_message_id"]) == {"event-1"}


def test_april_fall_back_keeps_the_repeated_local_hour_apart(data_file):
    batch = parse_meter_readings(data_file("dst_april_fall_back.xml"))
    ends = batch.intervals["interval_end"].to_list()
    # 23:30 and 23:45 local happen twice (-03:00 then -04:00): seven distinct instants, 15 minutes apart.
    assert ends == [dt.datetime(2026, 4, 5, 2, 30, tzinfo=UTC) + dt.timedelta(minutes=15 * i) for i in range(7)]
    local = batch.intervals.select(pl.col("interval_end").dt.convert_time_zone("America/Santiago").dt.strftime("%H:%M"))
    assert local.to_series().to_list() == ["23:30", "23:45", "23:00", "23:15", "23:30", "23:45", "00:00"]


def test_september_spring_forward_skips_the_missing_local_hour(data_file):
    batch = parse_meter_readings(data_file("dst_september_spring_forward.xml"))
    ends = batch.intervals["interval_end"].to_list()
    assert ends == [dt.datetime(2026, 9, 6, 3, 30, tzinfo=UTC) + dt.timedelta(minutes=15 * i) for i in range(4)]


@pytest.mark.parametrize(
    "name, error, words",
    [
        ("non_numeric_value.xml", InvalidValue, "'0,101'"),
        ("impossible_timestamp.xml", InvalidValue, "'2026-02-30T00:00:00-03:00'"),
        ("naive_timestamp.xml", InvalidValue, "no UTC offset"),
        ("unsupported_varh.xml", UnsupportedReadingType, "unit 73 (VArh) is not an energy unit we load"),
        ("wrong_noun.xml", UnexpectedMessage, "EndDeviceEvents"),
        ("request_message.xml", UnexpectedMessage, "RequestMessage"),
        ("unknown_namespace.xml", UnexpectedMessage, "http://example.com/not-iec/message"),
        ("customers.xml", UnexpectedMessage, "Customers"),
    ],
)
def test_bad_messages_are_rejected_whole(data_file, name, error, words):
    with pytest.raises(error) as caught:
        parse_meter_readings(data_file(name))
    assert words in str(caught.value)


def test_every_source_kind_is_accepted(data_file):
    path = data_file("response_ok.xml")
    raw = path.read_bytes()
    expected = parse_meter_readings(path).intervals
    for source in (raw, raw.decode("utf-8"), str(path), io.BytesIO(raw)):
        assert parse_meter_readings(source).intervals.equals(expected)


def _envelope(body: str, namespace: str = MESSAGE_NS, verb: str = "reply", root: str = "ResponseMessage") -> str:
    return (
        f'<{root} xmlns="{namespace}"><Header><Verb>{verb}</Verb><Noun>MeterReadings</Noun>'
        f"<MessageID>m</MessageID></Header><Reply><Result>OK</Result></Reply>"
        f'<Payload><MeterReadings xmlns="http://iec.ch/TC57/2011/MeterReadings#">{body}</MeterReadings></Payload>'
        f"</{root}>"
    )


def _meter_reading(readings: str, reading_type: str = DELIVERED_15, usage_point: str = UP1) -> str:
    return (
        f"<MeterReading><IntervalBlocks>{readings}<ReadingType ref=\"{reading_type}\"/></IntervalBlocks>"
        f"<UsagePoint><mRID>{usage_point}</mRID></UsagePoint></MeterReading>"
    )


def _reading(timestamp: str, value: str) -> str:
    return f"<IntervalReadings><timeStamp>{timestamp}</timeStamp><value>{value}</value></IntervalReadings>"


def test_empty_payload_gives_empty_frames_with_the_contract_schema():
    batch = parse_meter_readings(_envelope(""))
    assert batch.intervals.height == 0 and batch.registers.height == 0
    assert dict(batch.intervals.schema) == INTERVAL_SCHEMA
    assert dict(batch.registers.schema) == REGISTER_SCHEMA


@pytest.mark.parametrize("verb", ["created", "changed"])
def test_event_verbs_created_and_changed_are_accepted(verb):
    message = _envelope(_meter_reading(_reading("2026-01-01T00:15:00-03:00", "1")), verb=verb, root="EventMessage")
    assert parse_meter_readings(message).intervals["kwh"].to_list() == [1.0]


def test_event_with_other_verb_is_rejected():
    message = _envelope(_meter_reading(_reading("2026-01-01T00:15:00-03:00", "1")), verb="deleted", root="EventMessage")
    with pytest.raises(UnexpectedMessage, match="created"):
        parse_meter_readings(message)


@pytest.mark.parametrize("value", ["abc", "NaN", "inf", "1.2.3", "--1"])
def test_non_numeric_or_non_finite_values_are_rejected(value):
    readings = _reading("2026-01-01T00:15:00-03:00", "1") + _reading("2026-01-01T00:30:00-03:00", value)
    message = _envelope(_meter_reading(readings))
    with pytest.raises(InvalidValue, match="not a finite decimal number"):
        parse_meter_readings(message)


def test_meter_reading_without_usage_point_is_rejected():
    body = _meter_reading(_reading("2026-01-01T00:15:00-03:00", "1")).replace(
        f"<UsagePoint><mRID>{UP1}</mRID></UsagePoint>", ""
    )
    with pytest.raises(InvalidValue, match="no UsagePoint mRID"):
        parse_meter_readings(_envelope(body))


def test_interval_block_with_register_reading_type_is_rejected():
    register_type = "0.0.0.1.1.1.12.0.0.0.0.0.0.0.0.3.72.0"
    body = _meter_reading(_reading("2026-01-01T00:15:00-03:00", "1"), reading_type=register_type)
    with pytest.raises(UnsupportedReadingType, match="interval"):
        parse_meter_readings(_envelope(body))


def test_many_meter_readings_across_flushes_keep_their_usage_points(monkeypatch):
    """More rows than one flush holds: every row still carries its own usage point and value."""
    import cim_ingest.meter_readings as meter_readings

    monkeypatch.setattr(meter_readings, "FLUSH_ROWS", 10)
    start = dt.datetime(2026, 1, 1, 3, 0, tzinfo=UTC)
    body = "".join(
        _meter_reading(
            "".join(
                _reading((start + dt.timedelta(minutes=15 * (i + 1))).isoformat(), f"{point}.{i:03d}")
                for i in range(7)
            ),
            usage_point=f"up-{point}",
        )
        for point in range(9)
    )
    batch = parse_meter_readings(_envelope(body))
    assert batch.intervals.height == 63
    expected_points = [f"up-{point}" for point in range(9) for _ in range(7)]
    assert batch.intervals["usage_point_mrid"].to_list() == expected_points
    assert batch.intervals["kwh"].to_list() == [float(f"{point}.{i:03d}") for point in range(9) for i in range(7)]
