"""Property-based tests: CIM and Green Button serialise/parse round trips, and a fuzz target asserting the parsers
only ever fail with our CimError subclasses (never an lxml, Polars or Python error leaking out)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import polars as pl
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cim_ingest.errors import CimError
from cim_ingest.greenbutton import ExportInterval, ExportSupply, iter_green_button_feed, parse_green_button
from cim_ingest.meter_readings import parse_meter_readings
from cim_ingest.quality import portal_quality
from cim_ingest.writer import (
    IntervalBlockOut,
    MeterReadingOut,
    RegisterReadOut,
    ReplyHeader,
    iter_meter_readings_response,
    to_bytes,
)

UTC = dt.timezone.utc
# (code, interval seconds, flow, kWh per unit)
INTERVAL_TYPES = [
    ("0.0.2.4.1.1.12.0.0.0.0.0.0.0.0.3.72.0", 900, "delivered", Decimal(1)),
    ("0.0.2.4.19.1.12.0.0.0.0.0.0.0.0.3.72.0", 900, "received", Decimal(1)),
    ("0.0.2.4.1.1.12.0.0.0.0.0.0.0.0.0.72.0", 900, "delivered", Decimal("0.001")),
    ("0.0.7.4.1.1.12.0.0.0.0.0.0.0.0.3.72.0", 3600, "delivered", Decimal(1)),
    ("0.0.7.4.19.1.12.0.0.0.0.0.0.0.0.0.72.0", 3600, "received", Decimal("0.001")),
    ("11.0.0.4.1.1.12.0.0.0.0.0.0.0.0.3.72.0", 86400, "delivered", Decimal(1)),
    ("0.0.2.4.4.1.12.0.0.0.0.0.0.0.0.6.72.0", 900, "net", Decimal(1000)),
]
REGISTER_TYPES = [
    ("0.0.0.1.1.1.12.0.0.0.0.0.0.0.0.3.72.0", "delivered", Decimal(1)),
    ("0.0.0.9.19.1.12.0.0.0.0.0.0.0.0.0.72.0", "received", Decimal("0.001")),
]
QUALITY_CODES = ["1.0.0", "3.8.0", "3.7.0", "2.5.259", "1.4.9", "3.6.0", "3.11.0", "3.12.1"]
BASE = dt.datetime(2026, 4, 3, 12, tzinfo=UTC)  # around the April clock change

values = st.decimals(min_value=0, max_value=99999, places=3, allow_nan=False, allow_infinity=False)
qualities = st.lists(st.sampled_from(QUALITY_CODES), max_size=3).map(tuple)


@st.composite
def blocks(draw):
    code, seconds, flow, factor = draw(st.sampled_from(INTERVAL_TYPES))
    count = draw(st.integers(min_value=1, max_value=30))
    first = draw(st.integers(min_value=1, max_value=200))
    ends = [BASE + dt.timedelta(seconds=seconds * (first + i)) for i in range(count)]
    vals = draw(st.lists(st.one_of(st.none(), values), min_size=count, max_size=count))
    quals = draw(st.lists(qualities, min_size=count, max_size=count))
    return IntervalBlockOut(code, ends, values=vals, qualities=quals), (seconds, flow, factor)


@st.composite
def meter_readings(draw):
    drawn = draw(st.lists(blocks(), min_size=0, max_size=4))
    registers = []
    for index in range(draw(st.integers(min_value=0, max_value=3))):
        code, flow, factor = draw(st.sampled_from(REGISTER_TYPES))
        registers.append((RegisterReadOut(code, BASE + dt.timedelta(days=index), value=draw(values),
                                          qualities=draw(qualities)), (flow, factor)))
    usage_point = str(draw(st.uuids()))
    return (
        MeterReadingOut(usage_point, str(draw(st.uuids())), [b for b, _ in drawn], [r for r, _ in registers]),
        [meta for _, meta in drawn],
        [meta for _, meta in registers],
    )


def _quality(value, codes) -> str:
    return "missing" if value is None else portal_quality(list(codes))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(meter_readings(), min_size=1, max_size=3), st.uuids())
def test_cim_round_trip(readings, message_id):
    header = ReplyHeader(noun="MeterReadings", correlation_id="c", source="T", message_id=str(message_id),
                         timestamp=dt.datetime(2026, 5, 1, tzinfo=UTC))
    xml = to_bytes(iter_meter_readings_response(header, [r for r, _, _ in readings]))
    batch = parse_meter_readings(xml)
    expected_intervals, expected_registers = [], []
    for reading, block_meta, register_meta in readings:
        for block, (seconds, flow, factor) in zip(reading.interval_blocks, block_meta):
            for end, value, codes in zip(block.ends, block.values, block.qualities):
                kwh = None if value is None else value * factor
                expected_intervals.append((reading.usage_point_mrid, flow, seconds, end, kwh, _quality(value, codes),
                                           ";".join(codes)))
        for register, (flow, factor) in zip(reading.registers, register_meta):
            expected_registers.append((reading.usage_point_mrid, flow, register.read_at, register.value * factor,
                                       _quality(register.value, register.qualities), ";".join(register.qualities)))
    got = [
        (r["usage_point_mrid"], r["flow"], r["interval_seconds"], r["interval_end"],
         None if r["kwh"] is None else Decimal(repr(r["kwh"])), r["quality"], r["quality_codes"])
        for r in batch.intervals.iter_rows(named=True)
    ]
    assert len(got) == len(expected_intervals)
    for g, e in zip(got, expected_intervals):
        assert g[:4] == e[:4] and g[5:] == e[5:]
        assert (g[4] is None) == (e[4] is None)
        if e[4] is not None:
            assert abs(g[4] - e[4]) <= abs(e[4]) * Decimal("1e-12")
    got_registers = [
        (r["usage_point_mrid"], r["flow"], r["read_at"], Decimal(repr(r["kwh"])), r["quality"], r["quality_codes"])
        for r in batch.registers.iter_rows(named=True)
    ]
    assert [g[:3] + g[4:] for g in got_registers] == [e[:3] + e[4:] for e in expected_registers]
    assert all(abs(g[3] - e[3]) <= e[3] * Decimal("1e-12") for g, e in zip(got_registers, expected_registers))
    assert set(batch.intervals["source_message_id"]) <= {str(message_id)}


@st.composite
def export_intervals(draw):
    seconds = draw(st.sampled_from([900, 3600]))
    count = draw(st.integers(min_value=1, max_value=150))
    first = draw(st.integers(min_value=0, max_value=100))
    rows = []
    for i in range(count):
        end = BASE + dt.timedelta(seconds=seconds * (first + i + 1))
        wh = draw(st.integers(min_value=0, max_value=10_000_000))
        rows.append(ExportInterval(end, seconds, Decimal(wh) / 1000, draw(st.sampled_from(
            ["actual", "estimated", "edited"]))))
    return rows


@settings(max_examples=40, deadline=None)
@given(export_intervals(), st.booleans(), st.uuids())
def test_green_button_round_trip(delivered, with_received, usage_point):
    by_flow = {"delivered": delivered}
    if with_received:
        by_flow["received"] = delivered[: len(delivered) // 2 + 1]
    feed = b"".join(iter_green_button_feed(ExportSupply("30000001", "C000001", str(usage_point)), by_flow, [],
                                           dt.date(2026, 4, 1), dt.date(2026, 4, 30)))
    intervals = parse_green_button(feed).intervals
    for flow, rows in by_flow.items():
        got = intervals.filter(pl.col("flow") == flow).sort("interval_end")
        assert got["interval_end"].to_list() == [r.interval_end for r in rows]
        assert got["interval_seconds"].to_list() == [r.interval_seconds for r in rows]
        assert [Decimal(repr(v)) for v in got["kwh"]] == [Decimal(r.kwh) for r in rows]
        assert got["quality"].to_list() == [r.quality for r in rows]
    assert set(intervals["usage_point_mrid"]) == {str(usage_point)}


# --- fuzz target -----------------------------------------------------------------------------------------------

_SEED_HEADER = ReplyHeader(noun="MeterReadings", correlation_id="c", source="T", message_id="m",
                           timestamp=dt.datetime(2026, 5, 1, tzinfo=UTC))
SEED_CIM = to_bytes(iter_meter_readings_response(_SEED_HEADER, [MeterReadingOut(
    "11111111-1111-4111-8111-111111111111", "m1",
    [IntervalBlockOut(INTERVAL_TYPES[0][0], [BASE + dt.timedelta(minutes=15 * i) for i in range(1, 4)],
                      values=[Decimal("0.1"), None, Decimal("2")], qualities=[("3.8.0",), (), ("1.0.0", "3.7.0")])],
    [RegisterReadOut(REGISTER_TYPES[0][0], BASE, value=Decimal("123.456"))])]))
SEED_GB = b"".join(iter_green_button_feed(ExportSupply("30000001", "C000001", "11111111-1111-4111-8111-111111111111"),
                                          {"delivered": [ExportInterval(BASE, 900, Decimal("0.5"), "edited")]}, [],
                                          dt.date(2026, 4, 1), dt.date(2026, 4, 3)))
NASTY = [b"<!DOCTYPE x [<!ENTITY a 'b'>]>", b"&a;", b"&#0;", b"<", b">", b"]]>", b"<![CDATA[", b"\x00", b"\xff\xfe",
         b"-03:00", b"NaN", b"1e999", b"<value>", b"</IntervalReadings>", b"<ReadingType ref='1.2'/>",
         b"2026-02-30T00:00:00Z", b"xmlns='urn:x'", b"99999999999999999999999", b"-", b"\xd9\xa1\xd9\xa2", b"<?xml version='1.0'?>", b"\xe2\x82", b"<MeterReading>"]


@st.composite
def mutated(draw, seed: bytes):
    data = bytearray(seed)
    for _ in range(draw(st.integers(min_value=1, max_value=6))):
        position = draw(st.integers(min_value=0, max_value=len(data)))
        action = draw(st.sampled_from(["insert", "delete", "flip", "truncate", "replace"]))
        if action == "insert":
            data[position:position] = draw(st.one_of(st.sampled_from(NASTY), st.binary(max_size=8)))
        elif action == "delete":
            del data[position: position + draw(st.integers(min_value=1, max_value=40))]
        elif action == "flip" and position < len(data):
            data[position] ^= draw(st.integers(min_value=1, max_value=255))
        elif action == "truncate":
            del data[position:]
        elif action == "replace":
            data[position: position + 5] = draw(st.sampled_from(NASTY))
    return bytes(data)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated(SEED_CIM))
def test_fuzz_cim_parser_raises_only_cim_errors(data):
    try:
        parse_meter_readings(data)
    except CimError:
        pass


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated(SEED_GB))
def test_fuzz_green_button_parser_raises_only_cim_errors(data):
    try:
        parse_green_button(data).intervals
    except CimError:
        pass


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=300))
def test_fuzz_random_bytes(data):
    for parse in (parse_meter_readings, lambda d: parse_green_button(d).intervals):
        try:
            parse(data)
        except CimError:
            pass
