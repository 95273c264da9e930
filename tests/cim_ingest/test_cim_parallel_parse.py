"""The parallel, piece-wise MeterReadings parser gives exactly the reference parser's batches and errors.

Messages are written as files (by cim_ingest.writer, or edited by hand for the odd cases) and read both ways:
`iter_meter_readings_chunks` (the reference) and `iter_meter_readings_batches` (pieces, in the calling thread and
on parse threads)."""

from __future__ import annotations

import datetime as dt
import re
import threading
from pathlib import Path

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree

from cim_ingest import parallel_meter_readings as parallel
from cim_ingest.errors import CimError
from cim_ingest.meter_readings import iter_meter_readings_chunks
from cim_ingest.writer import IntervalBlockOut, MeterReadingOut, ReplyHeader, iter_meter_readings_response, to_bytes

from test_cim_properties import meter_readings

UTC = dt.timezone.utc
DELIVERED_15 = "0.0.2.4.1.1.12.0.0.0.0.0.0.0.0.3.72.0"
HEADER = ReplyHeader(noun="MeterReadings", correlation_id="c", source="T", message_id="m-1",
                     timestamp=dt.datetime(2026, 5, 1, tzinfo=UTC))


def regular_reading(index: int, days: int = 1) -> MeterReadingOut:
    start = dt.datetime(2026, 4, 4, 3, tzinfo=UTC)  # the 25-hour day of 5 April 2026 is in range
    ends = [start + dt.timedelta(minutes=15 * (i + 1)) for i in range(96 * days)]
    return MeterReadingOut(f"up-{index:04d}", f"meter-{index:04d}",
                           [IntervalBlockOut(DELIVERED_15, ends, values_wh=[(index * 7 + i) % 900 for i in
                                                                            range(len(ends))])])


def write(path: Path, readings: list[MeterReadingOut]) -> Path:
    path.write_bytes(to_bytes(iter_meter_readings_response(HEADER, readings)))
    return path


def both(path: Path, piece_bytes: int = 64, workers: int = 1):
    reference = list(iter_meter_readings_chunks(path))
    pieces = list(parallel.iter_meter_readings_batches(path, piece_bytes=piece_bytes, workers=workers))
    return reference, pieces


def combined(batches, what: str) -> pl.DataFrame:
    frames = [getattr(batch, what) for batch in batches]
    return pl.concat(frames) if frames else pl.DataFrame()


def assert_same(reference, pieces) -> None:
    for what in ("intervals", "registers"):
        assert combined(pieces, what).equals(combined(reference, what)), what
    assert pieces[-1].header == reference[-1].header


def test_regular_blocks_are_read_by_the_fast_path_and_match(tmp_path):
    path = write(tmp_path / "regular.xml", [regular_reading(i, days=2) for i in range(5)])
    with open(path, "rb") as handle:
        layout = parallel._layout(handle, path.stat().st_size)
        assert layout is not None
        pieces = list(parallel._pieces(handle, layout, 64))
    assert len(pieces) == 5  # one MeterReading per piece
    namespace = layout.namespaces[None]
    parsed = [parallel._parse_piece(piece, layout.wrapper(), namespace) for piece in pieces]
    assert all(result is not None for result in parsed)  # no piece needed the reference parser
    reference, batches = both(path)
    assert_same(reference, batches)
    assert combined(batches, "intervals").height == 5 * 192


def _as_frame(columns) -> pl.DataFrame:
    from cim_ingest.meter_readings import _raw_frame

    return _raw_frame(columns)


def _prefixed(path: Path, prefix: str = "m") -> Path:
    """The same message with the MeterReadings namespace bound to `prefix` instead of being the default."""
    text = path.read_text(encoding="utf-8")
    head, payload = text.split("<MeterReadings ", 1)
    payload = re.sub(r"<(/?)(?=[A-Za-z])", rf"<\1{prefix}:", "<MeterReadings " + payload)
    payload = payload.replace(f"<{prefix}:MeterReadings xmlns=", f"<{prefix}:MeterReadings xmlns:{prefix}=", 1)
    body, _, tail = payload.rpartition(f"</{prefix}:MeterReadings>")
    tail = re.sub(rf"<(/?){prefix}:", r"<\1", tail)  # the envelope after the payload keeps its default namespace
    path.write_text(head + body + f"</{prefix}:MeterReadings>" + tail, encoding="utf-8")
    return path


@pytest.mark.parametrize("shape", ["plain", "pretty-printed", "prefixed"])
def test_regular_pieces_are_read_from_their_text_as_from_the_tree(tmp_path, shape, monkeypatch):
    path = write(tmp_path / "regular.xml", [regular_reading(i, days=2) for i in range(4)])
    if shape == "pretty-printed":
        edited(path, "<IntervalReadings>", "\n   <IntervalReadings>\r\n\t", count=-1)
        edited(path, "<ReadingType ref=", "\n <ReadingType  ref = ")
    if shape == "prefixed":
        _prefixed(path)
    with open(path, "rb") as handle:
        layout = parallel._layout(handle, path.stat().st_size)
        pieces = list(parallel._pieces(handle, layout, 64))
    prefix = "m:" if shape == "prefixed" else ""
    namespace = layout.namespaces["m" if shape == "prefixed" else None]
    for piece in pieces:
        from_text = parallel._TextReader.of(prefix).read(piece)  # raises when the grammar refuses the piece
        tree = etree.fromstring(b"".join((layout.wrapper()[0], piece, layout.wrapper()[1])))
        from_tree, _ = parallel._PieceReader.of(namespace).read(tree)
        assert from_text.height == 192 and from_text.equals(_as_frame(from_tree))
    trees = _count_trees(monkeypatch)
    reference, batches = both(path)
    assert_same(reference, batches)
    assert trees == []  # every piece was read from its text: no lxml tree was built for any


def _count_trees(monkeypatch) -> list:
    """A list that gets an item each time a piece is parsed into an lxml tree."""
    built, original = [], parallel.safe_feed_parser
    monkeypatch.setattr(parallel, "safe_feed_parser", lambda: built.append(1) or original())
    return built


def test_qualities_and_missing_values_are_read_from_the_text_as_by_the_reference(tmp_path, monkeypatch):
    readings = [regular_reading(i) for i in range(3)]
    block = readings[1].interval_blocks[0]
    values = [None if i % 10 == 3 else wh / 1000 for i, wh in enumerate(block.values_wh)]  # some missing
    qualities = [("2.8.0",) if i % 7 == 0 else ("2.7.0", "2.4.0") if i % 11 == 0 else () for i in range(96)]
    readings[1] = MeterReadingOut("up-0001", "meter-0001", [
        IntervalBlockOut(DELIVERED_15, block.ends, values=values, qualities=qualities)])
    path = write(tmp_path / "qualities.xml", readings)
    edited(path, "</ReadingQualities><ReadingQualities>", "</ReadingQualities>\n <ReadingQualities>")
    edited(path, '<ReadingQualityType ref="2.4.0"/>', "<ReadingQualityType ref='2.4.0'></ReadingQualityType>")
    trees = _count_trees(monkeypatch)
    reference, batches = both(path)
    assert_same(reference, batches)
    assert trees == []  # every piece was read from its text
    intervals = combined(batches, "intervals").filter(pl.col("usage_point_mrid") == "up-0001")
    assert intervals["quality_codes"].to_list()[:12] == ["2.8.0", "", "", "", "", "", "", "2.8.0", "", "", "",
                                                         "2.7.0;2.4.0"]
    assert intervals["kwh"].null_count() == 10 and set(intervals.filter(pl.col("kwh").is_null())["quality"]) == {
        "missing"}


@pytest.mark.parametrize(
    "old, new",
    [
        ('<ReadingQualityType ref="2.8.0"/>', '<ReadingQualityType ref=""/>'),  # an empty code: an error
        ('<ReadingQualities><ReadingQualityType ref="2.8.0"/></ReadingQualities>',
         '<ReadingQualities ref="2.8.0"></ReadingQualities>'),  # the code on ReadingQualities itself
        ('<ReadingQualities><ReadingQualityType ref="2.8.0"/>',
         '<ReadingQualities>x<ReadingQualityType ref="2.8.0"/>'),  # text among them
        ("<ReadingQualities><ReadingQualityType", "<ReadingQualities></ReadingQualities><ReadingQualities>"
                                                  "<ReadingQualityType"),  # one holding no code: an error
    ],
)
def test_quality_shapes_the_text_grammar_refuses_go_to_the_tree(tmp_path, old, new, monkeypatch):
    readings = [regular_reading(i) for i in range(3)]
    block = readings[0].interval_blocks[0]
    readings[0] = MeterReadingOut("up-0000", "meter-0000", [IntervalBlockOut(
        DELIVERED_15, block.ends, values_wh=block.values_wh, qualities=[("2.8.0",)] + [()] * 95)])
    path = edited(write(tmp_path / "odd.xml", readings), old, new)
    with open(path, "rb") as handle:
        layout = parallel._layout(handle, path.stat().st_size)
        pieces = list(parallel._pieces(handle, layout, 64))
    with pytest.raises(parallel._NotExact):
        parallel._TextReader.of("").read(pieces[0])
    for piece in pieces[1:]:
        parallel._TextReader.of("").read(piece)
    try:
        reference = list(iter_meter_readings_chunks(path))
    except CimError as expected:
        with pytest.raises(CimError) as got:
            list(parallel.iter_meter_readings_batches(path, piece_bytes=64, workers=1))
        assert str(got.value) == str(expected)
    else:
        assert_same(reference, list(parallel.iter_meter_readings_batches(path, piece_bytes=64, workers=1)))


def test_the_text_grammar_takes_a_prefix_literally_and_only_a_declared_one():
    reader = parallel._TextReader.of("m.x:")
    assert reader.matches("<m.x:MeterReading></m.x:MeterReading>")
    assert not reader.matches("<mYx:MeterReading></mYx:MeterReading>")
    assert not reader.matches("<m.x:MeterReading></m.x:MeterReading>\n<")  # the whole text must match
    layout = parallel._Layout(b"", b"", {None: "urn:a", "m": "urn:b"}, (0, 0), b"</m:MeterReading>")
    assert parallel._text_prefix(layout) == "m:"
    for namespaces, close_tag in (({None: "urn:a"}, b"</m:MeterReading>"),  # m undeclared
                                  ({None: ""}, b"</MeterReading>"),  # no namespace
                                  ({}, b"</MeterReading>")):
        assert parallel._text_prefix(parallel._Layout(b"", b"", namespaces, (0, 0), close_tag)) is None


@pytest.mark.parametrize(
    "old, new",
    [
        ("<value>0.001</value>", "<value>0.00&#49;</value>"),  # a character reference
        ("<value>0.001</value>", "<value>0.001\r</value>"),  # a carriage return lxml turns into a newline
        ("<mRID>meter-0001</mRID>", "<mRID>medidor-año</mRID>"),  # beyond ASCII
        ("<value>0.001</value>", "<value>0.001</value><value>0.002</value>"),  # a second value
        ("<ReadingType ref=", "<ReadingType kind=\"x\" ref="),  # another attribute
        ("<UsagePoint>", "<UsagePoint><mRID>up-x</mRID></UsagePoint><UsagePoint>"),  # two usage points
        ("<Meter><mRID>meter-0001</mRID>", "<Meter><mRID>meter-0001</mRID><name>m</name>"),
    ],
)
def test_what_the_text_grammar_refuses_goes_to_the_tree_and_still_matches(tmp_path, old, new, monkeypatch):
    path = edited(write(tmp_path / "odd.xml", [regular_reading(i) for i in range(3)]), old, new)
    with open(path, "rb") as handle:
        layout = parallel._layout(handle, path.stat().st_size)
        pieces = list(parallel._pieces(handle, layout, 64))
    refused = 0
    for piece in pieces:
        try:
            parallel._TextReader.of("").read(piece)
        except parallel._NotExact:
            refused += 1
    assert refused == 1
    trees = _count_trees(monkeypatch)
    reference, batches = both(path)
    assert_same(reference, batches)
    assert trees  # the refused piece went to lxml


def test_a_message_in_memory_gives_the_same_batches(tmp_path):
    path = write(tmp_path / "bytes.xml", [regular_reading(i) for i in range(3)])
    reference = list(iter_meter_readings_chunks(path))
    assert_same(reference, list(parallel.iter_meter_readings_batches(path.read_bytes(), piece_bytes=64)))


def test_parse_threads_give_the_same_batches(tmp_path, monkeypatch):
    monkeypatch.setattr(parallel, "PARALLEL_MIN_BYTES", 0)
    readings = [regular_reading(i) for i in range(6)]
    block = readings[3].interval_blocks[0]  # one piece with qualities, for lxml on a parse thread too
    readings[3] = MeterReadingOut("up-0003", "meter-0003", [
        IntervalBlockOut(DELIVERED_15, block.ends, values_wh=block.values_wh, qualities=[("2.8.0",)] * 96)])
    path = write(tmp_path / "workers.xml", readings)
    threads = _parse_threads(monkeypatch)
    reference, pieces = both(path, workers=2)
    assert_same(reference, pieces)
    assert len(pieces) == 7  # six pieces and the closing batch with the final header
    assert threads and all(name.startswith("cim-parse") for name in threads)


def _parse_threads(monkeypatch) -> list:
    """The names of the threads pieces were parsed on."""
    names, original = [], parallel._parse_piece

    def recording(*args):
        names.append(threading.current_thread().name)
        return original(*args)

    monkeypatch.setattr(parallel, "_parse_piece", recording)
    return names


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                 HealthCheck.function_scoped_fixture])
@given(st.lists(meter_readings(), min_size=1, max_size=4), st.sampled_from([64, 2_000, 1 << 20]))
def test_any_message_gives_the_reference_batches(tmp_path, readings, piece_bytes):
    """Qualities, missing values, registers, several reading types, Wh and kWh: whatever the pieces hold."""
    path = write(tmp_path / "any.xml", [reading for reading, _, _ in readings])
    reference, pieces = both(path, piece_bytes=piece_bytes)
    assert_same(reference, pieces)


def edited(path: Path, old: str, new: str, count: int = 1) -> Path:
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new, count), encoding="utf-8")
    return path


@pytest.mark.parametrize(
    "old, new",
    [
        # a comment whose text looks like an end tag: the file cannot be cut safely, the reference reads it whole
        ("</MeterReading>", "<!-- </MeterReading> --></MeterReading>"),
        # a pretty-printed reading, a CDATA value, a reading with a quality
        ("<IntervalReadings><timeStamp>", "<IntervalReadings>\n  <timeStamp>"),
        ("<value>0.001</value>", "<value><![CDATA[0.001]]></value>"),
        ("</value></IntervalReadings>", "</value><ReadingQualities><ReadingQualityType ref=\"3.8.0\"/>"
                                        "</ReadingQualities></IntervalReadings>"),
        # a value before its timestamp, a reading with no value, an element we do not know
        ("<IntervalReadings><timeStamp>2026-04-04T00:15:00-03:00</timeStamp><value>0.007</value>",
         "<IntervalReadings><value>0.007</value><timeStamp>2026-04-04T00:15:00-03:00</timeStamp>"),
        ("<value>0.008</value>", ""),
        ("<Meter>", "<Extra><Note>x</Note></Extra><Meter>"),
        # an element between MeterReadings
        ("</MeterReading><MeterReading>", "</MeterReading><Stray/><MeterReading>"),
    ],
)
def test_unusual_but_valid_shapes_match_the_reference(tmp_path, old, new):
    path = edited(write(tmp_path / "odd.xml", [regular_reading(i) for i in range(3)]), old, new)
    reference, pieces = both(path)
    assert_same(reference, pieces)


@pytest.mark.parametrize(
    "old, new",
    [
        ("<value>0.012</value>", "<value>doce</value>"),
        ("<timeStamp>2026-04-04T01:00:00-03:00</timeStamp>", "<timeStamp>2026-04-04T01:00:00</timeStamp>"),
        ("<ReadingType ref=\"" + DELIVERED_15, "<ReadingType ref=\"0.0.2.4.1.1.12.0.0.0.0.0.0.0.0.3.38.0"),
        ("<UsagePoint><mRID>up-0002</mRID></UsagePoint>", ""),
        ("</IntervalBlocks>", "<IntervalReadings><timeStamp>x</timeStamp></IntervalReadings></IntervalBlocks>"),
        ("<Meter><mRID>meter-0001</mRID>", "<Meter><IntervalReadings/><mRID>meter-0001</mRID>"),
        # a block without readings still needs a valid interval ReadingType
        ("</UsagePoint>", '</UsagePoint><IntervalBlocks><ReadingType ref="0.0.0.1.1.1.12.0.0.0.0.0.0.0.0.3.72.0"/>'
                          "</IntervalBlocks>"),
        ("</UsagePoint>", '</UsagePoint><IntervalBlocks><ReadingType ref=""/></IntervalBlocks>'),
        ("</UsagePoint>", '</UsagePoint><IntervalBlocks><ReadingType ref="x"/></IntervalBlocks>'),
        ("<Result>OK</Result>", "<Result>FAILED</Result>"),
        ("</MeterReadings>", "</MeterReading></MeterReadings>"),
        ("<MeterReading>", "<!DOCTYPE x [<!ENTITY a \"b\">]><MeterReading>"),
    ],
)
def test_errors_are_the_reference_errors(tmp_path, old, new):
    path = edited(write(tmp_path / "bad.xml", [regular_reading(i) for i in range(3)]), old, new)
    with pytest.raises(CimError) as expected:
        list(iter_meter_readings_chunks(path))
    with pytest.raises(CimError) as got:
        list(parallel.iter_meter_readings_batches(path, piece_bytes=64, workers=1))
    assert type(got.value) is type(expected.value)
    assert str(got.value) == str(expected.value)


def test_a_file_not_in_utf8_is_read_whole_by_the_reference(tmp_path):
    path = write(tmp_path / "latin1.xml", [regular_reading(i) for i in range(2)])
    text = path.read_text(encoding="utf-8").replace('encoding="UTF-8"', 'encoding="ISO-8859-1"')
    text = text.replace("meter-0001", "medidor-año")
    path.write_bytes(text.encode("iso-8859-1"))
    reference, pieces = both(path)
    assert_same(reference, pieces)
    assert "medidor-año" in combined(pieces, "intervals")["meter_mrid"].to_list()


def test_wh_values_read_from_the_text_scale_to_the_exactly_rounded_kwh(tmp_path):
    """A Wh reading type (no multiplier) read by the text tier divides each value by 1000 exactly as Python does
    (a division by a constant in Polars would multiply by 0.001 and miss the nearest double for some values)."""
    wh = "0.0.2.4.1.1.12.0.0.0.0.0.0.0.0.0.72.0"
    values = [627, 1, 3, 7, 49, 999, 1001, 12345, 33333, 77777]
    start = dt.datetime(2026, 4, 4, 3, tzinfo=UTC)
    ends = [start + dt.timedelta(minutes=15 * (i + 1)) for i in range(len(values))]
    readings = [MeterReadingOut(f"up-{n}", f"meter-{n}", [IntervalBlockOut(wh, ends, values=values)])
                for n in range(3)]
    path = write(tmp_path / "wh.xml", readings)
    with open(path, "rb") as handle:
        layout = parallel._layout(handle, path.stat().st_size)
        pieces = list(parallel._pieces(handle, layout, 64))
    raw = parallel._TextReader.of("").read(pieces[0])  # the text tier reads it (raises if it refused)
    assert raw.height == len(values)
    reference, batches = both(path)
    assert_same(reference, batches)
    assert combined(batches, "intervals")["kwh"].to_list() == [value / 1000 for value in values] * 3
