"""Parse IEC 61968-9 MeterReadings (a ResponseMessage, an EventMessage created/changed, or a bare MeterReadings
document) into the interval and register frames of the "Parsed batches" contract in docs/architecture.md.

The document is streamed with `iterparse`: each reading is read into plain per-column lists the moment it
ends and its element is cleared and dropped, so memory follows the number of readings (as compact lists),
not the size of the XML tree. Timestamps, numbers, scaling and qualities are then converted column-wise by
Polars in one go. Any bad value rejects the whole message; nothing is half returned.

Conventions: an interval reading's timeStamp is the END of its interval; values are in the unit/multiplier of
their ReadingType and come out in kWh; a reading without ReadingQualities is actual and has
`quality_codes == ''`; a reading with no value (or an empty one) has `kwh` null and quality `missing`. A
MeterReading must name its UsagePoint mRID; its Meter mRID may be absent (then `meter_mrid` is null)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterator

import numpy as np
import polars as pl
from lxml import etree

from cim_ingest.errors import InvalidValue, UnexpectedMessage, UnsupportedReadingType
from cim_ingest.messages import EnvelopeHeader, EnvelopeReader
from cim_ingest.namespaces import ACCEPTED_METER_READINGS_NAMESPACES
from cim_ingest.quality import MISSING, portal_quality_of_joined
from cim_ingest.reading_types import ReadingType, energy_reading_type
from cim_ingest.xml_safety import XmlSource, local_name

NOUN = "MeterReadings"
UTC = "UTC"
# Accepts 'Z' or a numeric offset and optional fractional seconds; rejects naive and impossible timestamps.
TIMESTAMP_FORMAT = "%Y-%m-%dT%H:%M:%S%.f%#z"
_HAS_OFFSET = re.compile(r"(Z|[+-]\d\d(:?\d\d)?)$")

INTERVAL_SCHEMA = {
    "usage_point_mrid": pl.Utf8,
    "meter_mrid": pl.Utf8,
    "reading_type": pl.Utf8,
    "flow": pl.Utf8,
    "interval_seconds": pl.Int32,
    "interval_end": pl.Datetime("us", UTC),
    "kwh": pl.Float64,
    "quality": pl.Utf8,
    "quality_codes": pl.Utf8,
    "source_message_id": pl.Utf8,
}
REGISTER_SCHEMA = {
    "usage_point_mrid": pl.Utf8,
    "meter_mrid": pl.Utf8,
    "reading_type": pl.Utf8,
    "flow": pl.Utf8,
    "read_at": pl.Datetime("us", UTC),
    "kwh": pl.Float64,
    "quality": pl.Utf8,
    "quality_codes": pl.Utf8,
    "source_message_id": pl.Utf8,
}


@dataclass(frozen=True)
class MeterReadingsBatch:
    """One parsed message: its header (with PARTIAL errors, if any) and the two contract frames."""

    header: EnvelopeHeader
    intervals: pl.DataFrame
    registers: pl.DataFrame


class _Columns:
    """Per-column lists of raw text for one kind of reading (intervals or registers)."""

    def __init__(self) -> None:
        self.usage_point: list[str | None] = []
        self.meter: list[str | None] = []
        self.reading_type: list[str] = []
        self.timestamp: list[str | None] = []
        self.value: list[str | None] = []
        self.codes: list[str] = []

    def __len__(self) -> int:
        return len(self.timestamp)


_local_names: dict[str, str] = {}


def _name(tag: object) -> str:
    """Cached local name: the same few tags repeat millions of times."""
    name = _local_names.get(tag)  # type: ignore[arg-type]
    if name is None:
        name = local_name(tag)
        if isinstance(tag, str):
            _local_names[tag] = name
    return name


def _drop_previous_siblings(element: etree._Element) -> None:
    """Free the already-consumed siblings of the same tag (earlier blocks/MeterReadings), keeping anything else."""
    parent = element.getparent()
    if parent is None:
        return
    previous = element.getprevious()
    while previous is not None and previous.tag == element.tag:
        parent.remove(previous)
        previous = element.getprevious()


def _quality_codes(reading_qualities: etree._Element, timestamp: str | None, codes: list[str]) -> None:
    found = False
    for quality in reading_qualities:
        ref = quality.get("ref")
        if ref and _name(quality.tag) == "ReadingQualityType":
            codes.append(ref.strip())
            found = True
    if not found and reading_qualities.get("ref"):
        codes.append(reading_qualities.get("ref").strip())
        found = True
    if not found:
        raise InvalidValue(
            f"A ReadingQualities element (reading at {timestamp or 'unknown time'}) has no ReadingQualityType ref."
        )


_point_tags: dict[str, tuple[str, str, str, str]] = {}


def _tags_beside(tag: str) -> tuple[str, str, str, str]:
    """timeStamp/value/ReadingQualities/ReadingType tags in the namespace of `tag` (string compares are cheaper
    than computing local names for every child of every reading)."""
    tags = _point_tags.get(tag)
    if tags is None:
        prefix = tag[: tag.rfind("}") + 1]
        names = ("timeStamp", "value", "ReadingQualities", "ReadingType")
        tags = _point_tags[tag] = tuple(prefix + name for name in names)
    return tags


def _read_point(element: etree._Element, columns: _Columns) -> str | None:
    """Append timeStamp, value and quality codes of an IntervalReadings/Readings; return its ReadingType ref."""
    tags = _point_tags.get(element.tag) or _tags_beside(element.tag)
    timestamp_tag, value_tag, qualities_tag, reading_type_tag = tags
    timestamp = value = reading_type = None
    codes: list[str] | None = None
    for child in element:
        tag = child.tag
        if tag == timestamp_tag:
            timestamp = child.text
        elif tag == value_tag:
            value = child.text
        else:
            name = tag if tag in (qualities_tag, reading_type_tag) else _name(tag)
            if name == qualities_tag or name == "ReadingQualities":
                if codes is None:
                    codes = []
                _quality_codes(child, timestamp, codes)
            elif name == reading_type_tag or name == "ReadingType":
                reading_type = child.get("ref")
            elif name == "timeStamp":
                timestamp = child.text
            elif name == "value":
                value = child.text
    if timestamp is None:
        raise InvalidValue(f"A {_name(element.tag)} element has no timeStamp (value {value!r}).")
    columns.timestamp.append(timestamp)
    columns.value.append(value)
    columns.codes.append(";".join(codes) if codes else "")
    return reading_type


def _mrid_of(element: etree._Element) -> str | None:
    for child in element:
        if _name(child.tag) == "mRID":
            return (child.text or "").strip() or None
    return None


def _require_parent(element: etree._Element, expected: str) -> None:
    parent = element.getparent()
    if parent is None or _name(parent.tag) != expected:
        raise UnexpectedMessage(
            f"A {_name(element.tag)} element sits in {_name(parent.tag) if parent is not None else 'nothing'}, "
            f"not in {expected}."
        )


class _Accumulator:
    """Raw columns of the current stretch of MeterReadings, turned into typed frames every `flush_rows` rows so
    that millions of small Python strings never pile up."""

    def __init__(self, flush_rows: int) -> None:
        self.flush_rows = flush_rows
        self.intervals, self.registers = _Columns(), _Columns()
        self.interval_frames: list[pl.DataFrame] = []
        self.register_frames: list[pl.DataFrame] = []
        self.block_start = 0
        self.interval_mark = self.register_mark = 0

    def close_block(self, element: etree._Element) -> None:
        _require_parent(element, "MeterReading")
        # The ReadingType normally closes the block: look from the end, past the cleared readings.
        code = next(
            (child.get("ref") for child in element.iterchildren(reversed=True) if _name(child.tag) == "ReadingType"),
            None,
        )
        if not code:
            raise InvalidValue("An IntervalBlocks element has no ReadingType ref; its values cannot be read.")
        reading_type = energy_reading_type(code.strip())
        if not reading_type.is_interval:
            raise UnsupportedReadingType(
                reading_type.code, reading_type.name, "an IntervalBlocks must carry an interval (delta) ReadingType"
            )
        intervals = self.intervals
        intervals.reading_type.extend([reading_type.code] * (len(intervals) - self.block_start))
        self.block_start = len(intervals)

    def add_register(self, element: etree._Element) -> None:
        _require_parent(element, "MeterReading")
        code = _read_point(element, self.registers)
        if not code:
            raise InvalidValue("A Readings element has no ReadingType ref; its value cannot be read.")
        self.registers.reading_type.append(code.strip())

    def close_meter_reading(self, element: etree._Element) -> None:
        _require_parent(element, "MeterReadings")
        intervals, registers = self.intervals, self.registers
        if self.block_start != len(intervals):
            raise UnexpectedMessage("IntervalReadings were found outside a complete IntervalBlocks.")
        usage_point = meter = None
        for child in element:
            child_name = _name(child.tag)
            if child_name == "UsagePoint":
                usage_point = _mrid_of(child)
            elif child_name == "Meter":
                meter = _mrid_of(child)
        added_intervals = len(intervals) - self.interval_mark
        added_registers = len(registers) - self.register_mark
        if usage_point is None and (added_intervals or added_registers):
            raise InvalidValue(
                f"A MeterReading (meter {meter or 'unknown'}) has readings but no UsagePoint mRID; "
                "they cannot be attributed to a supply."
            )
        for columns, added in ((intervals, added_intervals), (registers, added_registers)):
            columns.usage_point.extend([usage_point] * added)
            columns.meter.extend([meter] * added)
        self.interval_mark, self.register_mark = len(intervals), len(registers)
        if len(intervals) + len(registers) >= self.flush_rows:
            self.flush()

    def flush(self) -> None:
        if self.interval_mark != len(self.intervals) or self.register_mark != len(self.registers):
            raise UnexpectedMessage("Readings were found outside a MeterReading.")
        if len(self.intervals):
            self.interval_frames.append(_typed_frame(self.intervals, is_interval=True))
        if len(self.registers):
            self.register_frames.append(_typed_frame(self.registers, is_interval=False))
        self.intervals, self.registers = _Columns(), _Columns()
        self.block_start = self.interval_mark = self.register_mark = 0


FLUSH_ROWS = 50_000


def parse_meter_readings(source: XmlSource) -> MeterReadingsBatch:
    """Parse a MeterReadings message (bytes, XML text, a path, or a binary file object).

    Raises MalformedXml, UnsafeXml, UnexpectedMessage, InvalidValue, UnsupportedReadingType, or
    BackendReplyError for a FAILED reply or a FaultMessage. A PARTIAL reply returns the batch and keeps the
    reply's errors on `header.errors`."""
    chunks = list(iter_meter_readings_chunks(source))
    header = chunks[-1].header
    intervals = [chunk.intervals for chunk in chunks if chunk.intervals.height]
    registers = [chunk.registers for chunk in chunks if chunk.registers.height]
    return MeterReadingsBatch(
        header=header,
        intervals=pl.concat(intervals) if len(intervals) > 1 else (intervals[0] if intervals else chunks[-1].intervals),
        registers=pl.concat(registers) if len(registers) > 1 else (registers[0] if registers else chunks[-1].registers),
    )


def iter_meter_readings_chunks(source: XmlSource, flush_rows: int = FLUSH_ROWS) -> Iterator[MeterReadingsBatch]:
    """Stream a MeterReadings message as batches of about `flush_rows` readings (whole MeterReadings each), so a
    caller can load a message of any size with flat memory. Each chunk's header carries the Header and Reply
    (read before the Payload); the LAST chunk, always yielded (possibly empty), carries the final, fully checked
    header. Errors as `parse_meter_readings`; a consumer must treat a chunk as provisional until the iteration
    ends without error (load chunks inside one transaction)."""
    accumulator = _Accumulator(flush_rows)
    reader = EnvelopeReader(
        source,
        NOUN,
        ACCEPTED_METER_READINGS_NAMESPACES,
        ("IntervalReadings", "IntervalBlocks", "Readings", "MeterReading"),
    )
    block_tags: set[str] = set()
    for name, element in reader:
        if name == "IntervalReadings":
            parent = element.getparent()
            # Checked per reading but cheaply: a tag string compare against the blocks seen so far.
            if parent is None or parent.tag not in block_tags:
                _require_parent(element, "IntervalBlocks")
                block_tags.add(parent.tag)
            _read_point(element, accumulator.intervals)
            element.clear()
            continue
        if name == "IntervalBlocks":
            accumulator.close_block(element)
        elif name == "Readings":
            accumulator.add_register(element)
        else:
            accumulator.close_meter_reading(element)
        element.clear()
        _drop_previous_siblings(element)
        if accumulator.interval_frames or accumulator.register_frames:
            assert reader.header is not None
            yield _drain(accumulator, reader.header)
    accumulator.flush()
    assert reader.header is not None
    yield _drain(accumulator, reader.header)


def _drain(accumulator: _Accumulator, header: EnvelopeHeader) -> MeterReadingsBatch:
    message_id = header.message_id or ""
    intervals = _finish(accumulator.interval_frames, INTERVAL_SCHEMA, message_id)
    registers = _finish(accumulator.register_frames, REGISTER_SCHEMA, message_id)
    accumulator.interval_frames, accumulator.register_frames = [], []
    return MeterReadingsBatch(header=header, intervals=intervals, registers=registers)


def _finish(frames: list[pl.DataFrame], schema: dict[str, pl.DataType], message_id: str) -> pl.DataFrame:
    if not frames:
        return pl.DataFrame(schema=schema)
    combined = pl.concat(frames, how="vertical") if len(frames) > 1 else frames[0]
    return combined.with_columns(pl.lit(message_id, dtype=pl.Utf8).alias("source_message_id")).select(
        [pl.col(name).cast(dtype) for name, dtype in schema.items()]
    )


def _reading_types(codes: list[str], is_interval: bool) -> dict[str, ReadingType]:
    decoded: dict[str, ReadingType] = {}
    for code in set(codes):
        reading_type = energy_reading_type(code)
        if not is_interval and not reading_type.is_register:
            raise UnsupportedReadingType(
                reading_type.code, reading_type.name, "a Readings element must carry a register ReadingType"
            )
        decoded[code] = reading_type
    return decoded


RAW_SCHEMA = {name: pl.Utf8 for name in
              ("usage_point_mrid", "meter_mrid", "reading_type", "timestamp_text", "value_text", "quality_codes")}


def _typed_frame(columns: _Columns, is_interval: bool) -> pl.DataFrame:
    """Typed, validated and scaled rows (all contract columns but `source_message_id`) from raw text columns."""
    return typed_readings(_raw_frame(columns), is_interval)


def _raw_frame(columns: _Columns) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "usage_point_mrid": columns.usage_point,
            "meter_mrid": columns.meter,
            "reading_type": columns.reading_type,
            "timestamp_text": columns.timestamp,
            "value_text": columns.value,
            "quality_codes": columns.codes,
        },
        schema=RAW_SCHEMA,
    )


def typed_readings(raw: pl.DataFrame, is_interval: bool) -> pl.DataFrame:
    """`_typed_frame` of a frame of raw texts (`RAW_SCHEMA`: the columns of `_Columns`, as read from the XML)."""
    schema = {name: dtype for name, dtype in (INTERVAL_SCHEMA if is_interval else REGISTER_SCHEMA).items()
              if name != "source_message_id"}
    time_column = "interval_end" if is_interval else "read_at"
    types = _reading_types(raw["reading_type"].unique().to_list(), is_interval)
    parsed = raw.lazy().with_columns(
        pl.col("timestamp_text").str.strip_chars(),
        pl.col("value_text").str.strip_chars().replace("", None),
    ).with_columns(pl.col("value_text").cast(pl.Float64, strict=False).alias("value")).collect(engine="in-memory")
    parsed = parsed.with_columns(_parse_timestamps(parsed["timestamp_text"]).alias(time_column))
    bad_timestamps, bad_values = parsed.select(
        pl.col(time_column).null_count(), _bad_value.sum()).row(0)
    if bad_timestamps:
        _raise_for_bad_timestamps(parsed, time_column)
    if bad_values:
        _raise_for_bad_values(parsed)
    qualities = {codes: portal_quality_of_joined(codes) for codes in parsed["quality_codes"].unique().to_list()}
    reading_type = pl.col("reading_type")
    return parsed.lazy().with_columns(
        (pl.col("value") * _factor(reading_type, {code: 10.0 ** max(rt.multiplier - 3, 0) for code, rt in
                                                  types.items()}, parsed.height)
         / _factor(reading_type, {code: 10.0 ** max(3 - rt.multiplier, 0) for code, rt in types.items()},
                   parsed.height)).alias("kwh"),
        _by_code(reading_type, {code: rt.flow for code, rt in types.items()}, pl.Utf8).alias("flow"),
        _by_code(reading_type, {code: rt.interval_seconds for code, rt in types.items()}, pl.Int32).alias(
            "interval_seconds"),
        pl.when(pl.col("value").is_null())
        .then(pl.lit(MISSING))
        .otherwise(_by_code(pl.col("quality_codes"), qualities, pl.Utf8))
        .alias("quality"),
    ).select([pl.col(name).cast(dtype) for name, dtype in schema.items()]).collect(engine="in-memory")


_bad_value = (pl.col("value_text").is_not_null() & pl.col("value").is_null()) | ~pl.col("value").is_finite()


def _factor(column: pl.Expr, mapping: dict, rows: int) -> pl.Expr:
    """Per-row scale factors, never a constant: Polars turns a division by a constant into a multiplication by
    its inverse, which is not always the exactly rounded quotient (0.627 / 1000 would give 0.0006270000000000001);
    one reading type gives a column of its factor without a lookup per row."""
    if len(mapping) == 1:
        return pl.lit(pl.Series(np.full(rows, next(iter(mapping.values())), dtype=np.float64)))
    return _by_code(column, mapping, pl.Float64)


def _by_code(column: pl.Expr, mapping: dict, dtype: pl.DataType) -> pl.Expr:
    """`column` mapped through `mapping` (which holds every value it takes); a constant when there is one value,
    as in most batches (one reading type, one quality), which spares a lookup per row."""
    if len(mapping) == 1:
        return pl.lit(next(iter(mapping.values())), dtype=dtype)
    return column.replace_strict(mapping, return_dtype=dtype)


def _parse_timestamps(texts: pl.Series) -> pl.Series:
    """UTC instants of ISO 8601 texts (null where invalid). Each distinct text is parsed once: a message for many
    usage points repeats the same few timestamps."""
    distinct = texts.unique()
    if len(distinct) * 4 > len(texts):
        return texts.str.to_datetime(TIMESTAMP_FORMAT, time_unit="us", time_zone=UTC, strict=False)
    instants = distinct.str.to_datetime(TIMESTAMP_FORMAT, time_unit="us", time_zone=UTC, strict=False)
    return texts.replace_strict(distinct, instants, return_dtype=pl.Datetime("us", UTC))


def _raise_for_bad_timestamps(parsed: pl.DataFrame, time_column: str) -> None:
    bad = parsed.filter(pl.col(time_column).is_null())
    if bad.height == 0:
        return
    row = bad.row(0, named=True)
    text = row["timestamp_text"]
    where = f"usage point {row['usage_point_mrid']}, ReadingType {row['reading_type']}"
    if not _HAS_OFFSET.search(text):
        reason = "has no UTC offset; timestamps must carry one (e.g. -03:00 or Z)"
    else:
        reason = "is not a valid date and time"
    raise InvalidValue(f"Timestamp {text!r} ({where}) {reason}; {bad.height} reading(s) affected, message rejected.")


def _raise_for_bad_values(parsed: pl.DataFrame) -> None:
    bad = parsed.filter(_bad_value)
    if bad.height == 0:
        return
    row = bad.row(0, named=True)
    raise InvalidValue(
        f"Value {row['value_text']!r} at {row['timestamp_text']} (usage point {row['usage_point_mrid']}, "
        f"ReadingType {row['reading_type']}) is not a finite decimal number; {bad.height} reading(s) affected, "
        "message rejected."
    )
