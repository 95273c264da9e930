"""Green Button (NAESB REQ.21 ESPI) Atom feeds: import (`parse_green_button`) and export (`iter_green_button_feed`).

Import. An ESPI feed is an Atom `feed` of `entry` elements whose `content` holds one ESPI resource (UsagePoint,
MeterReading, ReadingType, IntervalBlock, LocalTimeParameters, UsageSummary, ...). Resources are linked by their
`link` hrefs, not by nesting:
- a MeterReading belongs to the UsagePoint that lists its self (or up) href among its `related` links, else to the
  UsagePoint whose self href prefixes it (`.../UsagePoint/X/MeterReading/1`), else to the feed's only UsagePoint;
- an IntervalBlock belongs to the MeterReading that lists its self/up href as `related`, else whose self href
  prefixes it (`.../MeterReading/1/IntervalBlock/3`), else to the only MeterReading;
- a MeterReading's ReadingType is the ReadingType entry whose self href is one of its `related` links.
Times are Unix seconds (UTC); `timePeriod/start` is the START of an interval. A value is `value x
10^powerOfTenMultiplier` in the ReadingType's `uom`; `cost` is in hundred-thousandths of the currency.
Anything that does not link up (a MeterReading without a ReadingType entry, an IntervalBlock with no MeterReading)
is rejected with `UnexpectedMessage` naming the entry: nothing is guessed. The feed is streamed entry by entry.

Mapping to the warehouse (`GreenButtonFeed.intervals`): only electricity energy in Wh (uom 72) with delta
accumulation (or none stated) is loaded; other units (therm, m3, ...) raise `UnsupportedReadingType` naming the
unit. An imported UsagePoint maps to a supply through its Atom entry id `urn:uuid:<usage point mRID>` (what the
export writes), compared case-insensitively; the warehouse rejects a file whose UsagePoint is not a known supply.
Quality codes map to the portal's: 7 edited; 8, 9, 12 estimated; anything else (0 valid, 14 raw, 17-19
validated...) actual; the raw codes are kept (`espi:<code>` joined with ';').

Export. `iter_green_button_feed` streams an ESPI 4.0 feed (valid against espi.xsd): the UsagePoint, the
LocalTimeParameters of America/Santiago, one MeterReading + ReadingType per flow, IntervalBlocks of one local day
each with the readings' qualities, and one UsageSummary per bill with its cost (CLP, ISO 4217 code 152).
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Iterable, Iterator, Sequence
from zoneinfo import ZoneInfo

import polars as pl
from lxml import etree

from cim_ingest.errors import InvalidValue, UnexpectedMessage, UnsupportedReadingType
from cim_ingest.meter_readings import INTERVAL_SCHEMA, REGISTER_SCHEMA
from cim_ingest.writer import escape_text
from cim_ingest.xml_safety import XmlSource, local_name, namespace_of, safe_iterparse

ATOM_NS = "http://www.w3.org/2005/Atom"
ESPI_NS = "http://naesb.org/espi"
SANTIAGO = ZoneInfo("America/Santiago")

UOM_NAMES = {72: "Wh", 38: "W", 169: "therm", 42: "m3", 73: "VArh", 63: "VAr", 61: "VA", 119: "ft3", 132: "BTU"}
WH_UOM = 72
ELECTRICITY_COMMODITIES = frozenset({0, 1, 2})
DELTA_ACCUMULATION = 4
FLOW_BY_DIRECTION = {1: "delivered", 19: "received", 4: "net"}
DIRECTION_BY_FLOW = {flow: direction for direction, flow in FLOW_BY_DIRECTION.items()}
COST_SCALE = 100_000  # ESPI cost / bill amounts: hundred-thousandths of the currency
CLP_CURRENCY = 152
ESPI_EDITED = frozenset({7})
ESPI_ESTIMATED = frozenset({8, 9, 12})
# Standard time -04:00; DST (+1 h) from the first Sunday on/after 2 September to the first Sunday on/after
# 2 April, both at 00:00 local (zone database rule "Chile", 2023 onwards), in ESPI's DstRuleType bit encoding.
SANTIAGO_TZ_OFFSET = -4 * 3600
SANTIAGO_DST_OFFSET = 3600


def dst_rule(month: int, day_of_month: int, weekday: int, operator: int, hour: int = 0, seconds: int = 0) -> str:
    """ESPI DstRuleType as 8 hex digits: month<<28 | operator<<25 | day<<20 | weekday(1=Mon..7=Sun)<<17 |
    hour<<12 | seconds."""
    value = (month << 28) | (operator << 25) | (day_of_month << 20) | (weekday << 17) | (hour << 12) | seconds
    return f"{value:08X}"


SANTIAGO_DST_START = dst_rule(9, 2, 7, 1)
SANTIAGO_DST_END = dst_rule(4, 2, 7, 1)


# --- import ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class EspiReadingType:
    href: str
    uom: int | None
    power_of_ten: int
    accumulation: int | None
    flow_direction: int | None
    interval_length: int | None
    commodity: int | None
    kind: int | None
    currency: int | None

    @property
    def unit(self) -> str:
        return UOM_NAMES.get(self.uom, f"uom {self.uom}") if self.uom is not None else "no unit"


@dataclass
class _Entry:
    entry_id: str | None
    title: str | None
    self_href: str | None
    up_href: str | None
    related: list[str]
    published: str | None


@dataclass
class _Block:
    entry: _Entry
    starts: list[int]
    durations: list[int]
    values: list[int | None]
    costs: list[int | None]
    qualities: list[str]


@dataclass(frozen=True)
class GreenButtonFeed:
    """A parsed feed. `readings` has one row per IntervalReading: usage_point_href, usage_point_id (entry id),
    usage_point_title, meter_reading_href, uom, unit, power_of_ten, flow_direction, start (UTC), duration_seconds,
    raw_value, amount (value x 10^power, Float64), kwh (amount / 1000, meaningful for Wh), cost (currency units,
    Float64), quality_codes."""

    feed_id: str | None
    updated: dt.datetime | None
    readings: pl.DataFrame
    reading_types: dict[str, EspiReadingType] = field(default_factory=dict)

    @property
    def published(self) -> dt.datetime | None:
        """The feed's `updated` instant: the message timestamp versions are ordered by."""
        return self.updated

    @property
    def intervals(self) -> pl.DataFrame:
        return feed_intervals(self)

    @property
    def registers(self) -> pl.DataFrame:
        return pl.DataFrame(schema=REGISTER_SCHEMA)


INT48_LIMIT = 1 << 47  # ESPI Int48
MAX_EPOCH_SECONDS = 1 << 33  # year 2242: a later instant is a corrupted field, not data
POWER_OF_TEN_RANGE = range(-12, 13)


def _int(text: str | None, what: str, where: str, limit: int = INT48_LIMIT) -> int | None:
    if text is None or not text.strip():
        return None
    stripped = text.strip()
    if not stripped.lstrip("+-").isascii() or not stripped.lstrip("+-").isdigit() or len(stripped) > 20:
        raise InvalidValue(f"{what} {stripped[:40]!r} in {where} is not an integer.")
    value = int(stripped)
    if not -limit < value < limit:
        raise InvalidValue(f"{what} {value} in {where} is out of range (|value| must be below {limit}).")
    return value


def _atom_instant(text: str | None) -> dt.datetime | None:
    """Atom dates: a full RFC 3339 instant, or (seen in real feeds) a bare date, taken as UTC midnight."""
    if not text or not text.strip():
        return None
    text = text.strip()
    try:
        value = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidValue(f"Atom date {text!r} is not an RFC 3339 date-time.") from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.timezone.utc)
    return value.astimezone(dt.timezone.utc)


def _entry_links(entry: etree._Element) -> _Entry:
    entry_id = title = self_href = up_href = published = None
    related: list[str] = []
    for child in entry:
        name = local_name(child.tag)
        if name == "id":
            entry_id = (child.text or "").strip() or None
        elif name == "title":
            title = (child.text or "").strip() or None
        elif name == "published":
            published = (child.text or "").strip() or None
        elif name == "link":
            href, rel = (child.get("href") or "").strip(), (child.get("rel") or "alternate").strip()
            if rel == "self":
                self_href = href
            elif rel == "up":
                up_href = href
            elif rel == "related":
                related.append(href)
    return _Entry(entry_id, title, self_href, up_href, related, published)


def _children(element: etree._Element) -> dict[str, etree._Element]:
    found: dict[str, etree._Element] = {}
    for child in element:
        name = local_name(child.tag)
        if name and name not in found:
            found[name] = child
    return found


def _text(element: etree._Element | None) -> str | None:
    return None if element is None else element.text


def _reading_type(resource: etree._Element, entry: _Entry) -> EspiReadingType:
    where = f"ReadingType entry {entry.self_href or entry.entry_id}"
    fields = _children(resource)
    number = lambda name: _int(_text(fields.get(name)), name, where)  # noqa: E731
    power = number("powerOfTenMultiplier") or 0
    if power not in POWER_OF_TEN_RANGE:
        raise InvalidValue(f"powerOfTenMultiplier {power} in {where} is outside -12..12.")
    return EspiReadingType(
        href=entry.self_href or "",
        uom=number("uom"),
        power_of_ten=power,
        accumulation=number("accumulationBehaviour"),
        flow_direction=number("flowDirection"),
        interval_length=number("intervalLength"),
        commodity=number("commodity"),
        kind=number("kind"),
        currency=number("currency"),
    )


def _interval_block(resource: etree._Element, entry: _Entry) -> _Block:
    where = f"IntervalBlock entry {entry.self_href or entry.entry_id}"
    block = _Block(entry, [], [], [], [], [])
    for reading in resource:
        if local_name(reading.tag) != "IntervalReading":
            continue
        start = duration = value = cost = None
        codes: list[str] = []
        for part in reading:
            name = local_name(part.tag)
            if name == "timePeriod":
                period = _children(part)
                start = _int(_text(period.get("start")), "timePeriod/start", where)
                duration = _int(_text(period.get("duration")), "timePeriod/duration", where)
            elif name == "value":
                value = _int(part.text, "value", where)
            elif name == "cost":
                cost = _int(part.text, "cost", where)
            elif name == "ReadingQuality":
                code = _int(_text(_children(part).get("quality")), "ReadingQuality/quality", where)
                if code is not None:
                    codes.append(f"espi:{code}")
        if start is None or duration is None:
            raise InvalidValue(f"An IntervalReading in {where} has no timePeriod start and duration.")
        if not 0 <= start < MAX_EPOCH_SECONDS:
            raise InvalidValue(f"An IntervalReading in {where} starts at {start}, not a plausible Unix time.")
        if not 0 < duration <= 400 * 86400:
            raise InvalidValue(f"An IntervalReading in {where} has an impossible duration {duration} s.")
        block.starts.append(start)
        block.durations.append(duration)
        block.values.append(value)
        block.costs.append(cost)
        block.qualities.append(";".join(codes))
    return block


def _parent_of(child: _Entry, parents: list[_Entry], segment: str, what: str) -> _Entry:
    hrefs = {href for href in (child.self_href, child.up_href) if href}
    for parent in parents:
        if hrefs & set(parent.related):
            return parent
    if child.self_href and segment in child.self_href:
        prefix = child.self_href[: child.self_href.rindex(segment)]
        for parent in parents:
            if parent.self_href == prefix:
                return parent
    if len(parents) == 1:
        return parents[0]
    raise UnexpectedMessage(
        f"{what} entry {child.self_href or child.entry_id} links to none of the feed's "
        f"{len(parents)} parent entries; the feed's links are inconsistent."
    )


def parse_green_button(source: XmlSource) -> GreenButtonFeed:
    """Parse an ESPI Atom feed (bytes, text, path or binary file) into its interval readings (see module doc)."""
    feed_id = updated_text = None
    usage_points: list[_Entry] = []
    meter_readings: list[_Entry] = []
    reading_types: dict[str, EspiReadingType] = {}
    blocks: list[_Block] = []
    nested_reading_types: list[str] = []
    root_checked = False
    for event, element in safe_iterparse(source, ["{*}entry", "{*}id", "{*}updated"]):
        top = element if event == "root" else element.getroottree().getroot()
        if not root_checked:
            if local_name(top.tag) not in ("feed", "entry") or namespace_of(top.tag) != ATOM_NS:
                raise UnexpectedMessage(
                    f"Root element {local_name(top.tag)!r} in namespace {namespace_of(top.tag)!r} is not an Atom "
                    f"feed ({ATOM_NS}); this is not a Green Button file."
                )
            root_checked = True
        if event == "root":
            break
        name = local_name(element.tag)
        parent = element.getparent()
        if name in ("id", "updated"):
            if parent is top and local_name(top.tag) == "feed":
                if name == "id":
                    feed_id = (element.text or "").strip() or None
                else:
                    updated_text = element.text
            continue
        if namespace_of(element.tag) != ATOM_NS:
            continue
        entry = _entry_links(element)
        content = next((child for child in element if local_name(child.tag) == "content"), None)
        resource = None
        if content is not None:
            resource = next((child for child in content if isinstance(child.tag, str)), None)
        if resource is not None and namespace_of(resource.tag) == ESPI_NS:
            kind = local_name(resource.tag)
            if kind == "UsagePoint":
                usage_points.append(entry)
            elif kind == "MeterReading":
                meter_readings.append(entry)
                if any(local_name(child.tag) == "ReadingType" for child in resource):
                    nested_reading_types.append(entry.self_href or entry.entry_id or "?")
            elif kind == "ReadingType":
                reading_types[entry.self_href or ""] = _reading_type(resource, entry)
            elif kind == "IntervalBlock":
                blocks.append(_interval_block(resource, entry))
        element.clear()
        if parent is not None:
            while element.getprevious() is not None:
                del parent[0]
    return _assemble(feed_id, _atom_instant(updated_text), usage_points, meter_readings, reading_types, blocks,
                     nested_reading_types)


_READING_SCHEMA = {
    "usage_point_href": pl.Utf8,
    "usage_point_id": pl.Utf8,
    "usage_point_title": pl.Utf8,
    "meter_reading_href": pl.Utf8,
    "uom": pl.Int32,
    "unit": pl.Utf8,
    "power_of_ten": pl.Int32,
    "flow_direction": pl.Int32,
    "accumulation": pl.Int32,
    "commodity": pl.Int32,
    "start": pl.Datetime("us", "UTC"),
    "duration_seconds": pl.Int64,
    "raw_value": pl.Int64,
    "amount": pl.Float64,
    "kwh": pl.Float64,
    "cost": pl.Float64,
    "quality_codes": pl.Utf8,
}


def _assemble(feed_id, updated, usage_points, meter_readings, reading_types, blocks, nested) -> GreenButtonFeed:
    frames: list[pl.DataFrame] = []
    for block in blocks:
        if not block.starts:
            continue
        if not meter_readings:
            raise UnexpectedMessage(
                f"IntervalBlock entry {block.entry.self_href or block.entry.entry_id} has no MeterReading entry in "
                "the feed to say what it measures."
            )
        meter_reading = _parent_of(block.entry, meter_readings, "/IntervalBlock", "IntervalBlock")
        reading_type = next((reading_types[href] for href in meter_reading.related if href in reading_types), None)
        if reading_type is None:
            nested_note = (
                " (its ReadingType is nested inside the MeterReading, which ESPI does not allow)"
                if (meter_reading.self_href or meter_reading.entry_id) in nested else ""
            )
            raise UnexpectedMessage(
                f"MeterReading entry {meter_reading.self_href or meter_reading.entry_id} links to no ReadingType "
                f"entry of the feed{nested_note}; its values cannot be read."
            )
        if not usage_points:
            raise UnexpectedMessage("The feed has interval data but no UsagePoint entry to attribute it to.")
        usage_point = _parent_of(meter_reading, usage_points, "/MeterReading", "MeterReading")
        count = len(block.starts)
        scale = Decimal(10) ** reading_type.power_of_ten
        frames.append(
            pl.DataFrame(
                {
                    "usage_point_href": [usage_point.self_href] * count,
                    "usage_point_id": [usage_point.entry_id] * count,
                    "usage_point_title": [usage_point.title] * count,
                    "meter_reading_href": [meter_reading.self_href] * count,
                    "uom": [reading_type.uom] * count,
                    "unit": [reading_type.unit] * count,
                    "power_of_ten": [reading_type.power_of_ten] * count,
                    "flow_direction": [reading_type.flow_direction] * count,
                    "accumulation": [reading_type.accumulation] * count,
                    "commodity": [reading_type.commodity] * count,
                    "start": [dt.datetime.fromtimestamp(s, dt.timezone.utc) for s in block.starts],
                    "duration_seconds": block.durations,
                    "raw_value": block.values,
                    "amount": [None if v is None else float(Decimal(v) * scale) for v in block.values],
                    # exact decimal scaling, rounded once to the nearest double (kWh for Wh readings)
                    "kwh": [None if v is None else float(Decimal(v) * scale / 1000) for v in block.values],
                    "cost": [None if c is None else c / COST_SCALE for c in block.costs],
                    "quality_codes": block.qualities,
                },
                schema=_READING_SCHEMA,
            )
        )
    if not frames and nested:
        raise UnexpectedMessage(
            f"MeterReading entry {nested[0]} nests its ReadingType inside the MeterReading instead of linking a "
            "ReadingType entry, and the feed has no IntervalBlock: not a valid ESPI usage feed, nothing to load."
        )
    readings = pl.concat(frames) if frames else pl.DataFrame(schema=_READING_SCHEMA)
    return GreenButtonFeed(feed_id=feed_id, updated=updated, readings=readings, reading_types=reading_types)


_UUID_ID = re.compile(r"^urn:uuid:([0-9a-fA-F-]{36})$")


def _espi_quality(codes: str) -> str:
    numbers = {int(code.split(":")[1]) for code in codes.split(";") if code}
    if numbers & ESPI_ESTIMATED:
        return "estimated"
    if numbers & ESPI_EDITED:
        return "edited"
    return "actual"


_MEASURING_PERIODS = {900: 2, 60: 3, 1800: 5, 300: 6, 3600: 7}


def cim_reading_type_code(duration_seconds: int, flow_direction: int, power_of_ten: int) -> str:
    """The IEC 61968-9 ReadingType code equivalent to an ESPI interval ReadingType (delta electricity energy in
    Wh), so imported readings are stored like CIM ones: 15/60-minute and daily lengths get their CIM period."""
    macro, measuring = (11, 0) if duration_seconds in (82800, 86400, 90000) else (0, _MEASURING_PERIODS.get(
        duration_seconds, 0))
    return f"{macro}.0.{measuring}.4.{flow_direction}.1.12.0.0.0.0.0.0.0.0.{power_of_ten}.72.0"


def feed_intervals(feed: GreenButtonFeed) -> pl.DataFrame:
    """The feed's readings as a cim_ingest intervals frame (contract in docs/architecture.md), for loading."""
    readings = feed.readings
    if readings.height == 0:
        return pl.DataFrame(schema=INTERVAL_SCHEMA)
    for row in readings.select("unit", "uom", "commodity", "accumulation", "flow_direction").unique().iter_rows(
        named=True
    ):
        reasons = []
        if row["uom"] != WH_UOM:
            reasons.append(f"unit {row['unit']} is not Wh")
        if row["commodity"] is not None and row["commodity"] not in ELECTRICITY_COMMODITIES:
            reasons.append(f"commodity {row['commodity']} is not electricity")
        if row["accumulation"] is not None and row["accumulation"] != DELTA_ACCUMULATION:
            reasons.append(f"accumulationBehaviour {row['accumulation']} is not delta data (4)")
        if row["flow_direction"] is not None and row["flow_direction"] not in FLOW_BY_DIRECTION:
            reasons.append(f"flowDirection {row['flow_direction']} is not forward, reverse or net")
        if reasons:
            raise UnsupportedReadingType(
                f"ESPI uom={row['uom']}", f"Green Button {row['unit']} readings", "; ".join(reasons)
            )
    ids = readings["usage_point_id"].unique().to_list()
    mrids: dict[str | None, str] = {}
    for entry_id in ids:
        match = _UUID_ID.match(entry_id or "")
        if not match:
            raise InvalidValue(
                f"UsagePoint entry id {entry_id!r} is not urn:uuid:<usage point mRID>; the feed's UsagePoint cannot "
                "be matched to a supply (see docs/ingestion.md, Green Button import)."
            )
        mrids[entry_id] = match.group(1).lower()
    qualities = {codes: _espi_quality(codes) for codes in readings["quality_codes"].unique().to_list()}
    combos = readings.select("duration_seconds", "flow_direction", "power_of_ten").unique()
    combos = combos.with_columns(
        pl.Series(
            "reading_type",
            [cim_reading_type_code(d, f or 1, p) for d, f, p in combos.iter_rows()],
            dtype=pl.Utf8,
        )
    )
    readings = readings.join(combos, on=["duration_seconds", "flow_direction", "power_of_ten"], how="left",
                             nulls_equal=True, maintain_order="left")
    return readings.select(
        pl.col("usage_point_id").replace_strict(mrids, return_dtype=pl.Utf8).alias("usage_point_mrid"),
        pl.lit(None, dtype=pl.Utf8).alias("meter_mrid"),
        pl.col("reading_type"),
        pl.col("flow_direction").fill_null(1).replace_strict(FLOW_BY_DIRECTION, return_dtype=pl.Utf8).alias("flow"),
        pl.col("duration_seconds").cast(pl.Int32).alias("interval_seconds"),
        (pl.col("start") + pl.duration(seconds=pl.col("duration_seconds"))).alias("interval_end"),
        pl.col("kwh"),
        pl.when(pl.col("raw_value").is_null())
        .then(pl.lit("missing"))
        .otherwise(pl.col("quality_codes").replace_strict(qualities, return_dtype=pl.Utf8))
        .alias("quality"),
        pl.col("quality_codes"),
        pl.lit(feed.feed_id, dtype=pl.Utf8).alias("source_message_id"),
    ).select([pl.col(name).cast(dtype) for name, dtype in INTERVAL_SCHEMA.items()])


# --- export ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ExportInterval:
    """One interval for export: END instant (aware), length in seconds, kWh (None: missing), portal quality."""

    interval_end: dt.datetime
    interval_seconds: int
    kwh: float | Decimal | None
    quality: str


@dataclass(frozen=True)
class ExportBill:
    bill_id: str
    period_start: dt.date
    period_end: dt.date  # exclusive
    issue_date: dt.date | None
    kwh: float | Decimal | None
    total_clp: int
    lines: Sequence[tuple[str, int]] = ()  # (description, amount_clp)


@dataclass(frozen=True)
class ExportSupply:
    supply_id: str
    customer_id: str
    usage_point_mrid: str
    address: str | None = None


QUALITY_TO_ESPI = {"actual": 0, "edited": 7, "estimated": 8}
_RESOURCE = "/espi/1_1/resource"


def _epoch(instant: dt.datetime) -> int:
    return int(instant.timestamp())


def _local_midnight(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time.min, tzinfo=SANTIAGO).astimezone(dt.timezone.utc)


def _atom_time(instant: dt.datetime) -> str:
    return instant.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _entry(entry_id: str, self_href: str, up_href: str, related: Iterable[str], title: str, content: str,
           stamp: str) -> str:
    links = [f'<link rel="self" href="{escape_text(self_href)}"/>', f'<link rel="up" href="{escape_text(up_href)}"/>']
    links += [f'<link rel="related" href="{escape_text(href)}"/>' for href in related]
    return (
        f"<entry><id>{entry_id}</id>{''.join(links)}<title>{escape_text(title)}</title>"
        f"<content>{content}</content><published>{stamp}</published><updated>{stamp}</updated></entry>\n"
    )


def _uuid_for(*parts: str) -> str:
    return f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, '/'.join(parts))}"


def _power_of_ten(kwh_values: Iterable[float | Decimal | None]) -> int:
    """powerOfTenMultiplier for the values: 0 (whole Wh), or -3 (mWh) when any value has a fraction of a Wh."""
    decimals = (Decimal(str(v)) * 1000 for v in kwh_values if v is not None)
    return 0 if all(d == d.to_integral_value() for d in decimals) else -3


def _espi_value(kwh: float | Decimal, power: int) -> int:
    return int((Decimal(str(kwh)) * 1000 * (Decimal(10) ** -power)).to_integral_value())


def iter_green_button_feed(
    supply: ExportSupply,
    intervals_by_flow: dict[str, Sequence[ExportInterval]],
    bills: Sequence[ExportBill],
    first_day: dt.date,
    last_day: dt.date,
    now: dt.datetime | None = None,
) -> Iterator[bytes]:
    """An ESPI 4.0 Atom feed for one supply over local days first_day..last_day, as UTF-8 chunks."""
    now = now or dt.datetime.now(dt.timezone.utc)
    stamp = _atom_time(now)
    base = f"{_RESOURCE}/RetailCustomer/{supply.customer_id}/UsagePoint/{supply.supply_id}"
    ltp_href = f"{_RESOURCE}/LocalTimeParameters/America-Santiago"
    summary_feed = f"{base}/UsageSummary"
    flows = [flow for flow in ("delivered", "received", "net") if intervals_by_flow.get(flow)]
    yield (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<feed xmlns="{ATOM_NS}" xmlns:espi="{ESPI_NS}">'
        f"<id>{_uuid_for('feed', supply.supply_id, first_day.isoformat(), last_day.isoformat())}</id>"
        f"<title>Green Button: suministro {escape_text(supply.supply_id)}, {first_day} a {last_day}</title>"
        f"<updated>{stamp}</updated>"
        f'<link rel="self" href="{base}/export/greenbutton.xml?from={first_day}&amp;to={last_day}"/>\n'
    ).encode("utf-8")
    up_content = (
        "<espi:UsagePoint><espi:ServiceCategory><espi:kind>0</espi:kind></espi:ServiceCategory>"
        "</espi:UsagePoint>"
    )
    yield _entry(
        f"urn:uuid:{supply.usage_point_mrid}", base, f"{_RESOURCE}/RetailCustomer/{supply.customer_id}/UsagePoint",
        [f"{base}/MeterReading", summary_feed, ltp_href],
        f"Suministro {supply.supply_id}" + (f", {supply.address}" if supply.address else ""), up_content, stamp,
    ).encode("utf-8")
    ltp = (
        f"<espi:LocalTimeParameters><espi:dstEndRule>{SANTIAGO_DST_END}</espi:dstEndRule>"
        f"<espi:dstOffset>{SANTIAGO_DST_OFFSET}</espi:dstOffset>"
        f"<espi:dstStartRule>{SANTIAGO_DST_START}</espi:dstStartRule>"
        f"<espi:tzOffset>{SANTIAGO_TZ_OFFSET}</espi:tzOffset></espi:LocalTimeParameters>"
    )
    yield _entry(_uuid_for("ltp", "America/Santiago"), ltp_href, f"{_RESOURCE}/LocalTimeParameters", [],
                 "America/Santiago", ltp, stamp).encode("utf-8")
    for number, flow in enumerate(flows, start=1):
        readings = intervals_by_flow[flow]
        lengths = {reading.interval_seconds for reading in readings}
        length = min(lengths)
        power = _power_of_ten(reading.kwh for reading in readings)
        mr_href = f"{base}/MeterReading/{number}"
        rt_href = f"{_RESOURCE}/ReadingType/{supply.supply_id}-{number}"
        title = "Energía consumida" if flow == "delivered" else ("Energía inyectada" if flow == "received" else "Energía neta")
        yield _entry(_uuid_for("mr", supply.supply_id, flow), mr_href, f"{base}/MeterReading",
                     [f"{mr_href}/IntervalBlock", rt_href], title, "<espi:MeterReading/>", stamp).encode("utf-8")
        reading_type = (
            "<espi:ReadingType><espi:accumulationBehaviour>4</espi:accumulationBehaviour>"
            "<espi:commodity>1</espi:commodity>"
            f"<espi:currency>{CLP_CURRENCY}</espi:currency><espi:dataQualifier>12</espi:dataQualifier>"
            f"<espi:flowDirection>{DIRECTION_BY_FLOW[flow]}</espi:flowDirection>"
            f"<espi:intervalLength>{length}</espi:intervalLength><espi:kind>12</espi:kind>"
            f"<espi:phase>0</espi:phase><espi:powerOfTenMultiplier>{power}</espi:powerOfTenMultiplier>"
            "<espi:timeAttribute>0</espi:timeAttribute><espi:uom>72</espi:uom></espi:ReadingType>"
        )
        yield _entry(_uuid_for("rt", supply.supply_id, flow), rt_href, f"{_RESOURCE}/ReadingType", [],
                     f"{title} (Wh)", reading_type, stamp).encode("utf-8")
        by_day: dict[dt.date, list[ExportInterval]] = {}
        for reading in readings:
            if reading.kwh is None:
                continue  # ESPI has no "missing" quality: a missing interval is simply absent
            start = reading.interval_end - dt.timedelta(seconds=reading.interval_seconds)
            by_day.setdefault(start.astimezone(SANTIAGO).date(), []).append(reading)
        for day in sorted(by_day):
            day_start = _local_midnight(day)
            day_seconds = int((_local_midnight(day + dt.timedelta(days=1)) - day_start).total_seconds())
            parts = [
                f"<espi:IntervalBlock><espi:interval><espi:duration>{day_seconds}</espi:duration>"
                f"<espi:start>{_epoch(day_start)}</espi:start></espi:interval>"
            ]
            for reading in sorted(by_day[day], key=lambda r: r.interval_end):
                start = _epoch(reading.interval_end) - reading.interval_seconds
                code = QUALITY_TO_ESPI.get(reading.quality, 0)
                parts.append(
                    f"<espi:IntervalReading><espi:ReadingQuality><espi:quality>{code}</espi:quality>"
                    f"</espi:ReadingQuality><espi:timePeriod><espi:duration>{reading.interval_seconds}"
                    f"</espi:duration><espi:start>{start}</espi:start></espi:timePeriod>"
                    f"<espi:value>{_espi_value(reading.kwh, power)}</espi:value></espi:IntervalReading>"
                )
            parts.append("</espi:IntervalBlock>")
            yield _entry(_uuid_for("ib", supply.supply_id, flow, day.isoformat()),
                         f"{mr_href}/IntervalBlock/{day.isoformat()}", f"{mr_href}/IntervalBlock", [],
                         f"{title} {day.isoformat()}", "".join(parts), stamp).encode("utf-8")
    for bill in bills:
        start = _local_midnight(bill.period_start)
        duration = int((_local_midnight(bill.period_end) - start).total_seconds())
        status_at = _local_midnight(bill.issue_date) if bill.issue_date else _local_midnight(bill.period_end)
        consumption = ""
        if bill.kwh is not None:
            consumption = (
                "<espi:overallConsumptionLastPeriod><espi:powerOfTenMultiplier>0</espi:powerOfTenMultiplier>"
                f"<espi:uom>72</espi:uom><espi:value>{_espi_value(bill.kwh, 0)}</espi:value>"
                "</espi:overallConsumptionLastPeriod>"
            )
        line_items = "".join(
            f"<espi:costAdditionalDetailLastPeriod><espi:amount>{amount * COST_SCALE}</espi:amount>"
            f"<espi:note>{escape_text(description)}</espi:note><espi:itemKind>1</espi:itemKind>"
            "</espi:costAdditionalDetailLastPeriod>"
            for description, amount in bill.lines
        )
        summary = (
            f"<espi:UsageSummary><espi:billingPeriod><espi:duration>{duration}</espi:duration>"
            f"<espi:start>{_epoch(start)}</espi:start></espi:billingPeriod>"
            f"<espi:billLastPeriod>{bill.total_clp * COST_SCALE}</espi:billLastPeriod>"
            f"{line_items}<espi:currency>{CLP_CURRENCY}</espi:currency>{consumption}"
            f"<espi:statusTimeStamp>{_epoch(status_at)}</espi:statusTimeStamp>"
            "<espi:commodity>1</espi:commodity></espi:UsageSummary>"
        )
        yield _entry(_uuid_for("bill", bill.bill_id), f"{summary_feed}/{bill.bill_id}", summary_feed, [],
                     f"Boleta {bill.bill_id}", summary, stamp).encode("utf-8")
    yield b"</feed>\n"
