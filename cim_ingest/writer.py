"""Streaming serialisation of IEC 61968-100 replies: `ResponseMessage` carrying IEC 61968-9 `MeterReadings` or
the portal's master-data and bill documents (`Customers`, `UsagePoints`, `Bills` in `urn:ami-portal:cim:2026`),
and `FaultMessage`.

Every `iter_*` function yields UTF-8 `bytes` chunks so a large reply is never held whole in memory; join them
with `b"".join(...)` (or `to_bytes`) when a whole document is wanted. Shapes (see docs/architecture.md):

    <ResponseMessage xmlns="http://iec.ch/TC57/2011/schema/message">
      <Header><Verb>reply</Verb><Noun>MeterReadings</Noun><Timestamp>...Z</Timestamp><Source>SIM-MDM</Source>
        <MessageID>...</MessageID><CorrelationID>...</CorrelationID></Header>
      <Reply><Result>OK|PARTIAL|FAILED</Result>
        <Error><code/><level/><reason/><details/></Error>*</Reply>
      <Payload><MeterReadings xmlns="http://iec.ch/TC57/2011/MeterReadings#">
        <MeterReading>
          <IntervalBlocks>
            <IntervalReadings><timeStamp>END of interval, local offset</timeStamp><value>kWh</value>
              <ReadingQualities><ReadingQualityType ref="3.8.0"/></ReadingQualities>*</IntervalReadings>*
            <ReadingType ref="0.0.2.4.1.1.12.0.0.0.0.0.0.0.0.3.72.0"/></IntervalBlocks>*
          <Meter><mRID/></Meter>
          <Readings><timeStamp/><value/><ReadingType ref="..."/></Readings>*
          <UsagePoint><mRID/></UsagePoint>
        </MeterReading>*
      </MeterReadings></Payload>
    </ResponseMessage>

Timestamps are written with the America/Santiago offset of each instant (-03:00 or -04:00). Energy given as
integer Wh is written as kWh with exactly three decimals, so nothing is lost. All text is XML-escaped.
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Iterable, Iterator, Sequence
from zoneinfo import ZoneInfo

import numpy as np

from cim_ingest.namespaces import MESSAGE_NS, METER_READINGS_NS, PORTAL_DOCS_NS

SANTIAGO = ZoneInfo("America/Santiago")

READING_TYPE_15MIN_DELIVERED = "0.0.2.4.1.1.12.0.0.0.0.0.0.0.0.3.72.0"
READING_TYPE_15MIN_RECEIVED = "0.0.2.4.19.1.12.0.0.0.0.0.0.0.0.3.72.0"
READING_TYPE_REGISTER_DELIVERED = "0.0.0.1.1.1.12.0.0.0.0.0.0.0.0.3.72.0"
READING_TYPE_REGISTER_RECEIVED = "0.0.0.1.19.1.12.0.0.0.0.0.0.0.0.3.72.0"

# Interval readings per yielded chunk: big enough to amortise the join, small enough to keep chunks ~1 MB.
_READINGS_PER_CHUNK = 8192

_XML_DECLARATION = '<?xml version="1.0" encoding="UTF-8"?>\n'
# Characters XML 1.0 forbids even when escaped; dropping them keeps the document well-formed.
_FORBIDDEN_XML_CHARS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


@dataclass(frozen=True)
class ReplyError:
    """One `Reply/Error`: code, level (INFORM, WARNING, FATAL, CATASTROPHIC), reason, optional details."""

    code: str
    level: str
    reason: str
    details: str = ""


@dataclass(frozen=True)
class ReplyHeader:
    """The `Header` of a reply. `correlation_id` is copied from the request being answered."""

    noun: str
    correlation_id: str
    source: str
    verb: str = "reply"
    message_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    timestamp: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.timezone.utc))
    # Header/Property Name/Value pairs, e.g. (("part", "1"), ("partCount", "3")) for a multi-part reply.
    properties: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class IntervalBlockOut:
    """One `IntervalBlocks`: readings of one ReadingType.

    `ends` are interval END instants: aware datetimes, or integer seconds since the Unix epoch (UTC, e.g. a numpy
    int64 array, the fast path). Give either `values_wh` (integers in Wh, written as kWh with three decimals) or
    `values` (already in the ReadingType's unit: Decimal, int, float or decimal text; None omits the value of a
    missing reading). `qualities`, if given, holds one tuple of ReadingQuality codes per reading; an empty tuple
    writes none (valid/actual)."""

    reading_type: str
    ends: Sequence[dt.datetime] | Sequence[int] | np.ndarray
    values_wh: Sequence[int] | np.ndarray | None = None
    values: Sequence[Decimal | int | float | str | None] | None = None
    qualities: Sequence[tuple[str, ...]] | None = None


@dataclass(frozen=True)
class RegisterReadOut:
    """One register read (`Readings`): cumulative value at `read_at` (aware datetime or epoch seconds)."""

    reading_type: str
    read_at: dt.datetime | int
    value_wh: int | None = None
    value: Decimal | int | float | str | None = None
    qualities: tuple[str, ...] = ()


@dataclass(frozen=True)
class MeterReadingOut:
    """One `MeterReading`: the readings of one usage point's meter."""

    usage_point_mrid: str
    meter_mrid: str
    interval_blocks: Sequence[IntervalBlockOut] = ()
    registers: Sequence[RegisterReadOut] = ()


@dataclass(frozen=True)
class CustomerOut:
    customer_id: str
    client_number: str
    name: str
    rut: str
    email: str


@dataclass(frozen=True)
class UsagePointOut:
    usage_point_mrid: str
    supply_id: str
    meter_mrid: str
    customer_id: str
    address: str
    comuna: str
    tariff: str
    status: str
    has_solar: bool


@dataclass(frozen=True)
class BillLineOut:
    """A bill line. `quantity` and `unit_price_clp` are written as given (use Decimal for exact text)."""

    line_no: int
    code: str
    description: str
    quantity: Decimal | int | float | str
    unit: str
    unit_price_clp: Decimal | int | float | str
    amount_clp: int


@dataclass(frozen=True)
class BillOut:
    """A bill. Energy in integer Wh (written as kWh with three decimals), money in integer CLP, dates local;
    `period_end` is exclusive."""

    bill_id: str
    supply_id: str
    period_start: dt.date
    period_end: dt.date
    issue_date: dt.date
    due_date: dt.date
    billed_wh: int
    register_start_wh: int
    register_end_wh: int
    received_wh: int
    net_clp: int
    iva_clp: int
    total_clp: int
    status: str
    lines: Sequence[BillLineOut] = ()


# --- text helpers -------------------------------------------------------------------------------------------


def escape_text(text: object) -> str:
    """Escape for element content and attribute values (quotes included), dropping characters XML forbids."""
    value = str(text)
    if _FORBIDDEN_XML_CHARS.search(value):
        value = _FORBIDDEN_XML_CHARS.sub("", value)
    return (
        value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")
    )


def kwh_text(wh: int) -> str:
    """Exact kWh text with three decimals for an integer Wh amount: 182345 -> '182.345', -5 -> '-0.005'."""
    wh = int(wh)
    sign = "-" if wh < 0 else ""
    whole, milli = divmod(abs(wh), 1000)
    return f"{sign}{whole}.{milli:03d}"


def decimal_text(value: Decimal | int | float | str) -> str:
    """xs:decimal text (never scientific notation)."""
    if isinstance(value, str):
        return escape_text(value.strip())
    if isinstance(value, bool):
        raise TypeError("a boolean is not a decimal value")
    if isinstance(value, int | np.integer):
        return str(int(value))
    if isinstance(value, float | np.floating):
        text = repr(float(value))
        if "e" in text or "E" in text or text in ("inf", "-inf", "nan"):
            if not np.isfinite(value):
                raise ValueError(f"{value!r} cannot be written as an XML decimal")
            return format(Decimal(text), "f")
        return text
    return format(value, "f")


def utc_text(instant: dt.datetime) -> str:
    """'2026-11-26T12:00:00Z' (whole seconds)."""
    if instant.tzinfo is None:
        raise ValueError("naive datetime: instants must carry a time zone")
    return instant.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _offset_seconds(epoch_seconds: int) -> int:
    return int(dt.datetime.fromtimestamp(epoch_seconds, SANTIAGO).utcoffset().total_seconds())


def santiago_offsets(epoch_seconds: np.ndarray) -> np.ndarray:
    """UTC offset in seconds (America/Santiago) of each instant, vectorised: the zone is asked twice per UTC day
    touched, and only a day containing a transition is resolved more finely (by bisection)."""
    epochs = np.asarray(epoch_seconds, dtype=np.int64)
    offsets = np.empty(epochs.shape, dtype=np.int64)
    if epochs.size == 0:
        return offsets
    days = epochs // 86400
    unique_days, inverse = np.unique(days, return_inverse=True)
    for position, day in enumerate(unique_days.tolist()):
        day_start = day * 86400
        before, after = _offset_seconds(day_start), _offset_seconds(day_start + 86400)
        members = inverse == position
        if before == after:
            offsets[members] = before
            continue
        # The first second whose offset is `after` lies in (day_start, day_start + 86400].
        low, high = day_start, day_start + 86400
        while high - low > 1:
            middle = (low + high) // 2
            if _offset_seconds(middle) == before:
                low = middle
            else:
                high = middle
        offsets[members] = np.where(epochs[members] >= high, after, before)
    return offsets


def _offset_text(offset_seconds: int) -> str:
    sign = "-" if offset_seconds < 0 else "+"
    hours, remainder = divmod(abs(offset_seconds), 3600)
    return f"{sign}{hours:02d}:{remainder // 60:02d}"


def local_timestamps(epoch_seconds: Sequence[int] | np.ndarray) -> list[str]:
    """ISO 8601 text with the America/Santiago offset of each instant, e.g. '2026-04-04T23:15:00-04:00'."""
    epochs = np.asarray(epoch_seconds, dtype=np.int64)
    if epochs.size == 0:
        return []
    offsets = santiago_offsets(epochs)
    wall_clock = np.datetime_as_string((epochs + offsets).astype("datetime64[s]"), unit="s")
    unique_offsets, inverse = np.unique(offsets, return_inverse=True)
    suffixes = np.array([_offset_text(int(offset)) for offset in unique_offsets])[inverse]
    return np.char.add(wall_clock, suffixes).tolist()


def epoch_seconds(instants: Sequence[dt.datetime] | Sequence[int] | np.ndarray) -> np.ndarray:
    """Aware datetimes (or epoch seconds) as an int64 array of epoch seconds."""
    if isinstance(instants, np.ndarray):
        if np.issubdtype(instants.dtype, np.datetime64):
            return instants.astype("datetime64[s]").astype(np.int64)
        return instants.astype(np.int64, copy=False)
    items = list(instants)
    if items and isinstance(items[0], dt.datetime):
        for instant in items:
            if instant.tzinfo is None:
                raise ValueError("naive datetime: instants must carry a time zone")
        return np.array([int(instant.timestamp()) for instant in items], dtype=np.int64)
    return np.asarray(items, dtype=np.int64)


def _value_texts(values_wh, values, count: int) -> list[str | None]:
    if values_wh is not None:
        array = np.asarray(values_wh, dtype=np.int64)
        if len(array) != count:
            raise ValueError(f"{len(array)} values for {count} timestamps")
        whole, milli = np.divmod(np.abs(array), 1000)
        if (array >= 0).all():
            return [f"{w}.{m:03d}" for w, m in zip(whole.tolist(), milli.tolist())]
        return [kwh_text(value) for value in array.tolist()]
    if values is None:
        raise ValueError("give values_wh or values")
    if len(values) != count:
        raise ValueError(f"{len(values)} values for {count} timestamps")
    return [None if value is None else decimal_text(value) for value in values]


def _qualities_xml(codes: Iterable[str]) -> str:
    return "".join(
        f'<ReadingQualities><ReadingQualityType ref="{escape_text(code)}"/></ReadingQualities>' for code in codes
    )


# --- envelope -----------------------------------------------------------------------------------------------


def _header_xml(header: ReplyHeader) -> str:
    return (
        f"<Header><Verb>{escape_text(header.verb)}</Verb><Noun>{escape_text(header.noun)}</Noun>"
        f"<Timestamp>{utc_text(header.timestamp)}</Timestamp><Source>{escape_text(header.source)}</Source>"
        f"<MessageID>{escape_text(header.message_id)}</MessageID>"
        f"<CorrelationID>{escape_text(header.correlation_id)}</CorrelationID>"
        + "".join(
            f"<Property><Name>{escape_text(name)}</Name><Value>{escape_text(value)}</Value></Property>"
            for name, value in header.properties
        )
        + "</Header>"
    )


def _reply_xml(result: str, errors: Iterable[ReplyError]) -> str:
    parts = [f"<Reply><Result>{escape_text(result)}</Result>"]
    for error in errors:
        parts.append(
            f"<Error><code>{escape_text(error.code)}</code><level>{escape_text(error.level)}</level>"
            f"<reason>{escape_text(error.reason)}</reason>"
        )
        if error.details:
            parts.append(f"<details>{escape_text(error.details)}</details>")
        parts.append("</Error>")
    parts.append("</Reply>")
    return "".join(parts)


def _response_open(header: ReplyHeader, result: str, errors: Iterable[ReplyError]) -> str:
    return (
        f'{_XML_DECLARATION}<ResponseMessage xmlns="{MESSAGE_NS}">{_header_xml(header)}'
        f"{_reply_xml(result, errors)}<Payload>"
    )


_RESPONSE_CLOSE = "</Payload></ResponseMessage>\n"


def iter_fault_message(
    header: ReplyHeader, errors: Iterable[ReplyError], result: str = "FAILED"
) -> Iterator[bytes]:
    """A `FaultMessage` (Header + Reply with the errors)."""
    yield (
        f'{_XML_DECLARATION}<FaultMessage xmlns="{MESSAGE_NS}">{_header_xml(header)}'
        f"{_reply_xml(result, errors)}</FaultMessage>\n"
    ).encode("utf-8")


# --- MeterReadings ------------------------------------------------------------------------------------------


def _iter_interval_block(block: IntervalBlockOut) -> Iterator[str]:
    epochs = epoch_seconds(block.ends)
    count = len(epochs)
    value_texts = _value_texts(block.values_wh, block.values, count)
    timestamps = local_timestamps(epochs)
    qualities = block.qualities
    if qualities is not None and len(qualities) != count:
        raise ValueError(f"{len(qualities)} quality tuples for {count} timestamps")
    yield "<IntervalBlocks>"
    for first in range(0, count, _READINGS_PER_CHUNK):
        last = min(first + _READINGS_PER_CHUNK, count)
        stamps, texts = timestamps[first:last], value_texts[first:last]
        if qualities is None and None not in texts:
            yield "".join(
                f"<IntervalReadings><timeStamp>{stamp}</timeStamp><value>{text}</value></IntervalReadings>"
                for stamp, text in zip(stamps, texts)
            )
            continue
        chunk_qualities = qualities[first:last] if qualities is not None else [()] * (last - first)
        yield "".join(
            f"<IntervalReadings><timeStamp>{stamp}</timeStamp>"
            + ("" if text is None else f"<value>{text}</value>")
            + _qualities_xml(codes)
            + "</IntervalReadings>"
            for stamp, text, codes in zip(stamps, texts, chunk_qualities)
        )
    yield f'<ReadingType ref="{escape_text(block.reading_type)}"/></IntervalBlocks>'


def _registers_xml(registers: Sequence[RegisterReadOut]) -> str:
    if not registers:
        return ""
    timestamps = local_timestamps(epoch_seconds([register.read_at for register in registers]))
    parts = []
    for register, stamp in zip(registers, timestamps):
        if register.value_wh is not None:
            value = f"<value>{kwh_text(register.value_wh)}</value>"
        elif register.value is not None:
            value = f"<value>{decimal_text(register.value)}</value>"
        else:
            value = ""
        parts.append(
            f"<Readings><timeStamp>{stamp}</timeStamp>{value}{_qualities_xml(register.qualities)}"
            f'<ReadingType ref="{escape_text(register.reading_type)}"/></Readings>'
        )
    return "".join(parts)


def iter_meter_readings(meter_readings: Iterable[MeterReadingOut]) -> Iterator[str]:
    """The `MeterReadings` document alone, as text chunks (for embedding in other envelopes or files)."""
    yield f'<MeterReadings xmlns="{METER_READINGS_NS}">'
    for reading in meter_readings:
        yield "<MeterReading>"
        for block in reading.interval_blocks:
            yield from _iter_interval_block(block)
        yield (
            f"<Meter><mRID>{escape_text(reading.meter_mrid)}</mRID></Meter>"
            f"{_registers_xml(reading.registers)}"
            f"<UsagePoint><mRID>{escape_text(reading.usage_point_mrid)}</mRID></UsagePoint></MeterReading>"
        )
    yield "</MeterReadings>"


def _encoded(header_text: str, body: Iterable[str]) -> Iterator[bytes]:
    yield header_text.encode("utf-8")
    for text in body:
        yield text.encode("utf-8")
    yield _RESPONSE_CLOSE.encode("utf-8")


def iter_meter_readings_response(
    header: ReplyHeader,
    meter_readings: Iterable[MeterReadingOut],
    result: str = "OK",
    errors: Iterable[ReplyError] = (),
) -> Iterator[bytes]:
    """A `ResponseMessage` whose Payload is a `MeterReadings` document, streamed as bytes chunks. The readings
    iterable is consumed lazily, so a caller may compute each usage point's data only when it is written."""
    return _encoded(_response_open(header, result, errors), iter_meter_readings(meter_readings))


# --- portal documents ---------------------------------------------------------------------------------------


def _element(name: str, value: object) -> str:
    return f"<{name}>{escape_text(value)}</{name}>"


def _iter_customers(customers: Iterable[CustomerOut]) -> Iterator[str]:
    yield f'<Customers xmlns="{PORTAL_DOCS_NS}">'
    for customer in customers:
        yield (
            f"<Customer>{_element('mRID', customer.customer_id)}{_element('clientNumber', customer.client_number)}"
            f"{_element('name', customer.name)}{_element('rut', customer.rut)}{_element('email', customer.email)}"
            "</Customer>"
        )
    yield "</Customers>"


def _iter_usage_points(usage_points: Iterable[UsagePointOut]) -> Iterator[str]:
    yield f'<UsagePoints xmlns="{PORTAL_DOCS_NS}">'
    for point in usage_points:
        yield (
            f"<UsagePoint>{_element('mRID', point.usage_point_mrid)}{_element('supplyId', point.supply_id)}"
            f"{_element('meterMRID', point.meter_mrid)}{_element('customerMRID', point.customer_id)}"
            f"{_element('address', point.address)}{_element('comuna', point.comuna)}"
            f"{_element('tariff', point.tariff)}{_element('status', point.status)}"
            f"{_element('hasSolar', 'true' if point.has_solar else 'false')}</UsagePoint>"
        )
    yield "</UsagePoints>"


def _bill_line_xml(line: BillLineOut) -> str:
    return (
        f"<Line>{_element('lineNo', line.line_no)}{_element('code', line.code)}"
        f"{_element('description', line.description)}<quantity>{decimal_text(line.quantity)}</quantity>"
        f"{_element('unit', line.unit)}<unitPriceCLP>{decimal_text(line.unit_price_clp)}</unitPriceCLP>"
        f"<amountCLP>{int(line.amount_clp)}</amountCLP></Line>"
    )


def _iter_bills(bills: Iterable[BillOut]) -> Iterator[str]:
    yield f'<Bills xmlns="{PORTAL_DOCS_NS}">'
    for bill in bills:
        yield (
            f"<Bill>{_element('mRID', bill.bill_id)}{_element('supplyId', bill.supply_id)}"
            f"{_element('periodStart', bill.period_start.isoformat())}"
            f"{_element('periodEnd', bill.period_end.isoformat())}"
            f"{_element('issueDate', bill.issue_date.isoformat())}{_element('dueDate', bill.due_date.isoformat())}"
            f"<kWh>{kwh_text(bill.billed_wh)}</kWh>"
            f"<registerStartKWh>{kwh_text(bill.register_start_wh)}</registerStartKWh>"
            f"<registerEndKWh>{kwh_text(bill.register_end_wh)}</registerEndKWh>"
            f"<receivedKWh>{kwh_text(bill.received_wh)}</receivedKWh>"
            f"<netCLP>{int(bill.net_clp)}</netCLP><ivaCLP>{int(bill.iva_clp)}</ivaCLP>"
            f"<totalCLP>{int(bill.total_clp)}</totalCLP>{_element('status', bill.status)}"
            + "".join(_bill_line_xml(line) for line in bill.lines)
            + "</Bill>"
        )
    yield "</Bills>"


def iter_customers_response(
    header: ReplyHeader, customers: Iterable[CustomerOut], result: str = "OK", errors: Iterable[ReplyError] = ()
) -> Iterator[bytes]:
    return _encoded(_response_open(header, result, errors), _iter_customers(customers))


def iter_usage_points_response(
    header: ReplyHeader,
    usage_points: Iterable[UsagePointOut],
    result: str = "OK",
    errors: Iterable[ReplyError] = (),
) -> Iterator[bytes]:
    return _encoded(_response_open(header, result, errors), _iter_usage_points(usage_points))


def iter_bills_response(
    header: ReplyHeader, bills: Iterable[BillOut], result: str = "OK", errors: Iterable[ReplyError] = ()
) -> Iterator[bytes]:
    return _encoded(_response_open(header, result, errors), _iter_bills(bills))


def to_bytes(chunks: Iterable[bytes]) -> bytes:
    """The whole document (for small replies and tests)."""
    return b"".join(chunks)
